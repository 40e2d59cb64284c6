import { isId } from '../config.js';
import { configError } from '../errors.js';
import type { Progress } from './usage-windows.js';

/**
 * The usage stream's state: one entry per organization id (not per project slug), e.g.
 *
 * ```json
 * {"<org-id>": {"_window_end": "2026-12-01T00:00:00.000Z", "recheck_from": "2026-11-30T00:00:00.000Z",
 *   "pending_job": "<usage_export_job_id>", "pending_start": "…", "pending_end": "…", "pending_created": "…",
 *   "creates": ["2026-12-01T09:00:00.000Z"], "create_after": "…"}}
 * ```
 *
 * `_window_end` (the stream's cursor): everything before it was exported and emitted.
 * `recheck_from`: rows from here were exported before CircleCI refreshed their last day; the next
 * window starts here. `pending_*`: an export created and not yet collected (picked up by the next
 * sync instead of a new create). `creates` (this machine's clock) and `create_after` (a 429's
 * Retry-After): the create limit's memory across syncs.
 */
export interface UsageCursor {
  [key: string]: string | string[] | undefined;
  _window_end?: string;
  recheck_from?: string;
  pending_job?: string;
  pending_start?: string;
  pending_end?: string;
  pending_created?: string;
  creates?: string[];
  create_after?: string;
}
export type UsageState = Record<string, UsageCursor>;

const TIMES = ['_window_end', 'recheck_from', 'pending_start', 'pending_end', 'pending_created', 'create_after'] as const;
const PENDING = ['pending_job', 'pending_start', 'pending_end', 'pending_created'] as const;
const FIX = 'Fix or remove the state file (a sync without state starts again from start_date).';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** Checks the usage stream's state; `where` names it in messages. */
export function parseUsageState(value: unknown, where: string): UsageState {
  const example = '{"<organization id>": {"_window_end": "2026-12-01T00:00:00.000Z"}}';
  if (!isObject(value)) throw configError(`The state for stream "usage" (${where}) must be an object keyed by organization id, such as ${example}. ${FIX}`);
  const out: UsageState = {};
  for (const [org, raw] of Object.entries(value)) {
    const at = `The state for stream "usage", organization "${org}" (${where})`;
    if (!isId(org)) throw configError(`${at}: usage state is keyed by organization id (a UUID), such as ${example}; "${org}" is not one. ${FIX}`);
    if (!isObject(raw)) throw configError(`${at} must be an object such as {"_window_end": "2026-12-01T00:00:00.000Z"}. ${FIX}`);
    const clean: UsageCursor = {};
    for (const [k, v] of Object.entries(raw)) {
      if ((TIMES as readonly string[]).includes(k)) {
        if (!isTime(v)) throw configError(`${at} has ${k} = ${JSON.stringify(v).slice(0, 100)}, which is not a date-time. ${FIX}`);
        clean[k] = new Date(v).toISOString();
      } else if (k === 'pending_job') {
        if (typeof v !== 'string' || !v.trim() || v.length > 200) throw configError(`${at} has pending_job = ${JSON.stringify(v).slice(0, 100)}, which is not an export job id. ${FIX}`);
        clean.pending_job = v;
      } else if (k === 'creates') {
        if (!Array.isArray(v) || !v.every(isTime)) throw configError(`${at} has creates = ${JSON.stringify(v).slice(0, 100)}, which is not a list of date-times. ${FIX}`);
        clean.creates = v.map((t) => new Date(t).toISOString());
      } else {
        throw configError(`${at} has an unknown key "${k}" (known: _window_end, recheck_from, pending_job, pending_start, pending_end, pending_created, creates, create_after). ${FIX}`);
      }
    }
    const pending = PENDING.filter((k) => clean[k] !== undefined);
    if (pending.length && pending.length !== PENDING.length) {
      throw configError(`${at} has ${pending.join(', ')} but not ${PENDING.filter((k) => clean[k] === undefined).join(', ')}: a pending export needs all four. ${FIX}`);
    }
    if (clean.pending_start && Date.parse(clean.pending_start) >= Date.parse(clean.pending_end!)) {
      throw configError(`${at} has a pending export whose window ends (${clean.pending_end}) before it starts (${clean.pending_start}). ${FIX}`);
    }
    out[org.toLowerCase()] = clean;
  }
  return out;
}

const ms = (v: string | undefined): number | undefined => (v === undefined ? undefined : Date.parse(v));
const iso = (t: number): string => new Date(t).toISOString();

export const progressOf = (c: UsageCursor): Progress => ({ through: ms(c._window_end), recheckFrom: ms(c.recheck_from) });

/** The cursor with `progress` written into it (the rest kept). */
export function withProgress(c: UsageCursor, p: Progress): UsageCursor {
  const out: UsageCursor = { ...c, _window_end: p.through === undefined ? undefined : iso(p.through), recheck_from: p.recheckFrom === undefined ? undefined : iso(p.recheckFrom) };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

import { normaliseSlug } from '../config.js';
import { configError } from '../errors.js';
import { parseUsageState } from './usage-state.js';

/**
 * Progress of an interrupted sync of one project: pipelines numbered `from`..`to` were completely
 * synced (every record of theirs is out), so a resumed sync skips their children. `max`, `open`
 * and `open_pipeline` carry what those pipelines contributed to the next cursor.
 */
export interface ResumeMarker {
  from: number;
  to: number;
  max?: string;
  open?: string;
  open_pipeline?: string;
  /** How far the interrupted sync could vouch for (its signpost): a resumed sync's cursor goes no further. */
  cap?: string;
  /** What the completed pipelines missed (a 404 on data that should exist): see ProjectCursor. */
  retry?: string[];
  unseen?: string;
}

/**
 * A project's position in one stream: the cursor field (`updated_at` for pipelines, `created_at`
 * for workflows, `_workflow_created_at` for jobs) holds the newest value emitted; `signpost`, the
 * start of the sync that wrote it (what changed while it ran is read again); `unfinished_from` and
 * `rescan_from`, the oldest record that may still change and its pipeline; `retry`, requests
 * that answered 404 for data that should exist (asked again, even if what they answer had
 * settled); `resume` while a sync of the project is unfinished. The rules are in cursors.ts.
 */
export type ProjectCursor = { [key: string]: string | string[] | ResumeMarker | undefined; resume?: ResumeMarker; retry?: string[] };
/** A stream's state: one cursor per project slug. O(projects), never O(pipelines). */
export type StreamState = Record<string, ProjectCursor>;
/** Every stream's state, by stream name. */
export type SyncState = Record<string, StreamState>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const FIX = 'Fix or remove the state file (a sync without state starts again from start_date).';

/** Checks one stream's state and normalises its slugs; `where` names it in messages. */
export function parseStreamState(stream: string, value: unknown, where: string): StreamState {
  // The one stream kept per organization, not per project (sync/usage.ts).
  if (stream === 'usage') return parseUsageState(value, where);
  if (!isObject(value)) throw configError(`The state for stream "${stream}" (${where}) must be an object keyed by project slug. ${FIX}`);
  const out: StreamState = {};
  for (const [slug, cursor] of Object.entries(value)) {
    if (!isObject(cursor)) {
      throw configError(`The state for stream "${stream}", project "${slug}" (${where}) must be an object such as {"updated_at": "2026-01-01T00:00:00.000Z"}. ${FIX}`);
    }
    const clean: ProjectCursor = {};
    for (const [k, v] of Object.entries(cursor)) {
      if (k === 'resume') {
        clean.resume = parseResume(v, `${where}, stream "${stream}", project "${slug}"`);
        continue;
      }
      if (k === 'retry') {
        if (!isPaths(v)) throw configError(`The state for stream "${stream}", project "${slug}" (${where}) has retry = ${JSON.stringify(v).slice(0, 200)}, which is not a list of API paths. ${FIX}`);
        clean.retry = [...v];
        continue;
      }
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) {
        throw configError(`The state for stream "${stream}", project "${slug}" (${where}) has ${k} = ${JSON.stringify(v)}, which is not a date-time. ${FIX}`);
      }
      clean[k] = new Date(v).toISOString();
    }
    let key = slug;
    try {
      key = normaliseSlug(slug);
    } catch {
      // A slug that is no longer valid is carried through untouched; it is simply not used.
    }
    out[key] = clean;
  }
  return out;
}

const isTime = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isPaths = (v: unknown): v is string[] => Array.isArray(v) && v.every((p) => typeof p === 'string' && p.startsWith('/'));

function parseResume(v: unknown, where: string): ResumeMarker {
  const r = v as ResumeMarker;
  const ok = isObject(v) && Number.isInteger(r.from) && Number.isInteger(r.to) && r.from <= r.to &&
    [r.max, r.open, r.open_pipeline, r.cap, r.unseen].every((t) => t === undefined || isTime(t)) && (r.retry === undefined || isPaths(r.retry));
  if (!ok) throw configError(`The resume marker in ${where} is not {"from": n, "to": n, ...}. ${FIX}`);
  return { ...r };
}

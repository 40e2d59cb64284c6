import { normaliseSlug } from '../config.js';
import { configError } from '../errors.js';
import { streamByName } from '../streams/index.js';
import { migrateTapCircleCiState } from './migrate.js';

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
  /** What the first interrupted sync had reached: a resumed sync's cursor goes no further. */
  cap?: string;
}

/**
 * A project's position in one stream: `{"updated_at": "..."}` for pipelines,
 * `{"created_at": "...", "rescan_from": "..."}` for workflows (rescan_from: the oldest pipeline
 * whose workflows may still change), plus `resume` while a sync of the project is unfinished.
 * Jobs (full refresh) keep only `resume`.
 */
export type ProjectCursor = { [key: string]: string | ResumeMarker | undefined; resume?: ResumeMarker };
/** A stream's state: one cursor per project slug. O(projects), never O(pipelines). */
export type StreamState = Record<string, ProjectCursor>;
/** Every stream's state, by stream name. */
export type SyncState = Record<string, StreamState>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const FIX = 'Fix or remove the state file (a sync without state starts again from start_date).';

/** Checks one stream's state and normalises its slugs; `where` names it in messages. */
export function parseStreamState(stream: string, value: unknown, where: string): StreamState {
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

function parseResume(v: unknown, where: string): ResumeMarker {
  const r = v as ResumeMarker;
  const ok = isObject(v) && Number.isInteger(r.from) && Number.isInteger(r.to) && r.from <= r.to &&
    [r.max, r.open, r.open_pipeline, r.cap].every((t) => t === undefined || isTime(t));
  if (!ok) throw configError(`The resume marker in ${where} is not {"from": n, "to": n, ...}. ${FIX}`);
  return { ...r };
}

/**
 * Airbyte state: an array of STREAM state messages (what the platform and CAT pass), a single
 * such message, a legacy blob keyed by stream name, or tap-circle-ci's state. Unknown streams
 * are kept, unused.
 */
export function parseAirbyteState(raw: unknown, note?: (message: string) => void): SyncState {
  if (raw === null || raw === undefined) return {};
  // tap-circle-ci's state file, so its users switch without a full re-sync.
  const peer = migrateTapCircleCiState(raw, note);
  if (peer) return peer;
  const messages = Array.isArray(raw) ? raw : isObject(raw) && 'type' in raw ? [raw] : undefined;
  const state: SyncState = {};
  if (!messages) {
    if (!isObject(raw)) throw configError(`The state file must hold a JSON array of STREAM state messages. ${FIX}`);
    const keys = Object.keys(raw);
    // A legacy blob is keyed by stream; anything else (a Singer STATE, another connector's state) is not ours.
    if (keys.length && !keys.some((k) => streamByName(k))) {
      throw configError(
        `The state file is not a state of this source: it names no stream of it (${keys.slice(0, 5).join(', ')}). ` +
          `Expected an array of STREAM state messages for pipelines, workflows or jobs. ${FIX}`,
      );
    }
    for (const [name, value] of Object.entries(raw)) if (streamByName(name)) state[name] = parseStreamState(name, value, 'legacy state');
    return state;
  }
  for (const [i, m] of messages.entries()) {
    if (!isObject(m)) throw configError(`State message ${i + 1} is not an object. ${FIX}`);
    if (m.type === 'GLOBAL' || m.type === 'LEGACY') {
      throw configError(`State message ${i + 1} is of type ${String(m.type)}; source-circleci keeps per-stream (STREAM) state. ${FIX}`);
    }
    const stream = isObject(m.stream) ? m.stream : undefined;
    const name = isObject(stream?.stream_descriptor) ? stream.stream_descriptor.name : undefined;
    if (m.type !== 'STREAM' || typeof name !== 'string') {
      throw configError(`State message ${i + 1} is not a STREAM state ({"type": "STREAM", "stream": {"stream_descriptor": {"name": ...}, "stream_state": {...}}}). ${FIX}`);
    }
    state[name] = parseStreamState(name, stream?.stream_state ?? {}, `state message ${i + 1}`);
  }
  return state;
}

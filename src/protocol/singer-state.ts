import { configError } from '../errors.js';
import { perOrganization, streamByName } from '../streams/index.js';
import type { StreamDeclaration } from '../streams/stream.js';
import { parseStreamState, type StreamState, type SyncState } from '../sync/state.js';
import { isTapCircleCiBookmark, migratePipelines, migrateTapCircleCiState, migrateWorkflows, stoppedInWorkflows } from './tap-circle-ci-state.js';

/**
 * Singer STATE ⇄ the engine's state. The engine keeps, per stream, one cursor object per project
 * (`{"gh/acme/api": {"updated_at": "…", "rescan_from": "…"}}`); Singer sees the Meltano SDK's
 * partitioned bookmark, one partition per project:
 *
 * ```json
 * {"bookmarks": {"pipelines": {"partitions": [
 *   {"context": {"project_slug": "gh/acme/api"}, "replication_key": "updated_at",
 *    "replication_key_value": "2026-01-01T00:00:00.000Z"}]}}}
 * ```
 *
 * The stream's cursor field becomes `replication_key`/`replication_key_value`; every other key of
 * the cursor object (`rescan_from`, `resume`) is kept as it is, beside them.
 */

export type Bookmarks = Record<string, unknown>;
type Partition = Record<string, unknown> & { context: Record<string, string> };

/** A partition's context key: the project slug, or the organization id for the per-organization stream (usage). */
const contextKey = (stream: StreamDeclaration): string => (perOrganization(stream) ? 'organization_id' : 'project_slug');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const FIX = 'Fix or remove the state file (a sync without state starts again from start_date).';

/** The engine's state of one stream as a Singer bookmark. */
export function toSingerBookmark(stream: StreamDeclaration, state: StreamState): { partitions: Partition[] } {
  const field = stream.cursorField;
  const partitions = Object.entries(state).map(([slug, cursor]) => {
    const rest: Record<string, unknown> = { ...(cursor as Record<string, unknown>) };
    const value = field ? rest[field] : undefined;
    if (field) delete rest[field];
    return {
      context: { [contextKey(stream)]: slug },
      ...(typeof value === 'string' ? { replication_key: field, replication_key_value: value } : {}),
      ...rest,
    } as Partition;
  });
  return { partitions };
}

/** SDK bookmark keys that describe an unfinished or capped run; never part of our cursors. */
const TRANSIENT = new Set(['progress_markers', 'replication_key_signpost', 'starting_replication_value']);

function cursorOf(stream: StreamDeclaration, entry: Record<string, unknown>, where: string): Record<string, unknown> {
  const cursor: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (k === 'context' || k === 'replication_key' || k === 'replication_key_value' || TRANSIENT.has(k)) continue;
    cursor[k] = v;
  }
  const value = entry.replication_key_value;
  if (value === undefined || value === null) return cursor;
  const key = entry.replication_key ?? stream.cursorField;
  if (!stream.cursorField || key !== stream.cursorField) {
    throw configError(
      `The bookmark of stream "${stream.name}" (${where}) has replication_key ${JSON.stringify(key)}; ` +
        `${stream.cursorField ? `this tap replicates ${stream.name} by "${stream.cursorField}"` : `${stream.name} is full table and keeps no replication key`}. ${FIX}`,
    );
  }
  cursor[stream.cursorField] = value;
  return cursor;
}

/**
 * One stream's Singer bookmark → the engine's state. Accepts the partitioned form (ours), the
 * SDK's unpartitioned `{replication_key, replication_key_value}` (applied to every configured
 * project), and the engine's own `{slug: {...}}` (an Airbyte stream_state pasted in).
 */
export function fromSingerBookmark(stream: StreamDeclaration, value: unknown, slugs: readonly string[]): StreamState {
  const where = `bookmarks.${stream.name}`;
  if (!isObject(value)) throw configError(`The state's ${where} must be an object such as {"partitions": [...]}. ${FIX}`);
  if ('partitions' in value) {
    if (!Array.isArray(value.partitions)) throw configError(`The state's ${where}.partitions must be a list. ${FIX}`);
    const raw: Record<string, unknown> = {};
    const key = contextKey(stream);
    for (const [i, p] of value.partitions.entries()) {
      const slug = isObject(p) && isObject(p.context) ? p.context[key] : undefined;
      if (typeof slug !== 'string') {
        const example = key === 'project_slug' ? '"gh/acme/api"' : '"<organization id>"';
        throw configError(`The state's ${where}.partitions[${i}] has no context.${key}; each partition is {"context": {"${key}": ${example}}, "replication_key_value": "…"}. ${FIX}`);
      }
      raw[slug] = cursorOf(stream, p as Record<string, unknown>, `${where}.partitions[${i}]`);
    }
    return parseStreamState(stream.name, raw, `Singer state, ${where}`);
  }
  if ('replication_key_value' in value || 'replication_key' in value || 'progress_markers' in value) {
    if (perOrganization(stream)) {
      throw configError(`The state's ${where} is one bookmark for the whole stream; ${stream.name} is bookmarked per organization: {"partitions": [{"context": {"organization_id": "<organization id>"}, "replication_key_value": "…"}]}. ${FIX}`);
    }
    const cursor = cursorOf(stream, value, where);
    if (!Object.keys(cursor).length) return {};
    return parseStreamState(stream.name, Object.fromEntries(slugs.map((s) => [s, cursor])), `Singer state, ${where}`);
  }
  return parseStreamState(stream.name, value, `Singer state, ${where}`);
}

export interface ParsedSingerState {
  /** What the engine starts from. */
  state: SyncState;
  /**
   * The bookmarks to write back: the input's, untouched for every stream the engine does not
   * checkpoint in this run, except that tap-circle-ci's entries are replaced by their conversion.
   */
  bookmarks: Bookmarks;
}

/**
 * A `--state` file: a Singer state `{"bookmarks": {...}}` (also a whole STATE message, or
 * tap-circle-ci's state). Streams this tap does not know are carried through and not used.
 */
export function parseSingerState(raw: unknown, slugs: readonly string[], note?: (message: string) => void): ParsedSingerState {
  if (raw === null || raw === undefined) return { state: {}, bookmarks: {} };
  if (isObject(raw) && typeof raw.type === 'string' && raw.type.toUpperCase() === 'STATE' && 'value' in raw) raw = raw.value;
  if (!isObject(raw)) throw configError(`The state file must hold a JSON object such as {"bookmarks": {...}}. ${FIX}`);
  if (!('bookmarks' in raw)) {
    if (Object.keys(raw).length === 0) return { state: {}, bookmarks: {} };
    throw configError(`The state file has no "bookmarks" key; a Singer state looks like {"bookmarks": {"pipelines": {"partitions": [...]}}}. ${FIX}`);
  }
  if (!isObject(raw.bookmarks)) throw configError(`The state's "bookmarks" must be an object keyed by stream. ${FIX}`);
  const bookmarks: Bookmarks = structuredClone(raw.bookmarks);

  const whole = migrateTapCircleCiState(raw, note);
  const state: SyncState = {};
  if (whole) {
    for (const name of ['pipelines', 'workflows', 'jobs']) {
      const decl = streamByName(name)!;
      if (!(name in bookmarks)) continue;
      state[name] = whole[name] ?? {};
      bookmarks[name] = toSingerBookmark(decl, state[name]);
    }
    return { state, bookmarks };
  }

  // Ours, or a mix (a hand-edited file): tap-circle-ci entries are converted one by one.
  const legacy = (v: unknown) => isTapCircleCiBookmark(v) && Object.keys(v).length > 0;
  for (const [name, value] of Object.entries(bookmarks)) {
    const decl = streamByName(name);
    if (!decl || legacy(value)) continue;
    state[name] = fromSingerBookmark(decl, value, slugs);
  }
  for (const name of ['pipelines', 'workflows', 'jobs']) {
    const value = bookmarks[name];
    if (!legacy(value)) continue;
    if (name === 'pipelines') state[name] = migratePipelines(value as Record<string, unknown>);
    else if (name === 'workflows') state[name] = migrateWorkflows(value as Record<string, unknown>, state.pipelines ?? {}, stoppedInWorkflows(raw));
    else state[name] = {};
    note?.(`bookmarks.${name} is in tap-circle-ci's format; converted (see docs: switching from tap-circle-ci).`);
    bookmarks[name] = toSingerBookmark(streamByName(name)!, state[name]);
  }
  return { state, bookmarks };
}

import { configError } from '../errors.js';
import { parseStreamState, type StreamState, type SyncState } from '../sync/state.js';

/**
 * singer-io/tap-circle-ci's STATE, converted so its users switch without a full re-sync:
 *
 * ```json
 * {"currently_syncing": null,
 *  "bookmarks": {"pipelines": {"gh/acme/app": "2024-01-01T02:00:02.014000Z"},
 *                "workflows": {"<pipeline-uuid>": "2024-01-01T02:00:06.014000Z", "currently_syncing": null},
 *                "jobs": {}}}
 * ```
 *
 * - pipelines (per project, max `updated_at`) → `{slug: {updated_at}}`, the engine's own shape.
 * - workflows were bookmarked per pipeline id, which names no project. Each project that has a
 *   pipelines bookmark gets a workflows cursor (`created_at`) = the earlier of that project's
 *   pipelines bookmark and the newest workflows bookmark of the file. Workflows created since
 *   tap-circle-ci's last run are all newer than that, so none is lost; workflows still running
 *   at that run keep the status tap-circle-ci saw (as they would have with tap-circle-ci).
 *   With no workflows bookmark at all (tap-circle-ci never synced workflows), workflows start
 *   from `start_date`.
 * - jobs were FULL_TABLE, and tap-circle-ci kept only the last page of each workflow's jobs: no
 *   jobs cursor is carried over, so the first sync reads every job since `start_date` once (and
 *   fills what tap-circle-ci missed), then goes on incrementally.
 * - A run stopped inside its workflows stream (top-level `currently_syncing: "workflows"`, or a
 *   pipeline id left in `bookmarks.workflows.currently_syncing`): tap-circle-ci goes stream by
 *   stream, project by project (all pipelines, then all workflows, then all jobs), so by then
 *   every project's pipelines bookmark is new while the projects it had not reached still hold
 *   workflows from its previous run only. Which projects it finished cannot be read from the file
 *   (those bookmarks and that id are per pipeline and name no project), so no project gets a
 *   workflows cursor: workflows start from `start_date` once. That costs no extra request when
 *   jobs are selected (jobs start from `start_date` anyway), and re-emits workflows by key.
 * - Otherwise `currently_syncing` is dropped: pipelines bookmarks are written only after every
 *   project's pipelines were read, and a stop in the jobs stream (full table) changes nothing here.
 *
 * Pure; `note` receives what a user should be told (a log line).
 */

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const LEGACY_STREAMS = ['pipelines', 'workflows', 'jobs'] as const;
const SDK_KEYS = ['partitions', 'replication_key', 'replication_key_value', 'progress_markers'];

/** One stream's bookmark in tap-circle-ci's shape: a flat map of id → timestamp string. */
export function isTapCircleCiBookmark(value: unknown): value is Record<string, unknown> {
  if (!isObject(value)) return false;
  if (SDK_KEYS.some((k) => k in value)) return false;
  return Object.entries(value).every(([k, v]) => typeof v === 'string' || (k === 'currently_syncing' && (v === null || typeof v === 'string')));
}

const timestamps = (map: Record<string, unknown>): Array<[string, string]> =>
  Object.entries(map).filter((e): e is [string, string] => e[0] !== 'currently_syncing' && typeof e[1] === 'string');

function checkTime(stream: string, key: string, value: string): number {
  const t = Date.parse(value);
  if (Number.isNaN(t)) {
    throw configError(`The tap-circle-ci state has ${stream} bookmark "${key}" = ${JSON.stringify(value)}, which is not a date-time. Fix or remove the state file (a sync without state starts again from start_date).`);
  }
  return t;
}

/** tap-circle-ci's pipelines map → the engine's pipelines state (slugs normalised). */
export function migratePipelines(map: Record<string, unknown>): StreamState {
  const raw: Record<string, { updated_at: string }> = {};
  for (const [slug, value] of timestamps(map)) raw[slug] = { updated_at: new Date(checkTime('pipelines', slug, value)).toISOString() };
  return parseStreamState('pipelines', raw, 'tap-circle-ci state');
}

/**
 * Whether tap-circle-ci stopped inside its workflows stream, so some projects' workflows were not
 * read since the pipelines bookmarks were written. `raw` is the whole state file.
 */
export function stoppedInWorkflows(raw: unknown): boolean {
  if (!isObject(raw)) return false;
  const workflows = isObject(raw.bookmarks) ? raw.bookmarks.workflows : undefined;
  return raw.currently_syncing === 'workflows' || (isObject(workflows) && typeof workflows.currently_syncing === 'string');
}

/**
 * tap-circle-ci's per-pipeline workflows map → one cursor per project of `pipelines` (the
 * engine's pipelines state, whatever format it came in). Empty when the map holds no bookmark,
 * or when the run that wrote it stopped inside its workflows stream (see stoppedInWorkflows).
 */
export function migrateWorkflows(map: Record<string, unknown>, pipelines: StreamState, stopped = false): StreamState {
  const times = timestamps(map).map(([id, v]) => checkTime('workflows', id, v));
  if (!times.length || stopped) return {};
  const newest = Math.max(...times);
  const out: StreamState = {};
  for (const [slug, cursor] of Object.entries(pipelines)) {
    const p = typeof cursor.updated_at === 'string' ? Date.parse(cursor.updated_at) : NaN;
    if (Number.isNaN(p)) continue;
    out[slug] = { created_at: new Date(Math.min(p, newest)).toISOString() };
  }
  return out;
}

/**
 * Detects tap-circle-ci's state file (`{"bookmarks": {...}}` whose pipelines, workflows and jobs
 * entries are flat id → timestamp maps) and converts it to the engine's `SyncState`; undefined
 * when `raw` is not in that shape. Streams other than the three are dropped.
 */
export function migrateTapCircleCiState(raw: unknown, note?: (message: string) => void): SyncState | undefined {
  if (!isObject(raw) || !isObject(raw.bookmarks)) return undefined;
  const bookmarks = raw.bookmarks;
  const present = LEGACY_STREAMS.filter((s) => s in bookmarks);
  if (!present.length || !present.every((s) => isTapCircleCiBookmark(bookmarks[s]))) return undefined;
  // `{"bookmarks": {"pipelines": {}}}` is empty in every format: nothing to convert.
  if (!('currently_syncing' in raw) && present.every((s) => Object.keys(bookmarks[s] as object).length === 0)) return undefined;

  const state: SyncState = {};
  const pipelines = isObject(bookmarks.pipelines) ? migratePipelines(bookmarks.pipelines) : {};
  if (Object.keys(pipelines).length) state.pipelines = pipelines;
  const legacyWorkflows = isObject(bookmarks.workflows) ? timestamps(bookmarks.workflows).length : 0;
  const stopped = stoppedInWorkflows(raw);
  const workflows = isObject(bookmarks.workflows) ? migrateWorkflows(bookmarks.workflows, pipelines, stopped) : {};
  if (Object.keys(workflows).length) state.workflows = workflows;

  note?.(
    `State from tap-circle-ci detected: pipelines bookmarks of ${Object.keys(pipelines).length} project(s) kept as they are. ` +
      (stopped
        ? 'Its last run was stopped while it read workflows, and its workflows bookmarks (per pipeline id) do not say which projects it had finished, ' +
          'so workflows start from start_date for every project, once (records already loaded are re-sent with the same keys). '
        : legacyWorkflows
        ? `Its ${legacyWorkflows} workflows bookmarks are per pipeline id and name no project, so each project's workflows cursor is ` +
          `the earlier of its pipelines bookmark and the newest workflows bookmark (${Object.keys(workflows).length} project(s)); ` +
          'workflows still running at tap-circle-ci\'s last run keep the status it saw. '
        : 'It has no workflows bookmark, so workflows start from start_date. ') +
      'Jobs are full table, as before.',
  );
  return state;
}

/** Singer state ⇄ engine state, and tap-circle-ci's state migration (src/protocol/singer-state.ts, src/protocol/tap-circle-ci-state.ts). */
import { fromSingerBookmark, parseSingerState, toSingerBookmark } from '../src/protocol/singer-state.js';
import { migrateTapCircleCiState } from '../src/protocol/tap-circle-ci-state.js';
import { streamByName } from '../src/streams/index.js';
import type { StreamState } from '../src/sync/state.js';

const pipelines = streamByName('pipelines')!;
const workflows = streamByName('workflows')!;
const jobs = streamByName('jobs')!;
const SLUGS = ['gh/acme/api', 'bb/acme/web'];

describe('engine state ⇄ Singer partitions', () => {
  test('the cursor field becomes replication_key/_value; other keys are kept; the way back is exact', () => {
    const engine = {
      'gh/acme/api': { created_at: '2026-01-02T00:00:00.000Z', rescan_from: '2026-01-01T00:00:00.000Z' },
      'bb/acme/web': { created_at: '2026-01-03T00:00:00.000Z' },
    } as StreamState;
    const singer = toSingerBookmark(workflows, engine);
    expect(singer).toEqual({
      partitions: [
        { context: { project_slug: 'gh/acme/api' }, replication_key: 'created_at', replication_key_value: '2026-01-02T00:00:00.000Z', rescan_from: '2026-01-01T00:00:00.000Z' },
        { context: { project_slug: 'bb/acme/web' }, replication_key: 'created_at', replication_key_value: '2026-01-03T00:00:00.000Z' },
      ],
    });
    expect(fromSingerBookmark(workflows, JSON.parse(JSON.stringify(singer)), SLUGS)).toEqual(engine);
  });

  test('jobs (no cursor) keep an empty partition list', () => {
    expect(toSingerBookmark(jobs, {})).toEqual({ partitions: [] });
    expect(fromSingerBookmark(jobs, { partitions: [] }, SLUGS)).toEqual({});
  });

  test('the SDK\'s unpartitioned bookmark applies to every project; progress markers are dropped', () => {
    const value = { replication_key: 'updated_at', replication_key_value: '2026-02-01T00:00:00Z', progress_markers: { Note: 'x' } };
    expect(fromSingerBookmark(pipelines, value, SLUGS)).toEqual({
      'gh/acme/api': { updated_at: '2026-02-01T00:00:00.000Z' },
      'bb/acme/web': { updated_at: '2026-02-01T00:00:00.000Z' },
    });
  });

  test('a replication key other than the stream\'s is refused', () => {
    const value = { partitions: [{ context: { project_slug: 'gh/acme/api' }, replication_key: 'created_at', replication_key_value: '2026-02-01T00:00:00Z' }] };
    expect(() => fromSingerBookmark(pipelines, value, SLUGS)).toThrow(/replicates pipelines by "updated_at"/);
  });
});

describe('tap-circle-ci state', () => {
  const peer = {
    currently_syncing: null,
    bookmarks: {
      pipelines: { 'gh/acme/api': '2024-01-01T02:00:02.014000Z', 'github/acme/web': '2024-01-03T00:00:00.000000Z' },
      workflows: { '64f4fd25-…': '2024-01-02T00:00:00.000000Z', '862f7748-…': '2023-12-01T01:00:06.007000Z', currently_syncing: null },
      jobs: {},
    },
  };

  test('is detected and converted: pipelines per project, workflows = min(pipelines bookmark, newest workflows bookmark)', () => {
    const notes: string[] = [];
    expect(migrateTapCircleCiState(peer, (n) => notes.push(n))).toEqual({
      pipelines: { 'gh/acme/api': { updated_at: '2024-01-01T02:00:02.014Z' }, 'gh/acme/web': { updated_at: '2024-01-03T00:00:00.000Z' } },
      workflows: { 'gh/acme/api': { created_at: '2024-01-01T02:00:02.014Z' }, 'gh/acme/web': { created_at: '2024-01-02T00:00:00.000Z' } },
    });
    expect(notes.join(' ')).toMatch(/per pipeline id/);
  });

  test('without workflows bookmarks, workflows start from start_date', () => {
    const state = migrateTapCircleCiState({ bookmarks: { pipelines: { 'gh/acme/api': '2024-01-01T00:00:00Z' }, workflows: {}, jobs: {} } });
    expect(state).toEqual({ pipelines: { 'gh/acme/api': { updated_at: '2024-01-01T00:00:00.000Z' } } });
  });

  // As tap-circle-ci writes it after each pipeline of its workflows stream (workflows.py:92-94):
  // every project's pipelines bookmark is already new (sync.py:32), the workflows map holds the
  // pipelines done so far, and the pipeline it did last.
  const midRun = {
    currently_syncing: 'workflows',
    bookmarks: {
      pipelines: { 'gh/acme/api': '2024-01-03T00:00:00.000000Z', 'bb/acme/web': '2024-01-03T01:00:00.000000Z' },
      workflows: { '64f4fd25-…': '2024-01-02T23:00:00.000000Z', '862f7748-…': '2023-12-01T01:00:06.007000Z', currently_syncing: '862f7748-…' },
      jobs: {},
    },
  };

  test('stopped inside its workflows stream: pipelines kept, no workflows cursor for any project (start_date), and the note says why', () => {
    const notes: string[] = [];
    expect(migrateTapCircleCiState(midRun, (n) => notes.push(n))).toEqual({
      pipelines: { 'gh/acme/api': { updated_at: '2024-01-03T00:00:00.000Z' }, 'bb/acme/web': { updated_at: '2024-01-03T01:00:00.000Z' } },
    });
    expect(notes.join(' ')).toMatch(/stopped while it read workflows.*start from start_date/);
    // Through the Singer face's parser, the workflows bookmark written back is empty too.
    const { state, bookmarks } = parseSingerState(midRun, SLUGS);
    expect(state.workflows).toEqual({});
    expect(bookmarks.workflows).toEqual({ partitions: [] });
  });

  test('a pipeline id left in workflows.currently_syncing is enough to tell (a later run without workflows selected)', () => {
    const state = migrateTapCircleCiState({ ...midRun, currently_syncing: 'jobs' });
    expect(state?.workflows).toBeUndefined();
  });

  test('stopped in its jobs or pipelines stream: workflows converted as after a finished run', () => {
    for (const currently of ['jobs', 'pipelines', null]) {
      const raw = { currently_syncing: currently, bookmarks: { ...midRun.bookmarks, workflows: { ...midRun.bookmarks.workflows, currently_syncing: null } } };
      expect(migrateTapCircleCiState(raw)?.workflows).toEqual({
        'gh/acme/api': { created_at: '2024-01-02T23:00:00.000Z' },
        'bb/acme/web': { created_at: '2024-01-02T23:00:00.000Z' },
      });
    }
  });

  test('a mixed file (our pipelines, its workflows) from a run stopped in workflows: no workflows cursor either', () => {
    const { state } = parseSingerState({
      currently_syncing: 'workflows',
      bookmarks: {
        workflows: { '64f4fd25-…': '2024-06-01T00:00:00Z', currently_syncing: '64f4fd25-…' },
        pipelines: { partitions: [{ context: { project_slug: 'gh/acme/api' }, replication_key: 'updated_at', replication_key_value: '2024-05-01T00:00:00Z' }] },
      },
    }, SLUGS);
    expect(state.workflows).toEqual({});
  });

  test('other shapes are not tap-circle-ci\'s: undefined', () => {
    for (const raw of [
      undefined, null, [], {},
      [{ type: 'STREAM', stream: { stream_descriptor: { name: 'pipelines' }, stream_state: {} } }],
      { pipelines: { 'gh/acme/api': { updated_at: '2024-01-01T00:00:00Z' } } },
      { bookmarks: { pipelines: { partitions: [] } } },
      { bookmarks: { pipelines: { 'gh/acme/api': { updated_at: '2024-01-01T00:00:00Z' } } } },
      { bookmarks: { pipelines: {} } },
    ]) {
      expect(migrateTapCircleCiState(raw)).toBeUndefined();
    }
  });

  test('a bad timestamp in a tap-circle-ci state is a config error', () => {
    expect(() => migrateTapCircleCiState({ bookmarks: { pipelines: { 'gh/acme/api': 'yesterday' } } })).toThrow(/not a date-time/);
  });

  test('as --state of the Singer face: bookmarks rewritten as partitions, unknown streams kept', () => {
    const { state, bookmarks } = parseSingerState({ ...peer, bookmarks: { ...peer.bookmarks, contexts: { a: 1 } } }, SLUGS);
    expect(Object.keys(state).sort()).toEqual(['jobs', 'pipelines', 'workflows']);
    expect((bookmarks.pipelines as { partitions: unknown[] }).partitions).toHaveLength(2);
    expect(bookmarks.jobs).toEqual({ partitions: [] });
    expect(bookmarks.contexts).toEqual({ a: 1 });
  });

  test('a mixed file (ours for pipelines, tap-circle-ci\'s for workflows) converts the legacy part from our pipelines', () => {
    const { state } = parseSingerState({
      bookmarks: {
        workflows: { '64f4fd25-…': '2024-06-01T00:00:00Z' },
        pipelines: { partitions: [{ context: { project_slug: 'gh/acme/api' }, replication_key: 'updated_at', replication_key_value: '2024-05-01T00:00:00Z' }] },
      },
    }, SLUGS);
    expect(state.workflows).toEqual({ 'gh/acme/api': { created_at: '2024-05-01T00:00:00.000Z' } });
  });
});

/**
 * Insights streams in-process: the pure rules (spellings, the 90-day start-date) and the crawl of
 * workflow_runs against a scripted CircleCI, where the moment a run appears is exact: a run created
 * during a sync and listed after its name was read is caught by the next sync (the signpost); a
 * full refresh reads from start_date; a stream nobody selected costs no request.
 */
import { HttpError, type CircleCIClient } from '../src/circleci/client.js';
import { parseConfig } from '../src/config.js';
import { crawl, type Selection, type SyncSink } from '../src/sync/crawler.js';
import type { StreamState, SyncState } from '../src/sync/state.js';
import { EDGE_MARGIN_MS, INSIGHTS_KEEP_MS, listIn, startDate, underscored } from '../src/streams/insights.js';
import { runRecord, workflowRuns } from '../src/streams/workflow-runs.js';

const DAY = 86_400_000;
const MIN = 60_000;
const iso = (t: number) => new Date(t).toISOString();

describe('spellings', () => {
  test('flaky tests: hyphenated keys become underscored; an underscored twin wins', () => {
    expect(underscored({ 'test-name': 'a', 'times-flaked': 2, classname: 'C' })).toEqual({ test_name: 'a', times_flaked: 2, classname: 'C' });
    expect(underscored({ 'time-wasted': 1, time_wasted: 5 })).toEqual({ time_wasted: 5 });
  });

  test('the list is found under either name; a body without it names the endpoint', () => {
    expect(listIn({ 'flaky-tests': [{ a: 1 }, 'x'], 'total-flaky-tests': 1 }, 'flaky_tests', '/p')).toEqual([{ a: 1 }]);
    expect(listIn({ flaky_tests: [{ a: 2 }] }, 'flaky_tests', '/p')).toEqual([{ a: 2 }]);
    expect(() => listIn({ items: [] }, 'flaky_tests', '/insights/gh/a/b/flaky-tests')).toThrow(/GET \/insights\/gh\/a\/b\/flaky-tests answered without a "flaky_tests" list.*base_url/);
  });

  test('runs: credits_used whichever way it is spelled, one spelling out, the connector fields added', () => {
    expect(runRecord({ id: 'w', 'credits-used': 7 }, 'gh/a/b', 'build')).toEqual({ id: 'w', credits_used: 7, _project_slug: 'gh/a/b', _workflow_name: 'build' });
    expect(runRecord({ id: 'w', credits_used: 3 }, 'gh/a/b', 'build')).toEqual({ id: 'w', credits_used: 3, _project_slug: 'gh/a/b', _workflow_name: 'build' });
    expect(runRecord({ id: 'w' }, 'gh/a/b', 'build').credits_used).toBeNull();
  });

  test('a run may change while it has no stopped_at or a status that is not final', () => {
    expect(workflowRuns.mayChange!({ stopped_at: null, status: null })).toBe(true);
    expect(workflowRuns.mayChange!({ stopped_at: '2026-01-01T00:00:00Z', status: 'on_hold' })).toBe(true);
    expect(workflowRuns.mayChange!({ stopped_at: '2026-01-01T00:00:00Z', status: 'failed' })).toBe(false);
  });
});

describe('the start-date of a runs request', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  test('is the cursor, or start_date, when inside the 90 days', () => {
    expect(startDate(now - 3 * DAY, now)).toBe(now - 3 * DAY);
  });
  test('never older than what Insights keep, less the margin', () => {
    expect(startDate(now - 400 * DAY, now)).toBe(now - INSIGHTS_KEEP_MS + EDGE_MARGIN_MS);
    expect(INSIGHTS_KEEP_MS).toBe(90 * DAY);
    expect(EDGE_MARGIN_MS).toBe(10 * MIN);
  });
});

/**
 * A scripted CircleCI: workflow names and their runs, as lists that a test changes between
 * requests. Records every request; the clock is `now`.
 */
class Scripted {
  now = Date.parse('2026-06-01T12:00:00Z');
  names = ['build', 'deploy'];
  runs: Record<string, { id: string; created_at: string; stopped_at: string | null; status: string }[]> = { build: [], deploy: [] };
  asked: string[] = [];
  /** Insights answer 404; with `project` too, so does GET /project/{slug} (a wrong slug). */
  missing?: 'insights' | 'project';
  /** Called after each request is answered (the world moves while the sync runs). */
  after?: (path: string) => void;
  client(): CircleCIClient {
    // As the real client: CircleCI's clock is known from its first answer on, this machine's before.
    let answered = false;
    const answer = (path: string, query: Record<string, string | undefined> = {}): unknown => {
      answered = true;
      this.asked.push(`${path}?${new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined)).toString()}`);
      let body: unknown;
      if (this.missing && (path.startsWith('/insights/') || (this.missing === 'project' && path.startsWith('/project/')))) throw new HttpError(404, path, 'Not Found');
      if (path.startsWith('/project/') || path === '/me') body = {};
      else if (/\/workflows$/.test(path)) body = { items: this.names.map((name) => ({ name })), next_page_token: null };
      else if (/\/workflows\//.test(path)) {
        const name = decodeURIComponent(path.split('/').pop()!);
        const since = Date.parse(query['start-date'] ?? '1970-01-01T00:00:00Z');
        body = { items: (this.runs[name] ?? []).filter((r) => Date.parse(r.created_at) >= since).reverse(), next_page_token: null };
      } else body = { flaky_tests: [] };
      this.after?.(path);
      return body;
    };
    return {
      firstAnswerAt: this.now,
      serverNow: () => (answered ? this.now : Date.now()),
      get: async (path: string, query?: Record<string, string | undefined>) => answer(path, query),
      pages: async function* (path: string, query?: Record<string, string | undefined>) {
        yield (answer(path, query) as { items: unknown[] }).items;
      },
    } as unknown as CircleCIClient;
  }
}

class Sink implements SyncSink {
  records: Record<string, Record<string, unknown>[]> = {};
  state: SyncState = {};
  logs: string[] = [];
  record(stream: string, data: Record<string, unknown>): void {
    (this.records[stream] ??= []).push(data);
  }
  checkpoint(stream: string, state: StreamState): void {
    this.state[stream] = structuredClone(state);
  }
  log(level: string, message: string): void {
    this.logs.push(`${level} ${message}`);
  }
  status(): void {}
}

const SLUG = 'gh/acme/api';
const config = (start: string) => parseConfig({ token: 'unit-token-0123456789', project_slugs: [SLUG], start_date: start });
const sync = async (world: Scripted, selection: Map<string, Selection>, state: SyncState, start = '2026-01-01T00:00:00Z') => {
  const sink = new Sink();
  await crawl({ config: config(start), client: world.client(), selection, state, sink });
  return sink;
};

describe('workflow_runs in a crawl', () => {
  const incremental = new Map<string, Selection>([['workflow_runs', { mode: 'incremental' }]]);

  test('a run created during a sync, listed after its name was read, is read by the next sync (the signpost)', async () => {
    const world = new Scripted();
    const t = world.now;
    world.runs.build = [{ id: 'old', created_at: iso(t - DAY), stopped_at: iso(t - DAY + 10 * MIN), status: 'success' }];
    // While the sync reads deploy's runs, build gets a new run (its list was read already) and
    // deploy one a minute later, both finished by the time they are read.
    world.after = (path) => {
      if (!path.endsWith('/workflows/build')) return;
      world.now = t + 5 * MIN;
      world.runs.build.push({ id: 'missed', created_at: iso(t + 2 * MIN), stopped_at: iso(t + 3 * MIN), status: 'success' });
      world.runs.deploy.push({ id: 'later', created_at: iso(t + 3 * MIN), stopped_at: iso(t + 4 * MIN), status: 'success' });
      world.after = undefined;
    };
    const first = await sync(world, incremental, {});
    expect(first.records.workflow_runs.map((r) => r.id)).toEqual(['old', 'later']);
    const second = await sync(world, incremental, first.state);
    expect(second.records.workflow_runs.map((r) => r.id)).toContain('missed');
    // The first sync's start, as CircleCI's clock saw it, less five minutes: no further back.
    expect(world.asked.filter((a) => a.includes('/workflows/build')).at(-1)).toContain(`start-date=${encodeURIComponent(iso(t - 5 * MIN))}`);
  });

  test('a full refresh reads from start_date, or from 90 days back less ten minutes; nothing selected costs nothing', async () => {
    const world = new Scripted();
    await sync(world, new Map([['workflow_runs', { mode: 'full_refresh' }]]), { workflow_runs: { [SLUG]: { created_at: iso(world.now) } } }, iso(world.now - 30 * DAY));
    expect(world.asked.filter((a) => a.includes('/workflows/')).every((a) => a.includes(`start-date=${encodeURIComponent(iso(world.now - 30 * DAY))}`))).toBe(true);
    world.asked = [];
    await sync(world, new Map([['workflow_runs', { mode: 'full_refresh' }]]), {}, '2025-01-01T00:00:00Z');
    expect(world.asked.filter((a) => a.includes('/workflows/')).every((a) => a.includes(`start-date=${encodeURIComponent(iso(world.now - 90 * DAY + 10 * MIN))}`))).toBe(true);
    expect(world.asked.every((a) => a.includes('all-branches=true'))).toBe(true);
    expect(world.asked.length).toBe(3);
    world.asked = [];
    await sync(world, new Map([['projects', { mode: 'full_refresh' }]]), {});
    expect(world.asked.some((a) => a.includes('/insights/'))).toBe(false);
  });

  test('Insights answering 404 for a project that exists: one WARN, the state kept, the sync goes on', async () => {
    const world = new Scripted();
    world.missing = 'insights';
    const saved = { created_at: '2026-05-01T00:00:00.000Z', signpost: '2026-04-30T23:55:00.000Z' };
    const sink = await sync(world, incremental, { workflow_runs: { [SLUG]: saved } });
    expect(sink.logs.filter((l) => l.startsWith('WARN'))).toEqual([expect.stringMatching(/^WARN gh\/acme\/api: workflow_runs skipped: GET \/insights\/gh\/acme\/api\/workflows answered 404/)]);
    expect(sink.state.workflow_runs[SLUG]).toEqual(saved);
  });

  test('a saved cursor older than the 90 days CircleCI keeps: a WARN naming the gap; a first sync from an old start_date: none', async () => {
    const world = new Scripted();
    const edge = world.now - 90 * DAY + 10 * MIN;
    const stale = await sync(world, incremental, { workflow_runs: { [SLUG]: { created_at: iso(world.now - 100 * DAY) } } }, '2025-01-01T00:00:00Z');
    expect(stale.logs.filter((l) => l.startsWith('WARN'))).toEqual([
      `WARN gh/acme/api: workflow_runs was last read up to ${iso(world.now - 100 * DAY)}, and CircleCI keeps 90 days: runs created before ${iso(edge)} that the last sync did not read are gone. Sync at least every 80 days to keep every run (docs/insights.md).`,
    ]);
    expect(world.asked.filter((a) => a.includes('/workflows/')).every((a) => a.includes(`start-date=${encodeURIComponent(iso(edge))}`))).toBe(true);
    const first = await sync(world, incremental, {}, '2025-01-01T00:00:00Z');
    expect(first.logs.filter((l) => l.startsWith('WARN'))).toEqual([]);
    // A week old by CircleCI's clock (this machine's may be months apart): nothing is gone.
    const recent = await sync(world, incremental, { workflow_runs: { [SLUG]: { created_at: iso(world.now - 7 * DAY) } } }, '2025-01-01T00:00:00Z');
    expect(recent.logs.filter((l) => l.startsWith('WARN'))).toEqual([]);
  });

  test('a 404 because the project is not there is the wrong slug it is, not missing Insights', async () => {
    const world = new Scripted();
    world.missing = 'project';
    await expect(sync(world, incremental, {})).rejects.toThrow(/Project "gh\/acme\/api" was not found, or this token cannot access it/);
  });
});

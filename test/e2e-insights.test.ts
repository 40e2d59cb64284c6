/**
 * workflow_runs and flaky_tests (issue 21) through both spawned CLIs against the mock's Insights
 * routes: a first sync reads what CircleCI still keeps (90 days, less a documented ten-minute
 * margin, or from start_date if later) and equals the mock's truth; incremental rounds, with
 * CircleCI's clock moving during and between them, converge on the truth; a run read while going
 * is read again once finished; projects without Insights (404) are one WARN each, the sync
 * succeeds and their state is kept; both key spellings; a steady sync costs one names request per
 * project and one runs request per workflow name.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { insightsTruth } from '../mock/insightsRoutes.js';
import { AIRBYTE_CLI, TEST_TOKEN, byKey, configuredCatalog, keyOf, runCli, tempFiles, type Message, type StreamName } from './helpers.js';
import { airbyte, expectUnionEqualsTruth, singer } from './faces.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
/** docs/insights.md: the oldest start-date sent is ten minutes inside CircleCI's 90 days. */
const EDGE_MS = 90 * DAY - 10 * 60_000;
const INSIGHTS: StreamName[] = ['workflow_runs', 'flaky_tests'];
const UNAVAILABLE = 'bb/acme/web';

/** A sync's stderr and log messages, as text lines, whatever the face. */
function logsOf(messages: Message[], stderr: string): string[] {
  return [...messages.filter((m) => m.type === 'LOG').map((m) => `${m.log.level} ${m.log.message}`), ...stderr.split('\n')];
}

/** The saved workflow_runs cursor of one project in a face's state (undefined when there is none). */
function runsCursor(state: unknown, slug: string): unknown {
  if (Array.isArray(state)) return state.find((s: Message) => s.stream.stream_descriptor.name === 'workflow_runs')?.stream.stream_state[slug];
  return (state as Message | undefined)?.bookmarks?.workflow_runs?.partitions?.find((p: Message) => p.context.project_slug === slug);
}

type Spelling = 'hyphen' | 'underscore';
// Each face meets both spellings: one in its first sync, the other in its rounds.
describe.each([
  { name: airbyte.name, face: airbyte, firstSpelling: 'hyphen' as Spelling, roundsSpelling: 'underscore' as Spelling },
  { name: singer.name, face: singer, firstSpelling: 'underscore' as Spelling, roundsSpelling: 'hyphen' as Spelling },
])('$name: workflow_runs and flaky_tests', ({ face, firstSpelling, roundsSpelling }) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  // The Airbyte face reads as a full refresh, the Singer face as a first incremental sync: both read what CircleCI keeps.
  test(`a first sync reads the 90 days CircleCI keeps and equals the mock's truth; 404 projects are one WARN each (${firstSpelling} keys)`, async () => {
    const world = new World({ seed: 21, historyDays: 95, pipelinesPerDay: 1.5 });
    mock = await startMockServer({ world, token: TEST_TOKEN, insightsKeyStyle: firstSpelling, insightsUnavailable: [UNAVAILABLE] });
    const now = world.now().getTime();
    // start_date older than what Insights keep: the 90 days are what there is.
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: new Date(now - 200 * DAY).toISOString(), base_url: mock.baseUrl };
    const full = tempFiles({ config, catalog: configuredCatalog({ workflow_runs: 'full_refresh', flaky_tests: 'full_refresh' }) });
    const { cli, args } = face === airbyte ? { cli: AIRBYTE_CLI, args: ['read', '--config', full.config, '--catalog', full.catalog] } : await face.command(config, undefined, INSIGHTS);
    const r = await runCli(cli, args);
    expect(r.code).toBe(0);
    const { records } = face.parse(r.messages, undefined, INSIGHTS);

    const available = world.projectSlugs().filter((s) => s !== UNAVAILABLE);
    const truth = insightsTruth(world, available, new Date(now - EDGE_MS));
    for (const s of INSIGHTS) expect({ s, repeated: records[s].length - byKey(s, records[s]).size }).toEqual({ s, repeated: 0 });
    expectUnionEqualsTruth({ workflow_runs: byKey('workflow_runs', records.workflow_runs), flaky_tests: byKey('flaky_tests', records.flaky_tests) }, truth as unknown as Record<string, unknown[]>, INSIGHTS);
    // What makes the world worth it: runs past the edge exist, none is read; some runs still going; flaky tests.
    const older = world.groundTruth(new Date(0)).workflows.filter((w) => Date.parse(String(w.created_at)) < now - 90 * DAY && w.project_slug !== UNAVAILABLE);
    expect(older.length).toBeGreaterThan(0);
    expect(records.workflow_runs.every((x: Message) => Date.parse(x.created_at) >= now - EDGE_MS)).toBe(true);
    expect(records.workflow_runs.some((x: Message) => x.stopped_at === null)).toBe(true);
    expect(records.flaky_tests.length).toBeGreaterThan(0);
    // One spelling out, whichever came in.
    expect(records.workflow_runs.every((x: Message) => Number.isInteger(x.credits_used) && !('credits-used' in x))).toBe(true);
    expect(records.flaky_tests.every((x: Message) => typeof x.test_name === 'string' && !('test-name' in x))).toBe(true);

    // The project without Insights: one WARN per stream, nothing else failed.
    const warns = logsOf(r.messages, r.stderr).filter((l) => l.includes(UNAVAILABLE) && /WARN/.test(l));
    expect(warns).toHaveLength(2);
    expect(warns.join('\n')).toMatch(/workflow_runs skipped: GET \/insights\/bb\/acme\/web\/workflows answered 404/);
    expect(warns.join('\n')).toMatch(/flaky_tests skipped: GET \/insights\/bb\/acme\/web\/flaky-tests answered 404/);

    // Cost: per project one names page, one flaky-tests request, and per workflow name its pages
    // of runs (20 a page); where Insights answer 404, one GET /project/{slug} each to tell a
    // missing project from missing Insights.
    const runsPages = available.reduce((n, slug) => {
      const perName = new Map<string, number>();
      for (const x of truth.workflow_runs.filter((x) => x._project_slug === slug)) perName.set(x._workflow_name, (perName.get(x._workflow_name) ?? 0) + 1);
      return n + [...perName.values()].reduce((m, k) => m + Math.ceil(k / 20), 0);
    }, 0);
    expect(mock.counters.byRoute.insights).toBe(available.length * 2 + runsPages + 2);
    expect(mock.counters.byRoute.project).toBe(2);
    expect(mock.counters.total).toBe(mock.counters.byRoute.insights + 2);
  });

  test(`incremental rounds under a moving clock converge on the truth; runs read going are read again finished; a project whose Insights vanish for a round keeps its state (${roundsSpelling} keys)`, async () => {
    const world = new World({ seed: 4, historyDays: 3, pipelinesPerDay: 48, projects: ['gh/acme/api', UNAVAILABLE] });
    const unavailable: string[] = [];
    mock = await startMockServer({ world, token: TEST_TOKEN, insightsKeyStyle: roundsSpelling, insightsUnavailable: unavailable, clockStepMs: 30_000 });
    // start_date inside the 90 days: the first sync reads from there.
    const startDate = new Date(world.now().getTime() - 2 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const union = { workflow_runs: new Map<string, Message>(), flaky_tests: new Map<string, Message>() };
    const readGoing = new Set<string>();
    const syncWindows: [number, number][] = [];
    let state: unknown;
    const gaps = [0, 2, 20, 1, 40].map((h) => h * HOUR);
    for (const [round, gap] of [...gaps, 0].entries()) {
      if (round === gaps.length) mock.setClock(0);
      world.advance(gap);
      // Round 2: the project's Insights answer 404 (a Server downgrade, an outage): WARN, state kept.
      if (round === 2) unavailable.push(UNAVAILABLE);
      mock.resetCounters();
      const { cli, args } = await face.command(config, state, INSIGHTS);
      const r = await runCli(cli, args);
      expect(r.code).toBe(0);
      const { records, state: next } = face.parse(r.messages, state, INSIGHTS);
      for (const s of INSIGHTS) expect({ s, repeated: records[s].length - byKey(s, records[s]).size }).toEqual({ s, repeated: 0 });
      for (const x of records.workflow_runs) if (x.stopped_at === null) readGoing.add(keyOf('workflow_runs', x));
      expect(records.workflow_runs.every((x: Message) => Date.parse(x.created_at) >= startDate.getTime())).toBe(true);
      byKey('workflow_runs', records.workflow_runs, union.workflow_runs);
      // A snapshot: this round's list replaces the last (the project that was skipped keeps its old one).
      const listed = new Set(records.flaky_tests.map((x: Message) => x._project_slug));
      for (const [k, v] of union.flaky_tests) if (listed.has(v._project_slug)) union.flaky_tests.delete(k);
      byKey('flaky_tests', records.flaky_tests, union.flaky_tests);
      if (round === 2) {
        expect(logsOf(r.messages, r.stderr).filter((l) => l.includes(`${UNAVAILABLE}: workflow_runs skipped`))).toHaveLength(1);
        expect(runsCursor(next, UNAVAILABLE)).toEqual(runsCursor(state, UNAVAILABLE));
        expect(runsCursor(next, UNAVAILABLE)).toBeDefined();
        unavailable.length = 0;
      }
      state = next;
      const log = mock.counters.log;
      syncWindows.push([log[0].at, log[log.length - 1].at]);
    }

    const truth = insightsTruth(world, world.projectSlugs(), startDate);
    expectUnionEqualsTruth(union, truth as unknown as Record<string, unknown[]>, INSIGHTS);
    // Runs first read going were read again once finished.
    const finished = [...readGoing].filter((k) => union.workflow_runs.get(k)?.stopped_at !== null);
    expect(finished.length).toBeGreaterThan(0);
    // Runs created while a sync ran (after it listed their names or their first page) are there.
    const during = truth.workflow_runs.filter((x) => syncWindows.some(([a, b]) => Date.parse(x.created_at) > a && Date.parse(x.created_at) <= b));
    expect(during.length).toBeGreaterThan(0);
  });
});

/**
 * The mock's Insights routes (mock/insightsRoutes.ts): runs derived from the world's own workflows,
 * newest first over keyset pages, gone after 90 days, the reference's date rules, both key
 * spellings, flaky tests derived from the world's test results, and 404 where Insights are not
 * available. Real HTTP over 127.0.0.1.
 */
import { startMockServer, type MockOptions, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { insightsTruth } from '../mock/insightsRoutes.js';
import { MOCK_TOKEN, allPages, call } from './mock-client.js';

const TOKEN = MOCK_TOKEN;
const DAY = 86_400_000;
const T0 = new Date('2026-03-01T12:00:00Z');
const SLUG = 'gh/acme/api';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let server: MockServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(world: World, opts: Partial<MockOptions> = {}): Promise<MockServer> {
  server = await startMockServer({ world, token: TOKEN, ...opts });
  return server;
}

async function get(s: MockServer, path: string, query: Record<string, string> = {}): Promise<{ status: number; body: Any }> {
  const q = new URLSearchParams(query).toString();
  return call(s, q ? `${path}?${q}` : path);
}


const runsPath = (name: string, slug = SLUG) => `/insights/${slug}/workflows/${encodeURIComponent(name)}`;

describe('workflow runs', () => {
  test('one run per workflow of the world, id = the workflow id, newest first over several pages; names listed with metrics', async () => {
    const world = new World({ seed: 5, now: T0, projects: [SLUG], historyDays: 6, pipelinesPerDay: 8 });
    const s = await start(world, { insightsPageSize: 4 });
    const names = await allPages(s, `/insights/${SLUG}/workflows`, { 'all-branches': 'true' });
    const workflows = world.groundTruth(new Date(0)).workflows;
    expect(names.items.map((n) => n.name)).toEqual([...new Set(workflows.map((w) => w.name))].sort());
    expect(names.items[0].metrics).toEqual(expect.objectContaining({ total_runs: workflows.filter((w) => w.name === names.items[0].name).length }));

    const runs: Any[] = [];
    let pages = 0;
    for (const { name } of names.items) {
      const r = await allPages(s, runsPath(name), { 'all-branches': 'true' });
      pages += r.pages;
      const times = r.items.map((x) => Date.parse(x.created_at));
      expect(times).toEqual([...times].sort((a, b) => b - a));
      runs.push(...r.items);
    }
    expect(pages).toBeGreaterThan(names.items.length);
    expect(runs.map((r) => r.id).sort()).toEqual(workflows.map((w) => w.id).sort());
    const byId = new Map(workflows.map((w) => [w.id, w]));
    for (const r of runs) {
      const w = byId.get(r.id)!;
      expect({ id: r.id, created_at: r.created_at, stopped_at: r.stopped_at, status: r.status }).toEqual({ id: w.id, created_at: w.created_at, stopped_at: w.stopped_at, status: w.status });
      expect(r.duration).toBe(w.stopped_at ? (Date.parse(w.stopped_at) - Date.parse(String(w.created_at))) / 1000 : null);
      expect(Number.isInteger(r.credits_used) && r.credits_used >= 0).toBe(true);
      expect(typeof r.is_approval).toBe('boolean');
    }
    // What the truth function says is what the routes serve.
    const truth = insightsTruth(world, [SLUG], new Date(0)).workflow_runs;
    expect(truth.map(({ _project_slug, _workflow_name, ...r }) => r).sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual([...runs].sort((a, b) => (a.id < b.id ? -1 : 1)));
  });

  test('credits follow job durations: 10 per started minute of each job that ran in the workflow', async () => {
    const world = new World({ seed: 8, now: T0, projects: [SLUG], historyDays: 3, pipelinesPerDay: 6 });
    const runs = insightsTruth(world, [SLUG], new Date(0)).workflow_runs;
    let checked = 0;
    for (const r of runs.filter((x) => x.stopped_at)) {
      const jobs = (world.jobsOf(r.id) ?? []).filter((j) => j.started_at && Date.parse(j.started_at) >= Date.parse(r.created_at));
      const expected = jobs.reduce((n, j) => n + 10 * Math.max(1, Math.ceil((Date.parse(j.stopped_at!) - Date.parse(j.started_at!)) / 60_000)), 0);
      expect({ id: r.id, credits: r.credits_used }).toEqual({ id: r.id, credits: expected });
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
    expect(runs.some((r) => r.credits_used > 0)).toBe(true);
  });

  test('a running run has null duration and stopped_at, and finishes as its workflow does', async () => {
    const world = new World({ seed: 3, now: T0, projects: [SLUG], historyDays: 2, pipelinesPerDay: 24 });
    const running = insightsTruth(world, [SLUG], new Date(0)).workflow_runs.find((r) => r.stopped_at === null);
    expect(running).toBeDefined();
    expect(running!.duration).toBeNull();
    world.advance(6 * DAY);
    const later = insightsTruth(world, [SLUG], new Date(0)).workflow_runs.find((r) => r.id === running!.id)!;
    expect(later.stopped_at).toBe(world.workflow(running!.id)!.stopped_at);
    expect(later.duration).toBeGreaterThan(0);
    expect(later.credits_used).toBeGreaterThanOrEqual(running!.credits_used);
  });

  test('runs older than 90 days are gone; start-date older than that, or end-date more than 90 days after it, is 400', async () => {
    const world = new World({ seed: 2, now: T0, projects: [SLUG], historyDays: 100, pipelinesPerDay: 1 });
    const s = await start(world, { insightsPageSize: 50 });
    const edge = T0.getTime() - 90 * DAY;
    const all = world.groundTruth(new Date(0)).workflows;
    expect(all.some((w) => Date.parse(String(w.created_at)) < edge)).toBe(true);
    const names = (await allPages(s, `/insights/${SLUG}/workflows`, { 'all-branches': 'true' })).items.map((n) => n.name);
    const runs: Any[] = [];
    for (const n of names) runs.push(...(await allPages(s, runsPath(n), { 'all-branches': 'true' })).items);
    expect(runs.map((r) => r.id).sort()).toEqual(all.filter((w) => Date.parse(String(w.created_at)) >= edge).map((w) => w.id).sort());

    const iso = (t: number) => new Date(t).toISOString();
    const name = names[0];
    expect((await get(s, runsPath(name), { 'all-branches': 'true', 'start-date': iso(edge - 1000) })).status).toBe(400);
    expect((await get(s, runsPath(name), { 'all-branches': 'true', 'start-date': iso(edge + 1000) })).status).toBe(200);
    expect((await get(s, runsPath(name), { 'all-branches': 'true', 'start-date': iso(edge + 1000), 'end-date': iso(edge + 1000 + 90 * DAY + 1) })).status).toBe(400);
    expect((await get(s, runsPath(name), { 'all-branches': 'true', 'end-date': iso(T0.getTime()) })).status).toBe(400);
    expect((await get(s, runsPath(name), { 'all-branches': 'true', 'start-date': 'yesterday' })).status).toBe(400);
    // start-date and end-date filter on created_at: [start, end).
    const mid = T0.getTime() - 30 * DAY;
    const window = (await allPages(s, runsPath(name), { 'all-branches': 'true', 'start-date': iso(mid - 10 * DAY), 'end-date': iso(mid) })).items;
    expect(window.map((r) => r.id).sort()).toEqual(
      runs.filter((r) => Date.parse(r.created_at) >= mid - 10 * DAY && Date.parse(r.created_at) < mid && all.find((w) => w.id === r.id)!.name === name).map((r) => r.id).sort(),
    );
  });

  test('without all-branches=true only the default branch is listed', async () => {
    const world = new World({ seed: 4, now: T0, projects: [SLUG], historyDays: 5, pipelinesPerDay: 8 });
    const s = await start(world, { insightsPageSize: 100 });
    const name = 'build-and-test';
    const all = (await get(s, runsPath(name), { 'all-branches': 'true' })).body.items;
    const main = (await get(s, runsPath(name))).body.items;
    expect(main.length).toBeGreaterThan(0);
    expect(main.length).toBeLessThan(all.length);
    expect(main.every((r: Any) => r.branch === 'main')).toBe(true);
  });

  test('page tokens: runs that arrive while a client pages appear on page 1 only; a token is bound to its query', async () => {
    const world = new World({ seed: 6, now: T0, projects: [SLUG], historyDays: 4, pipelinesPerDay: 12 });
    const s = await start(world, { insightsPageSize: 3 });
    const name = 'build-and-test';
    const before = new Set(insightsTruth(world, [SLUG], new Date(0)).workflow_runs.filter((r) => r._workflow_name === name).map((r) => r.id));
    const first = await get(s, runsPath(name), { 'all-branches': 'true' });
    world.advance(DAY / 2);
    const seen: string[] = first.body.items.map((r: Any) => r.id);
    let token = first.body.next_page_token;
    while (token) {
      const r = await get(s, runsPath(name), { 'all-branches': 'true', 'page-token': token });
      seen.push(...r.body.items.map((x: Any) => x.id));
      token = r.body.next_page_token;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(new Set(seen)).toEqual(before);
    expect((await get(s, runsPath('lint'), { 'all-branches': 'true', 'page-token': first.body.next_page_token })).status).toBe(404);
    expect((await get(s, runsPath(name), { 'page-token': first.body.next_page_token })).status).toBe(404);
  });

  test('the hyphenated spelling: credits-used instead of credits_used, the same values', async () => {
    const world = new World({ seed: 7, now: T0, projects: [SLUG], historyDays: 2, pipelinesPerDay: 6 });
    const plain = await start(world, { insightsPageSize: 100 });
    const underscored = (await get(plain, runsPath('build-and-test'), { 'all-branches': 'true' })).body.items;
    await plain.close();
    const s = await start(world, { insightsPageSize: 100, insightsKeyStyle: 'hyphen' });
    const hyphenated = (await get(s, runsPath('build-and-test'), { 'all-branches': 'true' })).body.items;
    expect(hyphenated.length).toBeGreaterThan(0);
    expect(hyphenated.every((r: Any) => !('credits_used' in r) && Number.isInteger(r['credits-used']))).toBe(true);
    expect(hyphenated.map(({ 'credits-used': c, ...rest }: Any) => ({ ...rest, credits_used: c }))).toEqual(underscored);
  });
});

describe('flaky tests', () => {
  test('derived from the failed test results of the world: both spellings, deterministic, counted', async () => {
    const world = new World({ seed: 9, now: T0, projects: [SLUG], historyDays: 10, pipelinesPerDay: 12 });
    const s = await start(world);
    const a = await get(s, `/insights/${SLUG}/flaky-tests`);
    expect(a.status).toBe(200);
    expect(a.body.total_flaky_tests).toBe(a.body.flaky_tests.length);
    const tests = a.body.flaky_tests;
    expect(tests.length).toBeGreaterThan(0);
    expect(tests).toEqual(insightsTruth(world, [SLUG], new Date(0)).flaky_tests.map(({ _project_slug, ...t }) => t));
    expect(new Set(tests.map((t: Any) => JSON.stringify([t.workflow_name, t.job_name, t.classname, t.test_name]))).size).toBe(tests.length);
    for (const t of tests) {
      // The latest failure names a real job of a real workflow whose results hold the failure.
      expect(world.workflow(t.workflow_id)?.name).toBe(t.workflow_name);
      const failed = world.jobTests(SLUG, t.job_number)!.filter((x) => x.result === 'failure' && x.name === t.test_name && x.classname === t.classname);
      expect(failed.length).toBeGreaterThan(0);
      expect(t.times_flaked).toBeGreaterThanOrEqual(1);
    }
    await s.close();
    const h = await start(world, { insightsKeyStyle: 'hyphen' });
    const b = await get(h, `/insights/${SLUG}/flaky-tests`);
    expect(b.body['total-flaky-tests']).toBe(tests.length);
    expect(b.body['flaky-tests'][0]).toEqual(expect.objectContaining({ 'test-name': tests[0].test_name, 'times-flaked': tests[0].times_flaked, 'workflow-created-at': tests[0].workflow_created_at }));
  });
});

describe('where Insights are not available', () => {
  test('the projects named answer 404 on every Insights route; the others and the rest of the API work', async () => {
    const other = 'bb/acme/web';
    const world = new World({ seed: 1, now: T0, projects: [SLUG, other], historyDays: 2, pipelinesPerDay: 4 });
    const s = await start(world, { insightsUnavailable: ['github/acme/api'] });
    for (const path of [`/insights/${SLUG}/workflows`, runsPath('build-and-test'), `/insights/${SLUG}/flaky-tests`]) expect((await get(s, path)).status).toBe(404);
    expect((await get(s, `/project/${SLUG}/pipeline`)).status).toBe(200);
    expect((await get(s, `/insights/${other}/workflows`)).status).toBe(200);
    expect((await get(s, `/insights/gh/acme/nope/workflows`)).status).toBe(404);
    expect(s.counters.byRoute.insights).toBe(5);
  });
});

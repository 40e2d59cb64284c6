/**
 * Nothing lost at the edges (issue 17): one record per primary key in every read, and unfinished
 * workflows followed to their end whatever lookback_days says. Both faces, through the spawned
 * CLIs, against the mock with its clock moving.
 */
import { startMockServer, type MockServer } from '../src/mock/server.js';
import { World } from '../src/mock/world.js';
import { AIRBYTE_CLI, TEST_TOKEN, byKey, configuredCatalog, keyOf, recordsOf, runCli, tempFiles, type Message, type StreamName } from './helpers.js';
import { airbyte, singer } from './faces.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const ALL: StreamName[] = ['projects', 'pipelines', 'workflows', 'jobs', 'job_details', 'tests'];
const UNFINISHED = new Set(['running', 'failing', 'on_hold', 'queued', 'not_running', 'blocked']);

/** Keys that occur more than once among one read's records of a stream. */
function repeatedKeys(stream: StreamName, records: Message[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const r of records) {
    const k = keyOf(stream, r);
    if (seen.has(k)) repeated.add(k);
    seen.add(k);
  }
  return [...repeated];
}

/** The ground truth in the shape a destination holds it (tests' key column _file is "" for a null file). */
const truthOf = (world: World, startDate: Date) => {
  const truth = world.groundTruth(startDate);
  return { ...truth, tests: truth.tests.map((t) => ({ ...t, _file: t.file ?? '' })) } as unknown as Record<StreamName, Message[]>;
};

describe('one record per primary key per read', () => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('Airbyte full refresh of every stream (Overwrite): no key twice, and the records are the ground truth, job details under the newer workflow', async () => {
    const world = new World({ seed: 37, historyDays: 4, pipelinesPerDay: 24 });
    mock = await startMockServer({ world, token: TEST_TOKEN, jobPageSize: 3 });
    const startDate = new Date(world.now().getTime() - 3 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const files = tempFiles({ config, catalog: configuredCatalog(Object.fromEntries(ALL.map((s) => [s, 'full_refresh']))) });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog]);
    expect(r.code).toBe(0);
    const truth = truthOf(world, startDate);
    for (const s of ALL) {
      const records = recordsOf(r.messages, s);
      expect({ s, repeated: repeatedKeys(s, records) }).toEqual({ s, repeated: [] });
      expect(byKey(s, records)).toEqual(byKey(s, truth[s]));
    }
    // The world has what made keys repeat: jobs listed by two workflows (a rerun from failed).
    const listings = new Map<string, number>();
    for (const j of truth.jobs) if (typeof j.job_number === 'number') listings.set(`${j.project_slug}|${j.job_number}`, (listings.get(`${j.project_slug}|${j.job_number}`) ?? 0) + 1);
    expect([...listings].filter(([k, n]) => n > 1 && byKey('job_details', truth.job_details).has(k)).length).toBeGreaterThan(0);
  });
});

describe.each([airbyte, singer])('$name with lookback_days 0', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('a workflow read unfinished is read again until it finishes, with its jobs, job details and tests', async () => {
    const world = new World({ seed: 43, historyDays: 3, pipelinesPerDay: 10 });
    mock = await startMockServer({ world, token: TEST_TOKEN, clockStepMs: 60_000, jobPageSize: 3 });
    const startDate = new Date(world.now().getTime() - 2 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl, lookback_days: 0 };
    const union = Object.fromEntries(ALL.map((s) => [s, new Map<string, Message>()])) as Record<StreamName, Map<string, Message>>;
    const readUnfinished = new Set<string>();
    let state: unknown;
    const gaps = [0, 4 * HOUR, 30 * HOUR];
    for (const [round, gap] of [...gaps, 0].entries()) {
      if (round === gaps.length) mock.setClock(0);
      world.advance(gap);
      const r = await face.sync(config, state, ALL);
      for (const w of r.records.workflows) if (UNFINISHED.has(w.status)) readUnfinished.add(w.id);
      for (const s of ALL) byKey(s, r.records[s], union[s]);
      state = r.state;
    }
    const truth = truthOf(world, startDate);
    // The hazard was there: workflows read while unfinished that have finished since.
    const finalWorkflows = byKey('workflows', truth.workflows);
    const finishedSince = [...readUnfinished].filter((id) => !UNFINISHED.has(String(finalWorkflows.get(id)?.status)));
    expect(finishedSince.length).toBeGreaterThan(0);
    // Every workflow the destination holds is as CircleCI has it now, and so is everything below it.
    // (Reruns created on pipelines older than the newest one synced are what the lookback is for:
    // with 0 they are not looked for, so the comparison is over what was synced.)
    for (const [key, w] of union.workflows) expect({ key, w }).toEqual({ key, w: finalWorkflows.get(key) });
    const synced = new Set(union.workflows.keys());
    const below = (s: StreamName, workflowId: (r: Message) => string) => {
      const expected = byKey(s, truth[s].filter((r) => synced.has(workflowId(r))));
      expect({ s, missing: [...expected.keys()].filter((k) => !union[s].has(k)) }).toEqual({ s, missing: [] });
      for (const [k, v] of expected) expect({ s, k, r: union[s].get(k) }).toEqual({ s, k, r: v });
    };
    below('jobs', (j) => j._workflow_id);
    below('job_details', (d) => d.latest_workflow.id);
    below('tests', (t) => t._workflow_id);
  });
});

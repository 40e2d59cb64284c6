/**
 * CircleCI does not stand still while a sync runs: here the mock's clock runs during every sync
 * (pipelines arrive after the first list page was read, workflows are rerun and finish on
 * pipelines the sync already visited), as a long production sync would see it, compressed.
 * Whatever a sync could not see must be read by a later one: the union of the syncs, last write
 * winning, equals the mock's ground truth. Both faces, through the spawned CLIs.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { TEST_TOKEN, byKey, type Message, type StreamName } from './helpers.js';
import { airbyte, expectUnionEqualsTruth, singer } from './faces.js';

const DAY = 86_400_000;
/**
 * Five world minutes before each answer: a sync of a few hundred requests spans more than a day,
 * the same on a fast or a loaded machine (the mock counts requests, not wall time).
 */
const CLOCK_STEP_MS = 5 * 60_000;

describe.each([airbyte, singer])('$name under a clock that runs during the sync', (face) => {
  let world: World;
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('four incremental syncs while the clock runs, then one after it stops: no pipeline or workflow missing, every status final', async () => {
    // A world in which a cursor that follows the largest value seen loses workflows for good
    // (checked by hand against such a build).
    world = new World({ seed: 29, historyDays: 9, pipelinesPerDay: 10 });
    mock = await startMockServer({ world, token: TEST_TOKEN, clockStepMs: CLOCK_STEP_MS });
    const startDate = new Date(world.now().getTime() - 8 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const streams: StreamName[] = ['pipelines', 'workflows'];
    const union: Record<string, Map<string, Message>> = { pipelines: new Map(), workflows: new Map() };
    /** Per sync: when (world clock) it read each pipeline's workflow list, and when it ended. */
    const visits: { workflowListAt: Map<string, number>; end: number; start: number }[] = [];
    let state: unknown;
    for (let round = 0; round < 5; round++) {
      if (round === 4) mock.setClock(0);
      mock.resetCounters();
      const r = await face.sync(config, state, streams);
      for (const s of streams) byKey(s, r.records[s], union[s]);
      state = r.state;
      const log = mock.counters.log;
      const workflowListAt = new Map<string, number>();
      for (const l of log) {
        const m = /^\/api\/v2\/pipeline\/([^/?]+)\/workflow/.exec(l.path);
        if (m && !workflowListAt.has(m[1])) workflowListAt.set(m[1], l.at);
      }
      visits.push({ workflowListAt, start: log[0].at, end: log[log.length - 1].at });
    }

    const truth = world.groundTruth(startDate);
    // The hazard was there: pipelines created during a sync after it began, and workflows created
    // on a pipeline after the same sync had read that pipeline's workflows.
    const running = visits.slice(0, 4);
    const createdMidSync = truth.pipelines.filter((p) => running.some((v) => Date.parse(String(p.created_at)) > v.start && Date.parse(String(p.created_at)) <= v.end));
    const missedByTheirSync = truth.workflows.filter((w) =>
      running.some((v) => {
        const at = v.workflowListAt.get(String(w.pipeline_id));
        return at !== undefined && Date.parse(String(w.created_at)) > at && Date.parse(String(w.created_at)) <= v.end;
      }),
    );
    expect(createdMidSync.length).toBeGreaterThan(0);
    expect(missedByTheirSync.length).toBeGreaterThan(0);
    expectUnionEqualsTruth(union, truth as unknown as Record<string, unknown[]>, streams);
  });

  test('all three streams incremental, the clock moving during and between syncs: jobs end with their final status too, a job reused by a rerun from failed under both workflows', async () => {
    world = new World({ seed: 31, historyDays: 8, pipelinesPerDay: 8 });
    mock = await startMockServer({ world, token: TEST_TOKEN, clockStepMs: 60_000, jobPageSize: 3 });
    const startDate = new Date(world.now().getTime() - 7 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const streams: StreamName[] = ['pipelines', 'workflows', 'jobs'];
    const union: Record<string, Map<string, Message>> = { pipelines: new Map(), workflows: new Map(), jobs: new Map() };
    /** Jobs first read while running, queued or blocked: they must end final. */
    const unfinished = new Set<string>();
    let state: unknown;
    const gaps = [0, 3, 20, 1, 50].map((h) => h * 3_600_000);
    for (const [round, gap] of [...gaps, 0].entries()) {
      if (round === gaps.length) mock.setClock(0);
      world.advance(gap);
      const r = await face.sync(config, state, streams);
      for (const j of r.records.jobs) if (!union.jobs.has(`${j.id}|${j._workflow_id}`) && ['running', 'queued', 'blocked', 'on_hold'].includes(j.status)) unfinished.add(`${j.id}|${j._workflow_id}`);
      for (const s of streams) byKey(s, r.records[s], union[s]);
      state = r.state;
    }
    const truth = world.groundTruth(startDate);
    expectUnionEqualsTruth(union, truth as unknown as Record<string, unknown[]>, streams);
    const finalStatus = new Map(truth.jobs.map((j) => [`${j.id}|${j._workflow_id}`, j.status]));
    expect([...unfinished].filter((k) => !['running', 'queued', 'blocked', 'on_hold'].includes(String(finalStatus.get(k)))).length).toBeGreaterThan(0);
    const workflowsOfJob = new Map<string, Set<string>>();
    for (const j of union.jobs.values()) workflowsOfJob.set(j.id, (workflowsOfJob.get(j.id) ?? new Set()).add(j._workflow_id));
    expect([...workflowsOfJob.values()].some((ws) => ws.size > 1)).toBe(true);
  });
});

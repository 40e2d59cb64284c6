/**
 * Nothing lost at the edges (issue 17): one record per primary key in every read, and unfinished
 * workflows followed to their end whatever lookback_days says. Both faces, through the spawned
 * CLIs, against the mock with its clock moving.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { spawn } from 'node:child_process';
import { AIRBYTE_CLI, TEST_TOKEN, byKey, configuredCatalog, keyOf, parseLines, recordsOf, runCli, tempFiles, type Message, type StreamName } from './helpers.js';
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
    const world = new World({ seed: 43, historyDays: 3, pipelinesPerDay: 5 });
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

/**
 * The same stop through the CLIs: the reader reads nothing until the sync has gone quiet (its
 * stdout pipe is full and every task waits on it), then the platform sends SIGTERM and reads on.
 * "Gone quiet" is judged from the mock (no request outstanding or answered for a moment); it only
 * decides when the signal lands, not what the test asserts: whenever it lands, the resumed sync
 * must complete the ground truth. (The exact moment is proven in-process: crawler-stop.test.ts.)
 */
describe.each([airbyte, singer])('$name stopped by SIGTERM while nobody reads its stdout', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('three times over: it dies by the signal after a checkpoint of what it completed; the resumed syncs complete the ground truth', async () => {
    const world = new World({ seed: 59, historyDays: 2, pipelinesPerDay: 25 });
    mock = await startMockServer({ world, token: TEST_TOKEN, jobPageSize: 3 });
    const startDate = new Date(world.now().getTime() - 2 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const streams: StreamName[] = ['pipelines', 'workflows', 'jobs'];
    const seen: Record<string, Message[]>[] = [];
    let state: unknown;
    for (let stop = 0; stop < 3; stop++) {
      mock.resetCounters();
      const { cli, args } = await face.command(config, state, streams);
      const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, SOURCE_CIRCLECI_BACKOFF_SCALE: '0.01' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      // Quiet: requests were made, and none has been answered for 300 ms.
      let last = -1;
      while (mock.counters.total === 0 || mock.counters.total !== last) {
        last = mock.counters.total;
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(child.exitCode).toBeNull();
      child.kill('SIGTERM');
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      const end = await exited;
      expect(stdout.includes(TEST_TOKEN) || stderr.includes(TEST_TOKEN)).toBe(false);
      expect(end).toEqual({ code: null, signal: 'SIGTERM' });
      const read = face.parse(parseLines(stdout), state, streams);
      expect(Object.values(read.records).flat().length).toBeGreaterThan(0);
      seen.push(read.records);
      state = read.state;
    }
    seen.push((await face.sync(config, state, streams)).records);
    const truth = truthOf(world, startDate);
    for (const s of streams) {
      const union = byKey(s, seen.flatMap((r) => r[s]));
      expect({ s, missing: [...byKey(s, truth[s]).keys()].filter((k) => !union.has(k)) }).toEqual({ s, missing: [] });
    }
  });
});

describe.each([airbyte, singer])('$name with many projects', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('the STATE one read writes grows linearly with the projects: at most 12 times the final state', async () => {
    const slugs = Array.from({ length: 60 }, (_, i) => `gh/acme/service-${i + 1}`);
    const world = new World({ seed: 61, historyDays: 2, pipelinesPerDay: 2, projects: slugs });
    mock = await startMockServer({ world, token: TEST_TOKEN });
    const startDate = new Date(world.now().getTime() - 2 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: slugs, start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const streams: StreamName[] = ['pipelines', 'workflows', 'jobs'];
    let state: unknown;
    for (const round of [0, 1]) {
      const { cli, args } = await face.command(config, state, streams);
      const r = await runCli(cli, args);
      expect(r.code).toBe(0);
      const lines = r.stdout.split('\n').filter((l) => l.startsWith('{"type":"STATE"'));
      const written = lines.reduce((n, l) => n + l.length + 1, 0);
      const next = face.parse(r.messages, state, streams).state;
      // The final state as the face writes it: one STATE per stream (Airbyte), or one with every bookmark (Singer).
      const final = face === airbyte ? (next as Message[]).reduce((n, s) => n + JSON.stringify({ type: 'STATE', state: s }).length + 1, 0) : lines.at(-1)!.length + 1;
      // On failure, the ratio shows.
      expect({ round, over12: written / final > 12 ? written / final : false }).toEqual({ round, over12: false });
      state = next;
    }
  });
});

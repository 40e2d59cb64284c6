/**
 * projects, job_details and tests (issue 13): what a series of incremental syncs writes, while
 * CircleCI's clock moves during and between them, equals the mock's ground truth; each finished
 * job's test results are asked for once; and streams nobody selected cost no request.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { ALL_INCREMENTAL, AIRBYTE_CLI, ROOT, TEST_TOKEN, byKey, configuredCatalog, keyOf, lastStates, recordsOf, runCli, tempFiles, type Message, type StreamName } from './helpers.js';
import { airbyte, expectUnionEqualsTruth, singer } from './faces.js';
import { join } from 'node:path';

const DAY = 86_400_000;
const MARGIN = 5 * 60_000;
const ALL: StreamName[] = ['projects', 'pipelines', 'workflows', 'jobs', 'job_details', 'tests'];
const STOPPED = (status: unknown) => !['running', 'queued', 'not_running', 'blocked', 'on_hold'].includes(String(status));
/** GET /project/{slug}/{n}/tests, first page: the slug and the job number. */
const TESTS_PATH = /^\/api\/v2\/project\/(.+)\/([0-9]+)\/tests(?:\?(.*))?$/;
const DETAILS_PATH = /^\/api\/v2\/project\/(.+)\/job\/([0-9]+)(?:\?.*)?$/;

/** Details by key, as a deduplicating destination keeps them: the larger cursor wins, then the later write. */
function mergeDetails(records: Message[], into: Map<string, Message>) {
  for (const r of records) {
    const k = keyOf('job_details', r);
    const old = into.get(k);
    if (!old || Date.parse(r._workflow_created_at) >= Date.parse(old._workflow_created_at)) into.set(k, r);
  }
}

describe.each([airbyte, singer])('$name: projects, job details and test results', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('incremental rounds under a moving clock equal the ground truth; a finished job\'s tests are asked for once', async () => {
    const world = new World({ seed: 37, historyDays: 4, pipelinesPerDay: 12 });
    mock = await startMockServer({ world, token: TEST_TOKEN, clockStepMs: 3_000, jobPageSize: 3, testPageSize: 7 });
    const startDate = new Date(world.now().getTime() - 3 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const union = Object.fromEntries(ALL.map((s) => [s, new Map<string, Message>()])) as Record<StreamName, Map<string, Message>>;
    const runningDetails = new Set<string>();
    /** Per job (slug|number): the rounds that asked for its tests, and each round's first answer (world ms). */
    const testsAsked = new Map<string, number[]>();
    const roundStart: number[] = [];
    let state: unknown;
    const gaps = [0, 2, 20, 1, 40].map((h) => h * 3_600_000);
    for (const [round, gap] of [...gaps, 0].entries()) {
      if (round === gaps.length) mock.setClock(0);
      world.advance(gap);
      mock.resetCounters();
      const r = await face.sync(config, state, ALL);
      // One record per key per read, in every stream.
      for (const s of ALL) expect({ s, repeated: r.records[s].length - byKey(s, r.records[s]).size }).toEqual({ s, repeated: 0 });
      for (const d of r.records.job_details) if (d.duration === null) runningDetails.add(keyOf('job_details', d));
      mergeDetails(r.records.job_details, union.job_details);
      for (const s of ALL.filter((s) => s !== 'job_details')) byKey(s, r.records[s], union[s]);
      state = r.state;
      const log = mock.counters.log;
      roundStart.push(log[0].at);
      for (const l of log) {
        const m = TESTS_PATH.exec(l.path);
        if (!m || (m[3] ?? '').includes('page-token')) continue;
        const k = `${decodeURIComponent(m[1])}|${m[2]}`;
        testsAsked.set(k, [...(testsAsked.get(k) ?? []), round]);
      }
    }

    const truth = world.groundTruth(startDate);
    // The key column _file is file, or "" where CircleCI sends null.
    const tests = truth.tests.map((t) => ({ ...t, _file: t.file ?? '' }));
    expectUnionEqualsTruth(union, { ...truth, tests } as unknown as Record<string, unknown[]>, ALL);

    // What makes this world worth the test: details first read running, then final; a job in two
    // workflows (rerun from failed) whose details name the newer; tests over several pages,
    // null files, identical entries; jobs without tests.
    expect([...runningDetails].filter((k) => union.job_details.get(k)?.duration !== null).length).toBeGreaterThan(0);
    const workflowsOf = new Map<string, Set<string>>();
    for (const j of truth.jobs) workflowsOf.set(`${j.project_slug}|${j.job_number}`, (workflowsOf.get(`${j.project_slug}|${j.job_number}`) ?? new Set()).add(String(j._workflow_id)));
    const adopted = [...workflowsOf].filter(([k, ws]) => ws.size > 1 && union.job_details.has(k));
    expect(adopted.length).toBeGreaterThan(0);
    const perJob = new Map<string, number>();
    for (const t of tests) perJob.set(`${t._project_slug}|${t._job_number}`, (perJob.get(`${t._project_slug}|${t._job_number}`) ?? 0) + 1);
    expect([...perJob.values()].some((n) => n > 7)).toBe(true);
    expect(tests.some((t) => t.file === null)).toBe(true);
    expect(tests.some((t) => t._occurrence > 0)).toBe(true);
    const finishedBuilds = truth.jobs.filter((j) => j.type === 'build' && typeof j.job_number === 'number' && STOPPED(j.status));
    expect(finishedBuilds.some((j) => !perJob.has(`${j.project_slug}|${j.job_number}`) && testsAsked.has(`${j.project_slug}|${j.job_number}`))).toBe(true);

    // Once: a job's tests are asked for again only if it stopped no earlier than 5 minutes before
    // the start of the sync that asked last time (that sync may have seen it before it stopped).
    const stoppedAt = new Map(truth.jobs.map((j) => [`${j.project_slug}|${j.job_number}`, Date.parse(String(j.stopped_at))]));
    const again = [...testsAsked].filter(([, rounds]) => rounds.length > 1);
    const unexplained = again.filter(([k, rounds]) => rounds.slice(1).some((_, i) => !(stoppedAt.get(k)! >= roundStart[rounds[i]] - MARGIN)));
    expect(unexplained).toEqual([]);
    expect(testsAsked.size).toBeGreaterThan(0);
  });
});

describe('a job whose details or test results answer 404 while its list is still there', () => {
  let mock: MockServer;
  afterEach(async () => mock?.close());
  // Job numbers ending in 01: their details and their results answer 404.
  const GONE = /^\/api\/v2\/project\/.+\/(job\/[0-9]*01|[0-9]*01\/tests)$/;
  const kept = (n: unknown) => !String(n).endsWith('01');
  const setup = async (faults: { notFoundPath: RegExp; notFoundTimes?: number }) => {
    const world = new World({ seed: 11, historyDays: 3, pipelinesPerDay: 6 });
    mock = await startMockServer({ world, token: TEST_TOKEN, faults });
    const startDate = new Date(world.now().getTime() - 2 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    return { world, startDate, config };
  };
  /** How often each 404ing path was asked in the requests since the counters were reset. */
  const askedGone = () => {
    const n = new Map<string, number>();
    for (const l of mock.counters.log) if (GONE.test(l.path)) n.set(l.path, (n.get(l.path) ?? 0) + 1);
    return n;
  };
  const union = (records: Message[][], stream: 'job_details' | 'tests') => {
    const into = new Map<string, Message>();
    for (const r of records) stream === 'job_details' ? mergeDetails(r, into) : byKey(stream, r, into);
    return into;
  };
  const truthOf = (world: World, startDate: Date) => {
    const truth = world.groundTruth(startDate);
    return {
      job_details: byKey('job_details', truth.job_details as unknown as Message[]),
      tests: byKey('tests', truth.tests.map((t) => ({ ...t, _file: t.file ?? '' })) as unknown as Message[]),
    };
  };

  test.each([airbyte, singer])('$name: recent data that answers 404 through a whole sync is asked again by the next; nothing is lost', async (face) => {
    const { world, startDate, config } = await setup({ notFoundPath: GONE });
    const first = await face.sync(config, undefined, ['job_details', 'tests']);
    // Data that should exist: each 404 is asked again within the sync (3 attempts), then left for the next sync.
    const asked = askedGone();
    expect(asked.size).toBeGreaterThan(0);
    expect([...new Set(asked.values())]).toEqual([3]);
    expect(first.records.job_details.some((d) => !kept(d.number))).toBe(false);
    // The incident is over; nothing moved in CircleCI.
    mock.setFaults(undefined);
    mock.resetCounters();
    const second = await face.sync(config, first.state, ['job_details', 'tests']);
    const askedAgain = new Set(mock.counters.log.filter((l) => GONE.test(l.path.split('?')[0])).map((l) => l.path.split('?')[0]));
    expect([...asked.keys()].filter((p) => !askedAgain.has(p))).toEqual([]);
    const truth = truthOf(world, startDate);
    expect(union([first.records.job_details, second.records.job_details], 'job_details')).toEqual(truth.job_details);
    expect(union([first.records.tests, second.records.tests], 'tests')).toEqual(truth.tests);
    // Once read, they settle like the rest: a third sync asks none of them.
    mock.resetCounters();
    await face.sync(config, second.state, ['job_details', 'tests']);
    expect(askedGone().size).toBe(0);
  });

  test('a 404 that passes within the sync costs nothing; approval and blocked jobs are never asked for', async () => {
    const { world, startDate, config } = await setup({ notFoundPath: GONE, notFoundTimes: 1 });
    const files = tempFiles({ config, catalog: configuredCatalog({ job_details: 'incremental', tests: 'incremental' }) });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog]);
    expect(r.code).toBe(0);
    const asked = askedGone();
    expect(asked.size).toBeGreaterThan(0);
    expect([...new Set(asked.values())]).toEqual([2]);
    // Each retry says so; no 404 is left over.
    const warns = r.messages.filter((m) => m.type === 'LOG' && m.log.level === 'WARN').map((m) => m.log.message as string);
    expect(warns.filter((w) => /HTTP 404; retry 1 in/.test(w)).length).toBe(asked.size);
    expect(warns.filter((w) => !/HTTP 404; retry 1 in/.test(w))).toEqual([]);
    const truth = truthOf(world, startDate);
    expect(union([recordsOf(r.messages, 'job_details')], 'job_details')).toEqual(truth.job_details);
    expect(union([recordsOf(r.messages, 'tests')], 'tests')).toEqual(truth.tests);
    // Approval jobs (whose details answer 404) and blocked jobs (no number) are never asked for.
    const all = world.groundTruth(startDate);
    const approvals = all.jobs.filter((j) => j.type === 'approval' && typeof j.job_number === 'number').map((j) => `/job/${j.job_number}`);
    expect(approvals.length).toBeGreaterThan(0);
    expect(mock.counters.log.filter((l) => approvals.some((a) => l.path.endsWith(a)) || /\/job\/(undefined|NaN)$/.test(l.path))).toEqual([]);
    for (const stream of ['job_details', 'tests']) {
      const last = r.messages.filter((m) => m.type === 'STATE' && m.state.stream.stream_descriptor.name === stream).at(-1);
      expect(Object.keys(last!.state.stream.stream_state).sort()).toEqual([...world.projectSlugs()].sort());
      for (const cursor of Object.values(last!.state.stream.stream_state) as Message[]) expect(cursor.retry).toBeUndefined();
    }
  });

  test('data that keeps answering 404 for longer than unfinished work is followed counts as gone: one WARN, not asked again', async () => {
    const { world, startDate, config } = await setup({ notFoundPath: GONE });
    const catalog = configuredCatalog({ job_details: 'incremental', tests: 'incremental' });
    const read = async (state: Message[]) => {
      mock.resetCounters();
      const files = tempFiles({ config, catalog, ...(state.length ? { state } : {}) });
      const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog, ...(state.length ? ['--state', files.state] : [])]);
      expect(r.code).toBe(0);
      // The outcome of each 404 (not the retries before it).
      const warns = r.messages.filter((m) => m.type === 'LOG' && m.log.level === 'WARN' && !/; retry \d+ in/.test(m.log.message)).map((m) => m.log.message as string);
      return { r, state: lastStates(r.messages, state), warns };
    };
    const first = await read([]);
    expect(first.warns.length).toBeGreaterThan(0);
    expect(first.warns.every((w) => /answered 404 for data that should exist .*the next sync asks again/.test(w))).toBe(true);
    const retried: string[] = first.state.flatMap((m) => Object.values(m.stream.stream_state as Record<string, Message>).flatMap((c) => c.retry ?? []));
    expect(retried.length).toBe(first.warns.length);
    // Those keep answering 404 (and only those: what CircleCI creates from now on answers).
    const escape = (p: string) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    mock.setFaults({ notFoundPath: new RegExp(`^/api/v2(${retried.map(escape).join('|')})$`) });
    // Eight days on, every workflow that had the 404s is older than the 7 days unfinished work is followed.
    world.advance(8 * DAY);
    const second = await read(first.state);
    const gone = second.warns.filter((w) => /404, the data has expired or is not accessible/.test(w));
    expect(gone.length).toBe(retried.length);
    expect(second.warns.filter((w) => /should exist/.test(w))).toEqual([]);
    for (const m of second.state) for (const c of Object.values(m.stream.stream_state as Record<string, Message>)) expect(c.retry).toBeUndefined();
    const third = await read(second.state);
    expect(mock.counters.log.filter((l) => retried.some((p) => l.path.startsWith(`/api/v2${p}`)))).toEqual([]);
    expect(third.warns.filter((w) => /404/.test(w))).toEqual([]);
    // Everything else arrived.
    const truth = truthOf(world, startDate);
    const got = union([first.r, second.r, third.r].map((r) => recordsOf(r.messages, 'job_details')), 'job_details');
    expect([...truth.job_details.keys()].filter((k) => !got.has(k) && kept(k.split('|')[1]))).toEqual([]);
  });

  test('below pipelines older than CircleCI\'s shortest retention (90 days) a 404 means expired: skipped with one WARN each, asked once', async () => {
    const world = new World({ seed: 12, historyDays: 100, pipelinesPerDay: 0.3 });
    mock = await startMockServer({ world, token: TEST_TOKEN, retentionDays: 92 });
    const startDate = new Date(world.now().getTime() - 100 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const files = tempFiles({ config, catalog: configuredCatalog({ workflows: 'incremental', jobs: 'incremental' }) });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog]);
    expect(r.code).toBe(0);
    const expired = r.messages.filter((m) => m.type === 'LOG' && m.log.level === 'WARN' && /404, the data has expired/.test(m.log.message));
    expect(expired.length).toBeGreaterThan(0);
    // One request each: expired data is not retried.
    const notFound = mock.counters.log.filter((l) => l.status === 404);
    expect(notFound.length).toBe(expired.length);
    expect(new Set(notFound.map((l) => l.path)).size).toBe(notFound.length);
    const truth = world.groundTruth(startDate, { retentionDays: 92 });
    expect(byKey('workflows', recordsOf(r.messages, 'workflows'))).toEqual(byKey('workflows', truth.workflows as unknown as Message[]));
    expect(byKey('jobs', recordsOf(r.messages, 'jobs'))).toEqual(byKey('jobs', truth.jobs as unknown as Message[]));
  });
});

describe('killed and resumed', () => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('a first sync of job_details and tests killed after a checkpoint resumes from it: nothing below the completed pipelines is asked again, the union equals the ground truth', async () => {
    // Two projects of ~130 pipelines: a resume marker every 100 completed pipelines.
    const world = new World({ seed: 31, historyDays: 13, pipelinesPerDay: 10, projects: ['gh/acme/api', 'bb/acme/web'] });
    mock = await startMockServer({ world, token: TEST_TOKEN, latencyMs: 1 });
    const startDate = new Date(world.now().getTime() - 12 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const catalog = configuredCatalog({ job_details: 'incremental', tests: 'incremental' });
    const first = tempFiles({ config, catalog });
    let killed = false;
    const r1 = await runCli(AIRBYTE_CLI, ['read', '--config', first.config, '--catalog', first.catalog], {
      onStdoutLine: (line, kill) => {
        if (killed || !line) return;
        const m = JSON.parse(line) as Message;
        const marked = m.type === 'STATE' && m.state.stream.stream_descriptor.name === 'tests' && Object.values<Message>(m.state.stream.stream_state).some((c) => c.resume);
        if (marked) {
          killed = true;
          kill('SIGKILL');
        }
      },
    });
    expect({ killed, signal: r1.signal }).toEqual({ killed: true, signal: 'SIGKILL' });
    const state = lastStates(r1.messages);
    // The pipelines both streams' markers claim, per project.
    const done = new Map<string, { from: number; to: number }>();
    for (const slug of world.projectSlugs()) {
      const markers = ['job_details', 'tests'].map((n) => state.find((st) => st.stream.stream_descriptor.name === n)?.stream.stream_state[slug]?.resume);
      if (markers.every(Boolean)) done.set(slug, { from: Math.max(...markers.map((x) => x.from)), to: Math.min(...markers.map((x) => x.to)) });
    }
    expect(done.size).toBeGreaterThan(0);

    mock.resetCounters();
    const second = tempFiles({ config, catalog, state });
    const r2 = await runCli(AIRBYTE_CLI, ['read', '--config', second.config, '--catalog', second.catalog, '--state', second.state]);
    expect(r2.code).toBe(0);
    const again = mock.counters.log.filter((l) => {
      const m = TESTS_PATH.exec(l.path) ?? DETAILS_PATH.exec(l.path);
      if (!m) return false;
      const slug = decodeURIComponent(m[1]);
      const range = done.get(slug);
      const pipeline = world.pipeline(String(world.pipelineIdOfJob(slug, Number(m[2]))));
      const n = Number(pipeline?.number);
      return !!range && n >= range.from && n <= range.to;
    });
    expect(again.map((l) => l.path)).toEqual([]);

    const details = new Map<string, Message>();
    mergeDetails([...recordsOf(r1.messages, 'job_details'), ...recordsOf(r2.messages, 'job_details')], details);
    const truth = world.groundTruth(startDate);
    expect([...details.keys()].sort()).toEqual(truth.job_details.map((d) => keyOf('job_details', d as unknown as Message)).sort());
    expect(details).toEqual(byKey('job_details', truth.job_details as unknown as Message[]));
    const tests = byKey('tests', [...recordsOf(r1.messages, 'tests'), ...recordsOf(r2.messages, 'tests')]);
    expect(tests).toEqual(byKey('tests', truth.tests.map((t) => ({ ...t, _file: t.file ?? '' })) as unknown as Message[]));
  });
});

describe('opt-in cost', () => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('a sync of pipelines, workflows and jobs asks for no job details, tests or project; projects alone asks for one object per project', async () => {
    const world = new World({ seed: 5, historyDays: 3, pipelinesPerDay: 6 });
    mock = await startMockServer({ world, token: TEST_TOKEN });
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: new Date(world.now().getTime() - 2 * DAY).toISOString(), base_url: mock.baseUrl };
    const three = tempFiles({ config, catalog: ALL_INCREMENTAL });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', three.config, '--catalog', three.catalog]);
    expect(r.code).toBe(0);
    expect(recordsOf(r.messages, 'jobs').length).toBeGreaterThan(0);
    const asked = mock.counters.log.map((l) => l.path);
    expect(asked.filter((p) => TESTS_PATH.test(p) || DETAILS_PATH.test(p) || /^\/api\/v2\/project\/[^/]+\/[^/]+\/[^/]+(\?.*)?$/.test(p))).toEqual([]);

    mock.resetCounters();
    const only = tempFiles({ config, catalog: configuredCatalog({ projects: 'full_refresh' }) });
    const p = await runCli(AIRBYTE_CLI, ['read', '--config', only.config, '--catalog', only.catalog]);
    expect(p.code).toBe(0);
    const projects = recordsOf(p.messages, 'projects');
    expect(projects.map((x) => x.slug).sort()).toEqual([...world.projectSlugs()].sort());
    expect(projects).toEqual(world.groundTruth(new Date(0)).projects);
    expect(mock.counters.log.map((l) => l.path).sort()).toEqual(world.projectSlugs().map((s) => `/api/v2/project/${s}`).sort());
  });

  test('Singer: job details and tests are not selected by default, and a sync without a catalog leaves them out', async () => {
    const world = new World({ seed: 5, historyDays: 2, pipelinesPerDay: 4 });
    mock = await startMockServer({ world, token: TEST_TOKEN });
    const config = tempFiles({ c: { token: TEST_TOKEN, project_slugs: world.projectSlugs(), base_url: mock.baseUrl } }).c;
    const singerCli = join(ROOT, 'dist/cli/singer.js');
    const d = await runCli(singerCli, ['--discover', '--config', config]);
    const byDefault = Object.fromEntries(d.messages[0].streams.map((e: Message) => [e.tap_stream_id, e.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata['selected-by-default']]));
    expect(byDefault).toEqual({ projects: true, pipelines: true, workflows: true, jobs: true, job_details: false, tests: false, workflow_runs: false, flaky_tests: false, usage: false });
    const r = await runCli(singerCli, ['--config', config]);
    expect(r.code).toBe(0);
    const streams = new Set(r.messages.filter((m) => m.type === 'RECORD').map((m) => m.stream));
    expect([...streams].sort()).toEqual(['jobs', 'pipelines', 'projects', 'workflows']);
    expect(mock.counters.log.some((l) => TESTS_PATH.test(l.path) || DETAILS_PATH.test(l.path) || l.path.startsWith('/api/v2/insights/'))).toBe(false);
  });
});

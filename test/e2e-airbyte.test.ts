import { readFileSync } from 'node:fs';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import {
  AIRBYTE_CLI, ALL_FULL, ALL_INCREMENTAL, ROOT, TEST_TOKEN, byKey, configuredCatalog, lastStates, recordsOf, runCli, statesOf, tempFiles,
  type Message,
} from './helpers.js';
import { invalidMessages } from './validate.js';

const DAY = 86_400_000;
const STREAMS = ['pipelines', 'workflows', 'jobs'] as const;

let mock: MockServer;
let world: World;
let startDate: Date;

const configFor = (extra: Record<string, unknown> = {}) => ({
  token: TEST_TOKEN,
  project_slugs: world.projectSlugs(),
  start_date: startDate.toISOString(),
  base_url: mock.baseUrl,
  ...extra,
});

async function read(catalog: unknown, state?: unknown, config = configFor()) {
  const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
  const args = ['read', '--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])];
  const result = await runCli(AIRBYTE_CLI, args);
  expect(invalidMessages(result.messages)).toEqual([]);
  return result;
}

/** Compares records with the mock's ground truth, record for record, keyed by primary key. */
function expectEqualToTruth(stream: string, actual: Map<string, Message>, truth: Message[]) {
  const expected = byKey(stream, truth);
  expect(expected.size).toBe(truth.length); // the world itself has no duplicate keys
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  expect({ stream, missing: missing.slice(0, 5), extra: extra.slice(0, 5) }).toEqual({ stream, missing: [], extra: [] });
  for (const [k, v] of expected) expect({ stream, k, record: actual.get(k) }).toEqual({ stream, k, record: v });
}

beforeAll(async () => {
  world = new World({ seed: 7, historyDays: 30, pipelinesPerDay: 4 });
  mock = await startMockServer({ world, token: TEST_TOKEN, jobPageSize: 3 });
  // Half the history: start_date must bound all three streams.
  startDate = new Date(world.now().getTime() - 20 * DAY);
});

afterAll(async () => {
  await mock.close();
});

describe('spec, check, discover', () => {
  test('spec prints one SPEC whose connectionSpecification is spec.json', async () => {
    const r = await runCli(AIRBYTE_CLI, ['spec']);
    expect(r.code).toBe(0);
    expect(r.messages).toHaveLength(1);
    expect(invalidMessages(r.messages)).toEqual([]);
    expect(r.messages[0].spec.connectionSpecification).toEqual(JSON.parse(readFileSync(`${ROOT}/spec.json`, 'utf8')));
    const props = r.messages[0].spec.connectionSpecification.properties;
    expect(props.token.airbyte_secret).toBe(true);
    expect(JSON.stringify(r.messages[0].spec)).not.toMatch(/"(anyOf|allOf|\$ref)"/);
  });

  test('check with a good token and real slugs succeeds', async () => {
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', tempFiles({ c: configFor() }).c]);
    expect(r.code).toBe(0);
    // Before it, one LOG line on what a usage sync would export (docs/usage.md).
    expect(r.messages.at(-1)).toEqual({ type: 'CONNECTION_STATUS', connectionStatus: { status: 'SUCCEEDED' } });
    expect(r.messages.slice(0, -1).map((m) => [m.type, m.log?.level, m.log?.message.slice(0, 6)])).toEqual([['LOG', 'INFO', 'usage ']]);
  });

  test('check with a bad token fails, exit 0, saying the token was rejected', async () => {
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', tempFiles({ c: configFor({ token: 'wrong-token-987654' }) }).c]);
    expect(r.code).toBe(0);
    expect(r.messages).toHaveLength(1);
    expect(r.messages[0].connectionStatus.status).toBe('FAILED');
    expect(r.messages[0].connectionStatus.message).toMatch(/rejected the token/);
  });

  test('check with an unknown slug fails naming the slug', async () => {
    const slugs = [...world.projectSlugs(), 'gh/acme/does-not-exist'];
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', tempFiles({ c: configFor({ project_slugs: slugs }) }).c]);
    expect(r.code).toBe(0);
    expect(r.messages).toHaveLength(1);
    expect(r.messages[0].connectionStatus.status).toBe('FAILED');
    expect(r.messages[0].connectionStatus.message).toMatch(/"gh\/acme\/does-not-exist" not found/);
  });

  test('discover prints every stream with its modes, cursor and key', async () => {
    const r = await runCli(AIRBYTE_CLI, ['discover', '--config', tempFiles({ c: configFor() }).c]);
    expect(r.code).toBe(0);
    expect(invalidMessages(r.messages)).toEqual([]);
    expect(r.messages).toHaveLength(1);
    const streams = r.messages[0].catalog.streams.map((s: Message) => ({
      name: s.name, modes: s.supported_sync_modes, cursor: s.default_cursor_field, key: s.source_defined_primary_key,
    }));
    expect(streams).toEqual([
      { name: 'projects', modes: ['full_refresh'], cursor: undefined, key: [['id']] },
      { name: 'pipelines', modes: ['full_refresh', 'incremental'], cursor: ['updated_at'], key: [['id']] },
      { name: 'workflows', modes: ['full_refresh', 'incremental'], cursor: ['created_at'], key: [['id']] },
      { name: 'jobs', modes: ['full_refresh', 'incremental'], cursor: ['_workflow_created_at'], key: [['id'], ['_workflow_id']] },
      { name: 'job_details', modes: ['full_refresh', 'incremental'], cursor: ['_workflow_created_at'], key: [['_project_slug'], ['number']] },
      {
        name: 'tests',
        modes: ['full_refresh', 'incremental'],
        cursor: ['_workflow_created_at'],
        key: [['_project_slug'], ['_job_number'], ['classname'], ['name'], ['_file'], ['_occurrence']],
      },
      { name: 'workflow_runs', modes: ['full_refresh', 'incremental'], cursor: ['created_at'], key: [['id']] },
      { name: 'flaky_tests', modes: ['full_refresh'], cursor: undefined, key: [['_project_slug'], ['workflow_name'], ['job_name'], ['classname'], ['test_name']] },
      { name: 'usage', modes: ['full_refresh', 'incremental'], cursor: ['_window_end'], key: [['job_id']] },
    ]);
    for (const s of r.messages[0].catalog.streams) {
      expect(s.json_schema).toEqual(JSON.parse(readFileSync(`${ROOT}/schemas/${s.name}.json`, 'utf8')));
    }
  });
});

describe('read', () => {
  test('a full read equals the ground truth, record for record, with a checkpoint per stream after its records', async () => {
    mock.resetCounters();
    const r = await read(ALL_FULL);
    expect(r.code).toBe(0);
    const truth = world.groundTruth(startDate);
    for (const s of STREAMS) {
      const records = recordsOf(r.messages, s);
      expect(byKey(s, records).size).toBe(records.length); // no duplicates
      expectEqualToTruth(s, byKey(s, records), truth[s] as unknown as Message[]);
    }
    // Jobs span several pages, and every page was followed.
    expect(mock.counters.log.some((l) => /\/workflow\/[^/]+\/job\?.*page-token=/.test(l.path))).toBe(true);
    // Every stream, jobs included, ends with a STATE carrying sourceStats; the counts add up.
    for (const s of STREAMS) {
      const states = statesOf(r.messages).filter((m) => m.state.stream.stream_descriptor.name === s);
      expect(states.length).toBeGreaterThan(0);
      const counted = states.reduce((n, m) => n + m.state.sourceStats.recordCount, 0);
      expect(counted).toBe(recordsOf(r.messages, s).length);
    }
    // No checkpoint ahead of its records: once a project's cursor reaches its final value,
    // no record of that stream and project follows.
    for (const s of ['pipelines', 'workflows']) {
      const final = statesOf(r.messages).filter((m) => m.state.stream.stream_descriptor.name === s).at(-1)!.state.stream.stream_state;
      for (const slug of world.projectSlugs()) {
        const firstFinal = r.messages.findIndex((m) => m.type === 'STATE' && m.state.stream.stream_descriptor.name === s &&
          JSON.stringify(m.state.stream.stream_state[slug]) === JSON.stringify(final[slug]));
        const lastRecord = r.messages.findLastIndex((m) => m.type === 'RECORD' && m.record.stream === s && m.record.data.project_slug === slug);
        expect(firstFinal).toBeGreaterThan(lastRecord);
      }
    }
    // STREAM_STATUS: STARTED, RUNNING, COMPLETE per stream.
    for (const s of STREAMS) {
      const statuses = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'STREAM_STATUS' && m.trace.stream_status.stream_descriptor.name === s)
        .map((m) => m.trace.stream_status.status);
      expect(statuses).toEqual(['STARTED', 'RUNNING', 'COMPLETE']);
    }
  });

  test('incremental rounds converge: the union of syncs, last write wins, equals a fresh full read', async () => {
    const union = { pipelines: new Map<string, Message>(), workflows: new Map<string, Message>(), jobs: new Map<string, Message>() };
    let state: Message[] = [];
    // Uneven steps: hours, a day, several days; reruns and late status changes happen in between.
    const steps = [6, 30, 3, 72, 12, 50].map((h) => h * 3_600_000);
    for (const step of [0, ...steps]) {
      world.advance(step);
      const r = await read(ALL_INCREMENTAL, state.length ? state : undefined);
      expect(r.code).toBe(0);
      for (const s of STREAMS) byKey(s, recordsOf(r.messages, s), union[s]);
      state = lastStates(r.messages, state);
    }
    const truth = world.groundTruth(startDate);
    for (const s of STREAMS) expectEqualToTruth(s, union[s], truth[s] as unknown as Message[]);
    // The rounds did exercise reruns (a workflow created well after its pipeline) and late status changes.
    const pipelineCreated = new Map(truth.pipelines.map((p) => [p.id, Date.parse(String(p.created_at))]));
    expect(truth.workflows.some((w) => Date.parse(String(w.created_at)) - pipelineCreated.get(String(w.pipeline_id))! > 3_600_000)).toBe(true);
  });

  test('an incremental read with nothing new makes at most a quarter of the requests of a full read', async () => {
    // Sixty days of history, the default seven-day lookback.
    const longWorld = new World({ seed: 11, historyDays: 60, pipelinesPerDay: 4 });
    const longMock = await startMockServer({ world: longWorld, token: TEST_TOKEN });
    try {
      const config = configFor({
        project_slugs: longWorld.projectSlugs(),
        base_url: longMock.baseUrl,
        start_date: new Date(longWorld.now().getTime() - 60 * DAY).toISOString(),
      });
      const catalog = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental' });
      const first = await read(catalog, undefined, config);
      const fullRequests = longMock.counters.total;
      longMock.resetCounters();
      const again = await read(catalog, lastStates(first.messages), config);
      expect(again.code).toBe(0);
      expect(longMock.counters.total).toBeLessThanOrEqual(fullRequests / 4);
      // It still looked at the recent pipelines and their workflows.
      expect(longMock.counters.byRoute.workflows).toBeGreaterThan(0);
    } finally {
      await longMock.close();
    }
  });

  test('right after a full read, an incremental one pages back only to the floor: the list pages down to it, one workflow list per pipeline above it, job lists only for the workflows it emits', async () => {
    const now = new Date('2026-06-15T12:00:00Z');
    // Seed 3 has a workflow still waiting from 18 hours ago: it holds the workflows cursor back.
    const w = new World({ seed: 3, now, historyDays: 40, pipelinesPerDay: 6 });
    const m = await startMockServer({ world: w, token: TEST_TOKEN, jobPageSize: 3 });
    try {
      const start = new Date(now.getTime() - 30 * DAY);
      const config = configFor({ project_slugs: w.projectSlugs(), base_url: m.baseUrl, start_date: start.toISOString() });
      const catalog = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental', jobs: 'incremental' });
      const first = await read(catalog, undefined, config);
      const fullRequests = m.counters.total;
      m.resetCounters();
      const again = await read(catalog, lastStates(first.messages), config);
      expect(again.code).toBe(0);

      // The expected cost, from the ground truth and the rules: cursors stop at the signpost (the
      // mock's Date minus 5 minutes); an unfinished workflow inside the 7-day lookback holds the
      // workflows cursor, and the floor is the older of (latest emitted − 7 days, its pipeline).
      const truth = w.groundTruth(start);
      const sign = now.getTime() - 5 * 60_000;
      const horizonT = now.getTime() - 7 * DAY;
      let expected = 0;
      for (const slug of w.projectSlugs()) {
        const pipelines = truth.pipelines.filter((p) => p.project_slug === slug);
        const created = new Map(pipelines.map((p) => [p.id, Date.parse(String(p.created_at))]));
        const workflows = truth.workflows.filter((x) => created.has(String(x.pipeline_id)));
        const latestPipeline = Math.min(sign, Math.max(...pipelines.map((p) => Date.parse(String(p.updated_at)))));
        const latestWorkflow = Math.min(sign, Math.max(...workflows.map((x) => Date.parse(String(x.created_at)))));
        const open = workflows.filter((x) => ['running', 'failing', 'on_hold'].includes(String(x.status)) && Date.parse(String(x.created_at)) >= horizonT);
        const heldPipeline = Math.min(...open.map((x) => created.get(String(x.pipeline_id))!));
        const floor = Math.max(start.getTime(), Math.min(latestPipeline - 7 * DAY, latestWorkflow - 7 * DAY, heldPipeline));
        const above = pipelines.filter((p) => Date.parse(String(p.created_at)) >= floor).length;
        const all = w.listPipelines(slug).length;
        // The scan ends on the first pipeline below the floor: it sits on page floor(above / 20) + 1.
        const listPages = above < all ? Math.floor(above / 20) + 1 : Math.max(1, Math.ceil(all / 20));
        // Jobs: one list (3 a page here) per workflow at or after the workflows cursor, held or not.
        const cursor = Math.min(latestWorkflow, ...open.map((x) => Date.parse(String(x.created_at))));
        const emitted = workflows.filter((x) => Date.parse(String(x.created_at)) >= cursor && created.get(String(x.pipeline_id))! >= floor);
        const jobPages = emitted.reduce((n, x) => n + Math.max(1, Math.ceil(truth.jobs.filter((j) => j._workflow_id === x.id).length / 3)), 0);
        expected += listPages + above + jobPages;
        expect(jobPages).toBeGreaterThan(0);
      }
      expect({ requests: m.counters.total, routes: m.counters.byRoute }).toEqual({
        requests: expected,
        routes: expect.objectContaining({ me: 0, project: 0 }),
      });
      // The seven days of lookback out of thirty, and jobs only where something may have changed.
      expect(m.counters.total / fullRequests).toBeLessThan(0.15);
    } finally {
      await m.close();
    }
  });

  test('a state with cursors far in the future yields no records and still one STATE per stream', async () => {
    const future = '2999-01-01T00:00:00.000Z';
    const state = ['pipelines', 'workflows'].map((name) => ({
      type: 'STREAM',
      stream: {
        stream_descriptor: { name },
        stream_state: Object.fromEntries(world.projectSlugs().map((slug) => [slug, { [name === 'pipelines' ? 'updated_at' : 'created_at']: future }])),
      },
    }));
    const r = await read(configuredCatalog({ pipelines: 'incremental', workflows: 'incremental' }), state);
    expect(r.code).toBe(0);
    expect(r.messages.filter((m) => m.type === 'RECORD')).toEqual([]);
    expect(new Set(statesOf(r.messages).map((m) => m.state.stream.stream_descriptor.name))).toEqual(new Set(['pipelines', 'workflows']));
  });

  test('projects asked for incrementally (PyAirbyte asks it of every stream) is read in full, as a stream without a cursor', async () => {
    const catalog = configuredCatalog({ pipelines: 'incremental' });
    catalog.streams.push({ ...configuredCatalog({ projects: 'full_refresh' }).streams[0], sync_mode: 'incremental', destination_sync_mode: 'overwrite' });
    const r = await read(catalog);
    expect(r.code).toBe(0);
    expect(r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR')).toEqual([]);
    expectEqualToTruth('projects', byKey('projects', recordsOf(r.messages, 'projects')), world.groundTruth(startDate).projects as unknown as Message[]);
  });

  test('a project that does not exist is a config_error naming the slug; the others are still synced', async () => {
    const config = configFor({ project_slugs: [world.projectSlugs()[0], 'gh/acme/nope'] });
    const r = await read(configuredCatalog({ pipelines: 'full_refresh' }), undefined, config);
    expect(r.code).not.toBe(0);
    const errors = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR');
    expect(errors).toHaveLength(1);
    expect(errors[0].trace.error.failure_type).toBe('config_error');
    expect(errors[0].trace.error.message).toMatch(/"gh\/acme\/nope" was not found/);
    expect(recordsOf(r.messages, 'pipelines').length).toBeGreaterThan(0);
    expect(statesOf(r.messages).length).toBeGreaterThan(0);
  });

  test('a rejected token is a config_error saying so', async () => {
    const r = await read(configuredCatalog({ pipelines: 'full_refresh' }), undefined, configFor({ token: 'wrong-token-987654' }));
    expect(r.code).not.toBe(0);
    const errors = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR');
    expect(errors[0].trace.error.failure_type).toBe('config_error');
    expect(errors[0].trace.error.message).toMatch(/rejected the token/);
  });

  test('a catalog naming an unknown stream or a cursor that is not the stream\'s is a config_error', async () => {
    const jobsByTheirOwnTime = configuredCatalog({ jobs: 'incremental' });
    (jobsByTheirOwnTime.streams[0] as Record<string, unknown>).cursor_field = ['started_at'];
    for (const catalog of [
      { streams: [{ stream: { name: '__AIRBYTE__stream_that_does_not_exist', json_schema: {}, supported_sync_modes: ['full_refresh'] }, sync_mode: 'INVALID', destination_sync_mode: 'overwrite' }] },
      jobsByTheirOwnTime,
    ]) {
      const r = await read(catalog);
      expect(r.code).not.toBe(0);
      expect(r.messages.filter((m) => m.type === 'TRACE' && m.trace.error?.failure_type === 'config_error')).toHaveLength(1);
      expect(r.messages.filter((m) => m.type === 'RECORD')).toEqual([]);
    }
  });
});

describe('stopping', () => {
  test('SIGTERM ends a read within seconds with a checkpoint of what was completed; a rerun from it completes the data', async () => {
    const slow = await startMockServer({ world, token: TEST_TOKEN, latencyMs: 15 });
    try {
      const config = configFor({ base_url: slow.baseUrl });
      const files = tempFiles({ config, catalog: ALL_FULL });
      let records = 0;
      let signalledAt = 0;
      const first = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], {
        onStdoutLine: (line, kill) => {
          // Jobs are the leaves: after a few hundred, whole pipelines are complete.
          if (line.includes('"stream":"jobs"') && ++records === 300) {
            signalledAt = Date.now();
            kill('SIGTERM');
          }
        },
      });
      expect(signalledAt).toBeGreaterThan(0);
      expect(Date.now() - signalledAt).toBeLessThan(10_000);
      // It dies by the signal after its cleanup (a shell reports 143), as a platform watching for it expects.
      expect({ code: first.code, signal: first.signal }).toEqual({ code: null, signal: 'SIGTERM' });
      expect(invalidMessages(first.messages)).toEqual([]);
      expect(first.messages.some((m) => m.type === 'TRACE' && m.trace.type === 'ERROR')).toBe(false);
      const stopLog = first.messages.findIndex((m) => m.type === 'LOG' && /SIGTERM/.test(m.log.message));
      const states = lastStates(first.messages);
      // The stop left resume markers: pipelines already completed are not fetched again.
      expect(first.messages.slice(stopLog).some((m) => m.type === 'STATE' && JSON.stringify(m).includes('"resume"'))).toBe(true);
      const second = await read(ALL_FULL, states, config);
      expect(second.code).toBe(0);
      const truth = world.groundTruth(startDate);
      for (const s of STREAMS) {
        const union = byKey(s, recordsOf(first.messages, s));
        byKey(s, recordsOf(second.messages, s), union);
        expectEqualToTruth(s, union, truth[s] as unknown as Message[]);
      }
      expect(recordsOf(second.messages, 'jobs').length).toBeLessThan(truth.jobs.length);
    } finally {
      await slow.close();
    }
  });
});

describe('failures against the mock', () => {
  test('429s with Retry-After, 5xx and resets are retried and the data is complete', async () => {
    const faulty = await startMockServer({
      world, token: TEST_TOKEN, jobPageSize: 3, seed: 3,
      faults: { rate500: 0.05, rate502Html: 0.03, rate429: 0.05, rateReset: 0.02 },
    });
    try {
      const r = await read(ALL_FULL, undefined, configFor({ base_url: faulty.baseUrl }));
      expect(r.code).toBe(0);
      const truth = world.groundTruth(startDate);
      for (const s of STREAMS) expectEqualToTruth(s, byKey(s, recordsOf(r.messages, s)), truth[s] as unknown as Message[]);
      expect(Object.keys(faulty.counters.byStatus)).toEqual(expect.arrayContaining(['429', '500', '502']));
      expect(r.messages.some((m) => m.type === 'LOG' && /rate limited; retry/.test(m.log.message))).toBe(true);
      // While rate limited, the platform hears why nothing flows.
      const limited = r.messages.filter((m) => m.type === 'TRACE' && m.trace.stream_status?.reasons?.[0]?.type === 'RATE_LIMITED');
      expect(limited.length).toBeGreaterThan(0);
      expect(limited[0].trace.stream_status.reasons[0].rate_limited.quota_reset).toBeGreaterThan(Date.now() - 600_000);
    } finally {
      await faulty.close();
    }
  });

  test('children of expired pipelines (404) are skipped with a WARN and counted', async () => {
    const expiring = await startMockServer({ world, token: TEST_TOKEN, retentionDays: 10 });
    try {
      const r = await read(configuredCatalog({ workflows: 'full_refresh' }), undefined, configFor({ base_url: expiring.baseUrl }));
      expect(r.code).toBe(0);
      expect(r.messages.some((m) => m.type === 'LOG' && m.log.level === 'WARN' && /404, the data has expired/.test(m.log.message))).toBe(true);
      expect(r.messages.some((m) => m.type === 'LOG' && /skipped \d+ expired lists/.test(m.log.message))).toBe(true);
      expect(recordsOf(r.messages, 'workflows').length).toBeGreaterThan(0);
    } finally {
      await expiring.close();
    }
  });
});


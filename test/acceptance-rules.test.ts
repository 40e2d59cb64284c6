/**
 * The acceptance checks of test/docker/acceptance.ts (what newer CATs check and CAT 0.11.5 does
 * not, plus the project's own protocol rules), without Docker: the whole plan passes against the
 * local CLI and the mock, and every check fails when its rule is broken, both as a pure function
 * over a deliberately broken fixture and, for the wiring, through the plan with a connector whose
 * output has been tampered with.
 */
import {
  AcceptanceContext, LocalConnector, assembleState, catalogFromDiscovery, checkConfiguredCatalog, checkFixtures, checkImageEntrypoint, checkImageLabels,
  checkPrimaryKeyTypes, checkProtocol, checkResumable, checkSliceReread, checkStateMessages, checkStreamStatuses, checkTwoSequentialReads,
  checkpointsWithExpectedCounts, loadFixtures, loadMetadata, loadTestConfig, parseOutput, planAcceptance, runPlan, selectCheckpoints, startAcceptanceMock,
  type AcceptanceMock, type Command, type Connector, type ImageInfo, type Inputs, type Json, type Message, type RunOutput,
} from './docker/acceptance.js';

let mock: AcceptanceMock;
let streams: Json[];
let catalog: Json;
let read: Message[];

const clone = <T>(v: T): T => structuredClone(v);
/** A discovered stream, or a configured catalog's entry, by stream name. */
const named = (list: Json[], name: string): Json => list.find((x) => (x.name ?? x.stream?.name) === name)!;
const out = (messages: Message[], code = 0, command = 'read'): RunOutput => ({ command, code, stdout: messages.map((m) => JSON.stringify(m)).join('\n'), stderr: '', messages, nonJson: [], ms: 1 });
const record = (stream: string, data: Json, emitted_at = 1): Message => ({ type: 'RECORD', record: { stream, data, emitted_at } });
const state = (name: string, stream_state: Json, recordCount = 1): Message => ({ type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name }, stream_state }, sourceStats: { recordCount } } });

beforeAll(async () => {
  mock = await startAcceptanceMock();
  const ctx = new AcceptanceContext(new LocalConnector(), mock);
  streams = (await ctx.discover()).streams;
  catalog = catalogFromDiscovery(streams);
  read = (await ctx.run('read', { config: mock.secretsConfig, catalog })).out.messages;
});

afterAll(async () => {
  await mock?.close();
});

describe('the whole plan against the local CLI and the mock', () => {
  test('every configured check passes', async () => {
    const results = await runPlan(new AcceptanceContext(new LocalConnector(), mock));
    const failed = results.filter((r) => r.problems.length).map((r) => ({ check: r.name, problems: r.problems }));
    expect(failed).toEqual([]);
    expect(results.filter((r) => r.skipped).map((r) => r.name)).toEqual([]);
  });

  test('the plan has a check for each rule of newer CATs that CAT 0.11.5 lacks, and none that CAT 0.11.5 runs', () => {
    const names = planAcceptance(loadTestConfig(), loadMetadata()).map((c) => c.name);
    for (const rule of ['test_primary_keys_data_type', 'is_resumable', 'validate_state_messages', 'validate_stream_statuses', 'test_two_sequential_reads', 'test_read_sequential_slices', 'current protocol and no token']) {
      expect(names.filter((n) => n.includes(rule))).toHaveLength(1);
    }
    // Every check names where its rule comes from.
    for (const n of names) expect(n).toMatch(/\((newer CAT|protocol)[^)]*\)$|^project: /);
    for (const cat0115 of ['test_check', 'test_discover', 'test_read ', 'test_sequential_reads', 'test_state_with_abnormally_large_values', 'test_secret_is_properly_marked', 'test_image_labels']) {
      expect(names.filter((n) => n.includes(cat0115))).toEqual([]);
    }
  });
});

describe('each check fails when its rule is broken', () => {
  describe('protocol and exit codes', () => {
    test('good output passes', () => {
      expect(checkProtocol(out(read), [mock.env.token])).toEqual([]);
    });
    test('a non-JSON stdout line', () => {
      expect(checkProtocol(parseOutput('read', 'hello\n{"type":"LOG","log":{"level":"INFO","message":"x"}}\n', '', 0, 1))).not.toEqual([]);
    });
    test('a RECORD without emitted_at', () => {
      expect(checkProtocol(out([{ type: 'RECORD', record: { stream: 'jobs', data: {} } }]))).not.toEqual([]);
    });
    test('the token in the output', () => {
      const leaked = { ...out(read), stderr: `using token ${mock.env.token}` };
      expect(checkProtocol(leaked, [mock.env.token])).not.toEqual([]);
    });
  });

  describe('image', () => {
    const good: ImageInfo = {
      labels: { 'io.airbyte.name': 'source-circleci', 'io.airbyte.version': String(loadMetadata().data.dockerImageTag) },
      env: { AIRBYTE_ENTRYPOINT: '/airbyte/integration_code/dist/cli/airbyte.js' },
      entrypoint: ['/airbyte/integration_code/dist/cli/airbyte.js'],
      user: 'airbyte',
    };
    test('the expected image passes', () => {
      expect(checkImageLabels(good, loadMetadata())).toEqual([]);
      expect(checkImageEntrypoint(good)).toEqual([]);
    });
    test('labels that drift from metadata.yaml', () => {
      expect(checkImageLabels({ ...good, labels: { ...good.labels, 'io.airbyte.version': '9.9.9' } }, loadMetadata())).not.toEqual([]);
      expect(checkImageLabels({ ...good, labels: { 'io.airbyte.version': good.labels['io.airbyte.version'] } }, loadMetadata())).not.toEqual([]);
    });
    test('AIRBYTE_ENTRYPOINT missing or different, a relative entrypoint, root', () => {
      expect(checkImageEntrypoint({ ...good, env: {} })).not.toEqual([]);
      expect(checkImageEntrypoint({ ...good, env: { AIRBYTE_ENTRYPOINT: 'node main.js' } })).not.toEqual([]);
      expect(checkImageEntrypoint({ ...good, entrypoint: ['node', 'dist/cli/airbyte.js'], env: { AIRBYTE_ENTRYPOINT: 'node dist/cli/airbyte.js' } })).not.toEqual([]);
      expect(checkImageEntrypoint({ ...good, user: '' })).not.toEqual([]);
    });
  });

  describe('discovery', () => {
    test('the real catalog passes', () => {
      expect(checkPrimaryKeyTypes(streams)).toEqual([]);
      expect(checkResumable(streams)).toEqual([]);
    });
    test('a primary key of type object or array, or not in the schema', () => {
      const s = clone(streams);
      named(s, 'pipelines').json_schema.properties.id = { type: ['null', 'object'] };
      expect(checkPrimaryKeyTypes(s)).toEqual([expect.stringContaining('pipelines')]);
      const a = clone(streams);
      named(a, 'jobs').json_schema.properties._workflow_id = { type: 'array', items: { type: 'string' } };
      expect(checkPrimaryKeyTypes(a)).toEqual([expect.stringContaining('jobs')]);
      const missing = clone(streams);
      named(missing, 'workflows').source_defined_primary_key = [['nope']];
      expect(checkPrimaryKeyTypes(missing)).toEqual([expect.stringContaining('workflows')]);
    });
    test('is_resumable missing, false on an incremental stream, or without source_defined_cursor', () => {
      const none = clone(streams);
      delete named(none, 'jobs').is_resumable;
      expect(checkResumable(none)).toEqual(expect.arrayContaining([expect.stringContaining('jobs')]));
      expect(checkResumable(none).filter((p) => !p.includes('jobs'))).toEqual([]);
      const notResumable = clone(streams);
      named(notResumable, 'pipelines').is_resumable = false;
      expect(checkResumable(notResumable)).toEqual([expect.stringContaining('pipelines')]);
      const noCursorFlag = clone(streams);
      delete named(noCursorFlag, 'jobs').source_defined_cursor;
      expect(checkResumable(noCursorFlag)).toEqual([expect.stringContaining('jobs')]);
    });
  });

  describe('configured catalogs and fixtures', () => {
    test('the shipped fixtures agree', () => {
      expect(checkFixtures(loadFixtures(), streams)).toEqual([]);
    });
    test('a catalog with a missing cursor path, an unknown stream, an unsupported mode, a wrong key', () => {
      const f = loadFixtures();
      const badCursor = clone(f.incrementalCatalog);
      badCursor.streams[0].cursor_field = ['missing', 'path'];
      expect(checkConfiguredCatalog(badCursor, streams, 'c')).not.toEqual([]);
      const unknown = clone(f.configuredCatalog);
      unknown.streams[0].stream.name = 'builds';
      expect(checkConfiguredCatalog(unknown, streams, 'c')).not.toEqual([]);
      const unsupportedMode = clone(f.configuredCatalog);
      named(unsupportedMode.streams, 'jobs').sync_mode = 'log_based';
      expect(checkConfiguredCatalog(unsupportedMode, streams, 'c')).not.toEqual([]);
      const key = clone(f.configuredCatalog);
      named(key.streams, 'jobs').primary_key = [['id']];
      expect(checkConfiguredCatalog(key, streams, 'c')).not.toEqual([]);
    });
    test('states that miss a project or a stream, an abnormal state in the past, a stray expected record', () => {
      const f = loadFixtures();
      const missingProject = clone(f);
      delete missingProject.abnormalState[0].stream.stream_state['bb/acme/web'];
      expect(checkFixtures(missingProject, streams)).toEqual([expect.stringContaining('bb/acme/web')]);
      const missingStream = clone(f);
      missingStream.sampleState = missingStream.sampleState.filter((m: { stream: { stream_descriptor: { name: string } } }) => m.stream.stream_descriptor.name !== 'workflows');
      expect(checkFixtures(missingStream, streams)).toEqual([expect.stringContaining('workflows')]);
      const past = clone(f);
      for (const m of past.abnormalState) for (const c of Object.values<Json>(m.stream.stream_state)) for (const k of Object.keys(c)) c[k] = '2026-01-01T00:00:00.000Z';
      expect(checkFixtures(past, streams)).not.toEqual([]);
      const stray = clone(f);
      stray.expectedRecords.push({ stream: 'builds', data: {}, emitted_at: 1 });
      expect(checkFixtures(stray, streams)).not.toEqual([]);
      const badSample = clone(f);
      badSample.sampleConfig.project_slugs = 'gh/acme/api';
      badSample.sampleConfig.max_concurrency = 0;
      expect(checkFixtures(badSample, streams)).not.toEqual([]);
      const partial = clone(f);
      partial.configuredCatalog.streams = partial.configuredCatalog.streams.filter((e: Json) => e.stream.name !== 'jobs');
      expect(checkFixtures(partial, streams)).toEqual([expect.stringContaining('leaves out stream jobs')]);
    });
  });

  describe('basic read', () => {
    test('the real read passes', () => {
      expect(checkStateMessages(read, catalog)).toEqual([]);
      expect(checkStreamStatuses(read, catalog)).toEqual([]);
    });
    test('no STATE; a stream without STATE; a LEGACY state; no sourceStats; no stream_descriptor', () => {
      expect(checkStateMessages(read.filter((m) => m.type !== 'STATE'), catalog)).not.toEqual([]);
      expect(checkStateMessages(read.filter((m) => !(m.type === 'STATE' && m.state.stream.stream_descriptor.name === 'jobs')), catalog)).toEqual([
        expect.stringContaining('jobs'),
      ]);
      const legacy = [...read, { type: 'STATE', state: { data: { pipelines: {} }, sourceStats: { recordCount: 0 } } }];
      expect(checkStateMessages(legacy, catalog)).toEqual([expect.stringContaining('LEGACY')]);
      const noStats = clone(read);
      delete noStats.find((m) => m.type === 'STATE')!.state.sourceStats;
      expect(checkStateMessages(noStats, catalog)).toEqual([expect.stringContaining('sourceStats')]);
      const noDescriptor = [...read, { type: 'STATE', state: { type: 'STREAM', stream: { stream_state: {} }, sourceStats: { recordCount: 0 } } }];
      expect(checkStateMessages(noDescriptor, catalog)).toEqual([expect.stringContaining('stream_descriptor')]);
    });
    test('stream statuses without COMPLETE, or INCOMPLETE', () => {
      const noComplete = read.filter((m) => !(m.type === 'TRACE' && m.trace.type === 'STREAM_STATUS' && m.trace.stream_status.status === 'COMPLETE'));
      expect(checkStreamStatuses(noComplete, catalog)).toHaveLength(catalog.streams.length);
      const incomplete = clone(read);
      incomplete.filter((m) => m.type === 'TRACE' && m.trace.stream_status?.status === 'COMPLETE')[0].trace.stream_status.status = 'INCOMPLETE';
      expect(checkStreamStatuses(incomplete, catalog)).toHaveLength(1);
    });
    test('a recordCount that is not the number of records since the stream\'s previous STATE', () => {
      const wrong = clone(read);
      const s = wrong.find((m) => m.type === 'STATE' && m.state.sourceStats.recordCount > 0)!;
      s.state.sourceStats.recordCount += 1;
      expect(checkStateMessages(wrong, catalog)).toEqual([expect.stringContaining('recordCount')]);
      // A record moved after the STATE that counted it.
      const moved = clone(read);
      const i = moved.findIndex((m) => m.type === 'STATE' && m.state.sourceStats.recordCount > 0);
      const name = moved[i].state.stream.stream_descriptor.name;
      const j = moved.slice(0, i).map((m) => m.type === 'RECORD' && m.record.stream === name).lastIndexOf(true);
      const [r] = moved.splice(j, 1);
      moved.splice(i, 0, r);
      expect(checkStateMessages(moved, catalog).length).toBeGreaterThan(0);
    });
  });

  describe('incremental', () => {
    test('state assembly keeps the last STATE of each stream', () => {
      const s = assembleState([state('a', { x: 1 }), state('b', { y: 1 }), state('a', { x: 2 })]);
      expect(s).toEqual([
        { type: 'STREAM', stream: { stream_descriptor: { name: 'a' }, stream_state: { x: 2 } } },
        { type: 'STREAM', stream: { stream_descriptor: { name: 'b' }, stream_state: { y: 1 } } },
      ]);
    });
    test('a second read that repeats the first, a first read with no STATE or no records', () => {
      const first = [record('p', { id: 1 }), record('p', { id: 2 }), state('p', { c: 2 }, 2)];
      expect(checkTwoSequentialReads(first, [record('p', { id: 2 }), state('p', { c: 2 }, 1)])).toEqual([]);
      expect(checkTwoSequentialReads(first, first)).not.toEqual([]);
      expect(checkTwoSequentialReads(first, [...first].reverse())).not.toEqual([]); // the same records in another order are no difference
      expect(checkTwoSequentialReads(first.slice(0, 2), [])).not.toEqual([]);
      expect(checkTwoSequentialReads([state('p', {}, 0)], [])).not.toEqual([]);
    });
    test('checkpoints: identical consecutive states collapse, zero counts drop, expected = records after', () => {
      const states = [state('p', { c: 1 }, 3), state('p', { c: 1 }, 2), state('p', { c: 2 }, 4), state('p', { c: 3 }, 0), state('p', { c: 4 }, 1)];
      const cps = checkpointsWithExpectedCounts(states);
      expect(cps.map((c) => [c.state.state.stream.stream_state.c, c.count, c.expected])).toEqual([
        [1, 5, 5],
        [2, 4, 1],
        [4, 1, 0],
      ]);
      expect(selectCheckpoints(cps).map((c) => c.state.state.stream.stream_state.c)).toEqual([2, 4]);
      expect(selectCheckpoints(cps.slice(0, 2)).map((c) => c.state.state.stream.stream_state.c)).toEqual([2]);
      expect(selectCheckpoints(Array.from({ length: 12 }, (_, i) => i))).toEqual([1, 3, 5, 7, 9, 11]);
    });
    test('a re-read from a checkpoint with fewer records than counted after it, or the same records again', () => {
      const first = [record('p', { id: 1 }), record('p', { id: 2 }), record('p', { id: 3 })];
      expect(checkSliceReread(first.map((m) => m.record), first.slice(1).map((m) => m.record), 2, 'p')).toEqual([]);
      expect(checkSliceReread(first.map((m) => m.record), first.slice(2).map((m) => m.record), 2, 'p')).not.toEqual([]);
      expect(checkSliceReread(first.map((m) => m.record), first.map((m) => m.record), 0, 'p')).not.toEqual([]);
    });
  });
});

class Tampered implements Connector {
  readonly kind = 'local' as const;
  readonly name = 'tampered local CLI';
  private readonly inner = new LocalConnector();
  constructor(
    private readonly change: (command: Command, messages: Message[], inputs: Inputs) => Message[],
    private readonly image?: ImageInfo,
    private readonly dropState = false,
  ) {}
  /** Without its state, a read is the same read every time (the mock's clock stands still): run it once. */
  private readonly stateless = new Map<string, Promise<RunOutput>>();
  async run(command: Command, inputs: Inputs = {}, opts: { timeoutMs?: number } = {}): Promise<RunOutput> {
    let r: RunOutput;
    if (this.dropState) {
      const key = JSON.stringify([command, { ...inputs, state: undefined }]);
      if (!this.stateless.has(key)) this.stateless.set(key, this.inner.run(command, { ...inputs, state: undefined }, opts));
      r = structuredClone(await this.stateless.get(key)!);
    } else r = await this.inner.run(command, inputs, opts);
    const messages = this.change(command, r.messages, inputs);
    return { ...r, messages, stdout: messages.map((m) => JSON.stringify(m)).join('\n') };
  }
  async inspect(): Promise<ImageInfo | undefined> {
    return this.image;
  }
}

describe('the plan fails when the connector breaks a rule', () => {
  const plan = planAcceptance(loadTestConfig(), loadMetadata());
  const failing = async (connector: Connector, match: RegExp) => {
    const c = new AcceptanceContext(connector, mock);
    const checks = plan.filter((p) => match.test(p.name));
    expect(checks.length).toBeGreaterThan(0);
    return Promise.all(checks.map(async (p) => ({ name: p.name, ...(await p.run(c)) })));
  };
  const expectAllFail = async (connector: Connector, match: RegExp) => {
    for (const r of await failing(connector, match)) expect({ check: r.name, failed: r.problems.length > 0 }).toEqual({ check: r.name, failed: true });
  };

  test('a catalog without is_resumable and with an object primary key', async () => {
    const c = new Tampered((command, messages) => {
      if (command === 'discover') {
        for (const s of messages[0].catalog.streams) delete s.is_resumable;
        messages[0].catalog.streams[0].json_schema.properties.id = { type: 'object' };
      }
      return messages;
    });
    await expectAllFail(c, /is_resumable|test_primary_keys_data_type/);
  });

  test('no sourceStats, LEGACY states, no stream statuses', async () => {
    const c = new Tampered((command, messages) =>
      messages
        .filter((m) => !(m.type === 'TRACE' && m.trace.type === 'STREAM_STATUS'))
        .map((m) => (m.type === 'STATE' ? { type: 'STATE', state: { data: m.state.stream.stream_state } } : m)),
    );
    await expectAllFail(c, /validate_state_messages|validate_stream_statuses/);
  });

  test('a connector that ignores its state fails the incremental checks', async () => {
    const c = new Tampered((_, m) => m, undefined, true);
    await expectAllFail(c, /test_two_sequential_reads|test_read_sequential_slices/);
  });

  test('a token in the output of check fails the protocol check', async () => {
    const c = new Tampered((command, messages) =>
      command === 'check' ? [...messages, { type: 'LOG', log: { level: 'INFO', message: `token ${mock.env.token}` } }] : messages,
    );
    await expectAllFail(c, /no token/);
  });
});

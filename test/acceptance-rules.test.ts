/**
 * The acceptance checks of test/docker/acceptance.ts, without Docker: the whole plan passes
 * against the local CLI and the mock, and every check fails when its rule is broken, both as a
 * pure function over a deliberately broken fixture and, for the wiring, through the plan with a
 * connector whose output has been tampered with.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AcceptanceContext, BOGUS_CATALOG, LocalConnector, ROOT, assembleState, catalogBreakingChanges, catalogFromDiscovery, checkAbnormalStateRead,
  checkAdditionalPropertiesTrue, checkArrayType, checkConfigMatchesSpec, checkConfiguredCatalog, checkConnection, checkCursorsAndKeysExist,
  checkDiscoverMessage, checkEnumUsage, checkExpectedRecords, checkFixtures, checkForbiddenComplexTypes, checkFutureStateCoverage, checkImageEntrypoint,
  checkImageLabels, checkOAuthParameters, checkObjectNotEmpty, checkOneOfUsage, checkPrimaryKeyValues, checkPropertyTypeNotArray, checkProtocol,
  checkRecordsMatchSchema, checkRecordsPresent, checkRefsResolve, checkSecretsMarked, checkSequentialFullRefresh, checkSliceReread, checkSpecMatchesExpected,
  checkSpecMessage, checkStateMessages, checkStreamSchemas, checkStreamStatuses, checkSupportedDataTypes, checkSyncModes, checkTestConfig,
  checkTraceOnFailure, checkTwoSequentialReads, checkpointsWithExpectedCounts, dateFormatWarnings, loadFixtures, loadMetadata, loadTestConfig,
  parseOutput, planAcceptance, readJsonl, runPlan, selectCheckpoints, specBreakingChanges, startAcceptanceMock,
  type AcceptanceMock, type Command, type Connector, type ImageInfo, type Inputs, type Json, type Message, type RunOutput,
} from './docker/acceptance.js';

let mock: AcceptanceMock;
let ctx: AcceptanceContext;
let spec: Json;
let cs: Json;
let streams: Json[];
let catalog: Json;
let read: Message[];

const clone = <T>(v: T): T => structuredClone(v);
const out = (messages: Message[], code = 0, command = 'read'): RunOutput => ({ command, code, stdout: messages.map((m) => JSON.stringify(m)).join('\n'), stderr: '', messages, nonJson: [], ms: 1 });
const record = (stream: string, data: Json, emitted_at = 1): Message => ({ type: 'RECORD', record: { stream, data, emitted_at } });
const state = (name: string, stream_state: Json, recordCount = 1): Message => ({ type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name }, stream_state }, sourceStats: { recordCount } } });

beforeAll(async () => {
  mock = await startAcceptanceMock();
  ctx = new AcceptanceContext(new LocalConnector(), mock);
  spec = ofSpec((await ctx.spec()).out.messages);
  cs = spec.connectionSpecification;
  streams = (await ctx.discover()).streams;
  catalog = catalogFromDiscovery(streams);
  read = (await ctx.run('read', { config: mock.secretsConfig, catalog })).out.messages;
});

afterAll(async () => {
  await mock?.close();
});

function ofSpec(messages: Message[]): Json {
  return messages.find((m) => m.type === 'SPEC')!.spec;
}

describe('the whole plan against the local CLI and the mock', () => {
  test('every configured check passes (image-only checks skip)', async () => {
    const results = await runPlan(new AcceptanceContext(new LocalConnector(), mock));
    const failed = results.filter((r) => r.problems.length).map((r) => ({ check: r.name, problems: r.problems }));
    expect(failed).toEqual([]);
    const skipped = results.filter((r) => r.skipped).map((r) => r.name);
    expect(skipped.every((n) => /image|ENTRYPOINT|backward/.test(n))).toBe(true);
    // Every suite of the config is there, and the plan is not trivially small.
    expect(new Set(results.map((r) => r.suite))).toEqual(new Set(['config', 'spec', 'connection', 'discovery', 'basic_read', 'full_refresh', 'incremental']));
    expect(results.length).toBeGreaterThanOrEqual(40);
  });

  test('the plan has a check for each rule the issue lists', () => {
    const names = planAcceptance(loadTestConfig(), loadMetadata()).map((c) => c.name).join('\n');
    for (const rule of [
      'test_secret_is_properly_marked', 'test_forbidden_complex_types', 'test_additional_properties_is_true', 'test_image_labels', 'test_image_environment_variables',
      'succeed', 'failed', 'test_discover', 'no extra columns', 'primary-key', 'expect_records', 'validate_state_messages', 'test_airbyte_trace_message_on_failure',
      'test_sequential_reads', 'test_two_sequential_reads', 'test_read_sequential_slices', 'test_state_with_abnormally_large_values',
    ]) {
      expect(names).toContain(rule);
    }
  });
});

// =================================================================================================
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

  describe('spec', () => {
    const mutated = (f: (s: Json) => void) => {
      const s = clone(cs);
      f(s);
      return s;
    };
    test('the real spec passes every spec rule', () => {
      expect(checkSpecMessage([{ type: 'SPEC', spec }])).toEqual([]);
      for (const check of [checkEnumUsage, checkOneOfUsage, checkSecretsMarked, checkPropertyTypeNotArray, checkObjectNotEmpty, checkArrayType, checkForbiddenComplexTypes, checkRefsResolve]) {
        expect(check(cs)).toEqual([]);
      }
      expect(checkAdditionalPropertiesTrue(cs)).toEqual([]);
      expect(checkOAuthParameters(spec)).toEqual([]);
      expect(checkSpecMatchesExpected(spec, JSON.parse(readFileSync(join(ROOT, 'integration_tests/spec.json'), 'utf8')))).toEqual([]);
    });
    test('no SPEC, or two', () => {
      expect(checkSpecMessage([])).not.toEqual([]);
      expect(checkSpecMessage([{ type: 'SPEC', spec }, { type: 'SPEC', spec }])).not.toEqual([]);
    });
    test('a config that does not match the spec', () => {
      expect(checkConfigMatchesSpec(cs, mock.secretsConfig)).toEqual([]);
      expect(checkConfigMatchesSpec(cs, { ...mock.secretsConfig, lookback_days: 'seven' })).not.toEqual([]);
      const { token: _dropped, ...noToken } = mock.secretsConfig;
      void _dropped;
      expect(checkConfigMatchesSpec(cs, noToken)).not.toEqual([]);
    });
    test('a spec that differs from the spec_path file', () => {
      expect(checkSpecMatchesExpected({ ...spec, documentationUrl: 'https://example.com' }, spec)).not.toEqual([]);
    });
    test('an unmarked token', () => {
      expect(checkSecretsMarked(mutated((s) => delete s.properties.token.airbyte_secret))).toEqual([expect.stringContaining('token')]);
    });
    test('an unmarked secret inside a oneOf variant', () => {
      const s = mutated((x) => {
        x.properties.credentials = { type: 'object', oneOf: [{ properties: { auth: { const: 'key' }, api_token: { type: 'string' } } }] };
      });
      expect(checkSecretsMarked(s)).toEqual([expect.stringContaining('api_token')]);
    });
    test('a secret mark on a field that cannot hold a secret', () => {
      expect(checkSecretsMarked(mutated((s) => (s.properties.password = { type: 'boolean', airbyte_secret: true })))).not.toEqual([]);
    });
    test('anyOf (and the other forbidden keywords)', () => {
      expect(checkForbiddenComplexTypes(mutated((s) => (s.properties.start_date.anyOf = [{ format: 'date' }, { format: 'date-time' }])))).toEqual([
        expect.stringContaining('anyOf'),
      ]);
      for (const kw of ['not', 'allOf', 'patternProperties', 'if', 'dependentRequired']) {
        expect(checkForbiddenComplexTypes(mutated((s) => (s.properties.base_url[kw] = {})))).not.toEqual([]);
      }
    });
    test('additionalProperties false', () => {
      expect(checkAdditionalPropertiesTrue(mutated((s) => (s.additionalProperties = false)))).not.toEqual([]);
    });
    test('duplicate enum values', () => {
      expect(checkEnumUsage(mutated((s) => (s.properties.mode = { type: 'string', enum: ['a', 'b', 'a'] })))).not.toEqual([]);
    });
    test('a oneOf without one common const property, or under a non-object', () => {
      const noConst = mutated((s) => {
        s.properties.auth = { type: 'object', oneOf: [{ properties: { kind: { type: 'string' } } }, { properties: { kind: { type: 'string' } } }] };
      });
      expect(checkOneOfUsage(noConst)).not.toEqual([]);
      const notObject = mutated((s) => {
        s.properties.auth = { type: 'string', oneOf: [{ properties: { kind: { const: 'a' } } }, { properties: { kind: { const: 'b' } } }] };
      });
      expect(checkOneOfUsage(notObject)).not.toEqual([]);
      const good = mutated((s) => {
        s.properties.auth = { type: 'object', oneOf: [{ properties: { kind: { const: 'a' } } }, { properties: { kind: { const: 'b' }, x: { type: 'string' } } }] };
      });
      expect(checkOneOfUsage(good)).toEqual([]);
    });
    test('a property with two non-null types', () => {
      expect(checkPropertyTypeNotArray(mutated((s) => (s.properties.lookback_days.type = ['integer', 'string'])))).not.toEqual([]);
      expect(checkPropertyTypeNotArray(mutated((s) => (s.properties.lookback_days.type = ['integer', 'null'])))).toEqual([]);
    });
    test('an empty object', () => {
      expect(checkObjectNotEmpty(mutated((s) => (s.properties.extra = { type: 'object' })))).not.toEqual([]);
    });
    test('an array of booleans, or with no items', () => {
      expect(checkArrayType(mutated((s) => (s.properties.project_slugs.items = { type: 'boolean' })))).not.toEqual([]);
      expect(checkArrayType(mutated((s) => delete s.properties.project_slugs.items))).not.toEqual([]);
    });
    test('an unresolved $ref', () => {
      expect(checkRefsResolve(mutated((s) => (s.properties.base_url = { $ref: '#/definitions/missing' })))).not.toEqual([]);
      expect(checkRefsResolve(mutated((s) => {
        s.definitions = { url: { type: 'string' } };
        s.properties.base_url = { $ref: '#/definitions/url' };
      }))).toEqual([]);
    });
    test('OAuth parameters that the spec lacks', () => {
      const withAuth = { ...spec, advanced_auth: { auth_flow_type: 'oauth2.0', predicate_key: ['credentials', 'auth_type'], oauth_config_specification: {} } };
      expect(checkOAuthParameters(withAuth)).not.toEqual([]);
    });
    test('a date-time format without its pattern only warns', () => {
      expect(dateFormatWarnings(cs)).toEqual([]);
      expect(dateFormatWarnings(mutated((s) => (s.properties.start_date = { type: 'string', format: 'date-time' })))).not.toEqual([]);
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

  describe('backward compatibility', () => {
    test('the same spec and catalog are compatible', () => {
      expect(specBreakingChanges(cs, cs)).toEqual([]);
      expect(catalogBreakingChanges(streams, streams)).toEqual([]);
    });
    test('a new required field, a changed type, a removed enum value', () => {
      expect(specBreakingChanges(cs, { ...cs, required: [...cs.required, 'start_date'] })).not.toEqual([]);
      const retyped = clone(cs);
      retyped.properties.lookback_days.type = 'string';
      expect(specBreakingChanges(cs, retyped)).not.toEqual([]);
      expect(specBreakingChanges({ properties: { m: { enum: ['a', 'b'] } } }, { properties: { m: { enum: ['a'] } } })).not.toEqual([]);
    });
    test('a removed stream or column, a changed key', () => {
      expect(catalogBreakingChanges(streams, streams.slice(1))).not.toEqual([]);
      const changed = clone(streams);
      delete changed[0].json_schema.properties.state;
      changed[2].source_defined_primary_key = [['id']];
      expect(catalogBreakingChanges(streams, changed)).toHaveLength(2);
    });
  });

  describe('connection', () => {
    const status = (s: string, message?: string): Message => ({ type: 'CONNECTION_STATUS', connectionStatus: { status: s, ...(message ? { message } : {}) } });
    test('the right status passes', () => {
      expect(checkConnection(out([status('SUCCEEDED')], 0, 'check'), 'succeed')).toEqual([]);
      expect(checkConnection(out([status('FAILED', 'bad token')], 0, 'check'), 'failed')).toEqual([]);
    });
    test('FAILED where succeed is expected, SUCCEEDED where failed is', () => {
      expect(checkConnection(out([status('FAILED', 'x')], 0, 'check'), 'succeed')).not.toEqual([]);
      expect(checkConnection(out([status('SUCCEEDED')], 0, 'check'), 'failed')).not.toEqual([]);
    });
    test('two statuses, none, or a non-zero exit', () => {
      expect(checkConnection(out([status('SUCCEEDED'), status('SUCCEEDED')], 0, 'check'), 'succeed')).not.toEqual([]);
      expect(checkConnection(out([], 0, 'check'), 'succeed')).not.toEqual([]);
      expect(checkConnection(out([status('FAILED', 'x')], 1, 'check'), 'failed')).not.toEqual([]);
    });
    test('exception: exactly one TRACE ERROR', () => {
      const trace = { type: 'TRACE', trace: { type: 'ERROR', emitted_at: 1, error: { message: 'boom' } } };
      expect(checkConnection(out([trace], 1, 'check'), 'exception')).toEqual([]);
      expect(checkConnection(out([], 1, 'check'), 'exception')).not.toEqual([]);
      expect(checkConnection(out([trace, trace], 1, 'check'), 'exception')).not.toEqual([]);
    });
  });

  describe('discovery', () => {
    test('the real catalog passes', () => {
      const catalogMessage = { type: 'CATALOG', catalog: { streams } };
      expect(checkDiscoverMessage([catalogMessage])).toEqual([]);
      for (const check of [checkStreamSchemas, checkSupportedDataTypes, checkCursorsAndKeysExist, checkSyncModes]) expect(check(streams)).toEqual([]);
    });
    test('no catalog, two, no streams, duplicate names', () => {
      expect(checkDiscoverMessage([])).not.toEqual([]);
      expect(checkDiscoverMessage([{ type: 'CATALOG', catalog: { streams } }, { type: 'CATALOG', catalog: { streams } }])).not.toEqual([]);
      expect(checkDiscoverMessage([{ type: 'CATALOG', catalog: { streams: [] } }])).not.toEqual([]);
      expect(checkDiscoverMessage([{ type: 'CATALOG', catalog: { streams: [...streams, streams[0]] } }])).not.toEqual([]);
    });
    test('an invalid draft-07 schema, $ref, allOf, not', () => {
      const s = clone(streams);
      s[0].json_schema.properties.id.type = 'uuid';
      expect(checkStreamSchemas(s)).not.toEqual([]);
      for (const [k, v] of [['$ref', '#/definitions/x'], ['allOf', [{ type: 'string' }]], ['not', { type: 'null' }]]) {
        const t = clone(streams);
        t[1].json_schema.properties.name[k as string] = v;
        expect(checkStreamSchemas(t)).not.toEqual([]);
      }
    });
    test('unsupported data types', () => {
      const s = clone(streams);
      s[0].json_schema.properties.created_at.airbyte_type = 'timestamp';
      expect(checkSupportedDataTypes(s)).not.toEqual([]);
    });
    test('a default cursor or primary key that is not in the schema', () => {
      const s = clone(streams);
      s[0].default_cursor_field = ['nope'];
      expect(checkCursorsAndKeysExist(s)).toEqual([expect.stringContaining('default_cursor_field')]);
      const k = clone(streams);
      k[2].source_defined_primary_key = [['id'], ['_nope']];
      expect(checkCursorsAndKeysExist(k)).toEqual([expect.stringContaining('primary key')]);
    });
    test('no sync modes', () => {
      const s = clone(streams);
      s[0].supported_sync_modes = [];
      expect(checkSyncModes(s)).not.toEqual([]);
    });
    test('additionalProperties false in a stream schema', () => {
      expect(checkAdditionalPropertiesTrue({ ...streams[0].json_schema, additionalProperties: false })).not.toEqual([]);
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
      unsupportedMode.streams[2].sync_mode = 'log_based';
      expect(checkConfiguredCatalog(unsupportedMode, streams, 'c')).not.toEqual([]);
      const key = clone(f.configuredCatalog);
      key.streams[2].primary_key = [['id']];
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
      partial.configuredCatalog.streams.pop();
      expect(checkFixtures(partial, streams)).toEqual([expect.stringContaining('leaves out stream jobs')]);
    });
    test('a test config that breaks high strictness', () => {
      const cfg = loadTestConfig();
      const exists = () => true;
      expect(checkTestConfig(cfg, exists)).toEqual([]);
      const noIncremental = clone(cfg);
      delete noIncremental.acceptance_tests.incremental;
      expect(checkTestConfig(noIncremental, exists)).not.toEqual([]);
      const customCatalog = clone(cfg);
      customCatalog.acceptance_tests.basic_read!.tests![0].configured_catalog_path = 'integration_tests/configured_catalog.json';
      expect(checkTestConfig(customCatalog, exists)).not.toEqual([]);
      const noRecords = clone(cfg);
      delete noRecords.acceptance_tests.basic_read!.tests![0].expect_records;
      expect(checkTestConfig(noRecords, exists)).not.toEqual([]);
      const noFailed = clone(cfg);
      noFailed.acceptance_tests.connection!.tests = noFailed.acceptance_tests.connection!.tests!.slice(0, 1);
      expect(checkTestConfig(noFailed, exists)).not.toEqual([]);
      expect(checkTestConfig(cfg, (p) => !p.endsWith('abnormal_state.json'))).toEqual([expect.stringContaining('abnormal_state.json')]);
    });
  });

  describe('basic read', () => {
    const withRecord = (stream: string, f: (d: Json) => void) => {
      const m = clone(read);
      const r = m.find((x) => x.type === 'RECORD' && x.record.stream === stream)!;
      f(r.record.data);
      return m;
    };
    test('the real read passes every basic-read rule', () => {
      expect(checkRecordsPresent(read, catalog)).toEqual([]);
      expect(checkRecordsMatchSchema(read, catalog)).toEqual([]);
      expect(checkPrimaryKeyValues(read, catalog)).toEqual([]);
      expect(checkStateMessages(read, catalog)).toEqual([]);
      expect(checkStreamStatuses(read, catalog)).toEqual([]);
      expect(checkExpectedRecords(read, readJsonl(join(ROOT, 'integration_tests/expected_records.jsonl')), { extra_records: false })).toEqual([]);
    });
    test('no records; a stream without records; records of an unconfigured stream', () => {
      expect(checkRecordsPresent(read.filter((m) => m.type !== 'RECORD'), catalog)).not.toEqual([]);
      expect(checkRecordsPresent(read.filter((m) => !(m.type === 'RECORD' && m.record.stream === 'jobs')), catalog)).toEqual([expect.stringContaining('jobs')]);
      expect(checkRecordsPresent(read.filter((m) => !(m.type === 'RECORD' && m.record.stream === 'jobs')), catalog, ['jobs'])).toEqual([]);
      expect(checkRecordsPresent([...read, record('builds', { id: 1 })], catalog)).not.toEqual([]);
    });
    test('an extra column', () => {
      const m = withRecord('pipelines', (d) => (d.surprise = 1));
      expect(checkRecordsMatchSchema(m, catalog)).toEqual([expect.stringContaining('surprise')]);
      expect(checkRecordsMatchSchema(m, catalog, false)).toEqual([]);
    });
    test('a schema violation: a wrong type, a bad date-time', () => {
      expect(checkRecordsMatchSchema(withRecord('workflows', (d) => (d.pipeline_number = 'seven')), catalog)).not.toEqual([]);
      expect(checkRecordsMatchSchema(withRecord('jobs', (d) => (d.started_at = 'yesterday')), catalog)).not.toEqual([]);
    });
    test('a record with no field in common with the schema', () => {
      expect(checkRecordsMatchSchema([record('jobs', { foo: 1 })], catalog, false)).toEqual([expect.stringContaining('no field')]);
    });
    test('a null key, an all-null key, an object key', () => {
      expect(checkPrimaryKeyValues(withRecord('jobs', (d) => (d._workflow_id = null)), catalog)).toEqual([expect.stringContaining('_workflow_id')]);
      const allNull = clone(read);
      for (const m of allNull) if (m.type === 'RECORD' && m.record.stream === 'pipelines') delete m.record.data.id;
      expect(checkPrimaryKeyValues(allNull, catalog)).toEqual([expect.stringContaining('no record has a value')]);
      expect(checkPrimaryKeyValues(withRecord('workflows', (d) => (d.id = { uuid: d.id })), catalog)).toEqual([expect.stringContaining('scalars')]);
    });
    test('expected records missing, changed, extra, or out of order', () => {
      const expected = readJsonl(join(ROOT, 'integration_tests/expected_records.jsonl'));
      const fewer = read.filter((m) => !(m.type === 'RECORD' && m.record.data.id === expected[0].data.id));
      expect(checkExpectedRecords(fewer, expected)).not.toEqual([]);
      expect(checkExpectedRecords(withRecord('pipelines', (d) => (d.state = 'errored')), expected)).not.toEqual([]);
      const more = [...read, record('jobs', { ...expected.at(-1).data, _workflow_id: 'another' })];
      expect(checkExpectedRecords(more, expected)).toEqual([]); // extra_records defaults to true
      expect(checkExpectedRecords(more, expected, { extra_records: false })).not.toEqual([]);
      const reversed = [...read].reverse();
      expect(checkExpectedRecords(reversed, expected)).toEqual([]);
      expect(checkExpectedRecords(reversed, expected, { exact_order: true })).not.toEqual([]);
      expect(checkExpectedRecords(withRecord('pipelines', (d) => (d.state = 'errored')), expected, { ignored_fields: { pipelines: [{ name: 'state' }] } })).toEqual([]);
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
      expect(checkStreamStatuses(noComplete, catalog)).toHaveLength(3);
      const incomplete = clone(read);
      incomplete.filter((m) => m.type === 'TRACE' && m.trace.stream_status?.status === 'COMPLETE')[0].trace.stream_status.status = 'INCOMPLETE';
      expect(checkStreamStatuses(incomplete, catalog)).toHaveLength(1);
    });
    test('a bogus catalog read with no TRACE ERROR, or exit 0', async () => {
      const real = (await ctx.run('read', { config: mock.secretsConfig, catalog: BOGUS_CATALOG })).out;
      expect(checkTraceOnFailure(real)).toEqual([]);
      expect(checkTraceOnFailure({ ...real, messages: real.messages.filter((m) => m.type !== 'TRACE') })).not.toEqual([]);
      expect(checkTraceOnFailure({ ...real, code: 0 })).not.toEqual([]);
    });
  });

  describe('full refresh', () => {
    const later = (messages: Message[], ms: number) => messages.map((m) => (m.type === 'RECORD' ? { ...m, record: { ...m.record, emitted_at: m.record.emitted_at + ms } } : m));
    test('a later second read with the same records passes', () => {
      expect(checkSequentialFullRefresh(read, later(read, 5000), catalog)).toEqual([]);
    });
    test('a second read with an earlier or equal emitted_at', () => {
      expect(checkSequentialFullRefresh(later(read, 5000), read, catalog)).toEqual([expect.stringContaining('emitted_at')]);
      expect(checkSequentialFullRefresh(read, read, catalog)).toEqual([expect.stringContaining('emitted_at')]);
    });
    test('a second read that lost a record of the first (by key)', () => {
      const second = later(read, 5000);
      const i = second.findIndex((m) => m.type === 'RECORD' && m.record.stream === 'jobs');
      second.splice(i, 1);
      expect(checkSequentialFullRefresh(read, second, catalog)).toEqual([expect.stringContaining('jobs')]);
    });
    test('a changed non-key field is fine (compared by key)', () => {
      const second = later(read, 5000).map((m) => (m.type === 'RECORD' && m.record.stream === 'pipelines' ? { ...m, record: { ...m.record, data: { ...m.record.data, state: 'x' } } } : m));
      expect(checkSequentialFullRefresh(read, second, catalog)).toEqual([]);
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
    test('an abnormal-state read that returns records, or no STATE', () => {
      expect(checkAbnormalStateRead([state('pipelines', {}, 0)])).toEqual([]);
      expect(checkAbnormalStateRead([record('pipelines', { id: 1 }), state('pipelines', {}, 1)])).not.toEqual([]);
      expect(checkAbnormalStateRead([])).not.toEqual([]);
    });
    test('an abnormal state that misses an incremental stream', () => {
      const f = loadFixtures();
      const inc = { streams: f.incrementalCatalog.streams };
      expect(checkFutureStateCoverage(inc, f.abnormalState)).toEqual([]);
      const withoutWorkflows = f.abnormalState.filter((m: { stream: { stream_descriptor: { name: string } } }) => m.stream.stream_descriptor.name !== 'workflows');
      expect(checkFutureStateCoverage(inc, withoutWorkflows)).toEqual([expect.stringContaining('workflows')]);
      expect(checkFutureStateCoverage(inc, withoutWorkflows, [{ name: 'workflows' }])).toEqual([expect.stringContaining('bypass_reason')]);
      expect(checkFutureStateCoverage(inc, withoutWorkflows, [{ name: 'workflows', bypass_reason: 'no cursor' }])).toEqual([]);
    });
  });
});

// =================================================================================================
/** The local CLI with its output tampered with: shows the plan's wiring catches each broken rule. */
class Tampered implements Connector {
  readonly kind = 'local' as const;
  readonly name = 'tampered local CLI';
  private readonly inner = new LocalConnector();
  constructor(
    private readonly change: (command: Command, messages: Message[], inputs: Inputs) => Message[],
    private readonly image?: ImageInfo,
    private readonly dropState = false,
  ) {}
  async run(command: Command, inputs: Inputs = {}, opts: { timeoutMs?: number } = {}): Promise<RunOutput> {
    const r = await this.inner.run(command, this.dropState ? { ...inputs, state: undefined } : inputs, opts);
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
    const results = await Promise.all(checks.map(async (p) => ({ name: p.name, ...(await p.run(c)) })));
    return results;
  };
  const expectAllFail = async (connector: Connector, match: RegExp) => {
    for (const r of await failing(connector, match)) expect({ check: r.name, failed: r.problems.length > 0 }).toEqual({ check: r.name, failed: true });
  };
  const onRecords = (f: (r: Json) => void) => (command: Command, messages: Message[]) =>
    command === 'read' ? messages.map((m) => (m.type === 'RECORD' ? (f(m.record), m) : m)) : messages;

  test('an unmarked token in the printed spec fails the secrets and expected-spec checks', async () => {
    const c = new Tampered((command, messages) => {
      if (command === 'spec') delete messages[0].spec.connectionSpecification.properties.token.airbyte_secret;
      return messages;
    });
    await expectAllFail(c, /test_secret_is_properly_marked|test_match_expected/);
  });

  test('image labels and entrypoint that break the contract', async () => {
    const c = new Tampered((_, m) => m, { labels: { 'io.airbyte.name': 'other', 'io.airbyte.version': '0.0.0' }, env: {}, entrypoint: ['node', 'main.js'], user: 'root' });
    await expectAllFail(c, /test_image_labels|test_image_environment_variables/);
  });

  test('check answering SUCCEEDED to the invalid config', async () => {
    const c = new Tampered((command, messages) => (command === 'check' ? [{ type: 'CONNECTION_STATUS', connectionStatus: { status: 'SUCCEEDED' } }] : messages));
    const results = await failing(c, /test_check/);
    expect(results.map((r) => r.problems.length > 0)).toEqual([false, true]);
  });

  test('a discovered cursor that is not in the schema', async () => {
    const c = new Tampered((command, messages) => {
      if (command === 'discover') messages[0].catalog.streams[0].default_cursor_field = ['nope'];
      return messages;
    });
    await expectAllFail(c, /cursor fields and primary keys/);
  });

  test('an extra column, a null key and a changed value in every record', async () => {
    const c = new Tampered(onRecords((r) => {
      r.data.extra_column = 1;
      if (r.stream === 'jobs') r.data._workflow_id = null;
    }));
    await expectAllFail(c, /no extra columns|primary-key values|expect_records/);
  });

  test('no sourceStats, LEGACY states, no stream statuses', async () => {
    const c = new Tampered((command, messages) =>
      messages
        .filter((m) => !(m.type === 'TRACE' && m.trace.type === 'STREAM_STATUS'))
        .map((m) => (m.type === 'STATE' ? { type: 'STATE', state: { data: m.state.stream.stream_state } } : m)),
    );
    await expectAllFail(c, /validate_state_messages|validate_stream_statuses/);
  });

  test('no TRACE on a bogus catalog', async () => {
    const c = new Tampered((_, messages) => messages.filter((m) => m.type !== 'TRACE'));
    await expectAllFail(c, /test_airbyte_trace_message_on_failure/);
  });

  test('emitted_at frozen in the past fails the sequential full refresh', async () => {
    const c = new Tampered(onRecords((r) => (r.emitted_at = 1000)));
    await expectAllFail(c, /test_sequential_reads/);
  });

  test('a connector that ignores its state fails the incremental checks', async () => {
    const c = new Tampered((_, m) => m, undefined, true);
    await expectAllFail(c, /test_two_sequential_reads|test_read_sequential_slices|test_state_with_abnormally_large_values|sample_state/);
  });
});

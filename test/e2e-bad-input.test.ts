/**
 * Reliability, part 3 (issue #6): bad input. Every case gets one clear message that names the
 * field or file and the fix; read and discover end with one TRACE ERROR config_error and a
 * non-zero exit, check with CONNECTION_STATUS FAILED and exit 0; never a stack trace.
 *
 * The many config, catalog, state and usage cases run the face's command logic in this process
 * (test/in-process.ts); one spawned run of each command proves the same ending through the real
 * CLI (exit code, stdout holding only messages, nothing on stderr). What needs the network (the
 * mock, a misbehaving API) is spawned.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { AIRBYTE_CLI, TEST_TOKEN, configuredCatalog, recordsOf, runCli, tempFiles, type Message } from './helpers.js';
import { airbyteInProcess } from './in-process.js';
import { invalidMessages } from './validate.js';

const DAY = 86_400_000;
const CATALOG = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental', jobs: 'full_refresh' });
/** A base_url nothing listens on: a bad-input case must fail before any request. */
const NOWHERE = 'http://127.0.0.1:9/api/v2';
const GOOD = { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: '2025-01-01', base_url: NOWHERE };

/** A stack frame such as "    at parseConfig (file:///.../config.js:12:5)". */
const STACK_FRAME = /\n\s+at .+(:\d+:\d+\)?|\(native\)|<anonymous>)/;

/** A spawned run (runCli) or one in this process (airbyteInProcess). */
type Result = { code: number | null; stdout: string; stderr?: string; messages: Message[] };

const traceErrors = (r: Result) => r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error);
const logs = (r: Result, level?: string) => r.messages.filter((m) => m.type === 'LOG' && (!level || m.log.level === level)).map((m) => m.log.message as string);

function expectNoStack(r: Result) {
  expect(r.stdout).not.toMatch(STACK_FRAME);
  expect(r.stderr ?? '').not.toMatch(STACK_FRAME);
  for (const e of traceErrors(r)) expect(e.stack_trace).toBeUndefined();
}

/** read and discover: one TRACE ERROR config_error whose message matches, non-zero exit, nothing else of substance. */
function expectConfigError(r: Result, message: RegExp) {
  expect(invalidMessages(r.messages)).toEqual([]);
  const errors = traceErrors(r);
  expect(errors.map((e) => ({ failure_type: e.failure_type, message: e.message }))).toEqual([{ failure_type: 'config_error', message: expect.stringMatching(message) }]);
  expect(r.code).not.toBe(0);
  expect(r.code).not.toBeNull();
  expect(r.messages.filter((m) => m.type === 'RECORD' || m.type === 'STATE' || m.type === 'CATALOG')).toEqual([]);
  expectNoStack(r);
}

/** check: CONNECTION_STATUS FAILED with the message, exit 0, no TRACE ERROR. */
function expectCheckFailed(r: Result, message: RegExp) {
  expect(invalidMessages(r.messages)).toEqual([]);
  expect(r.code).toBe(0);
  const statuses = r.messages.filter((m) => m.type === 'CONNECTION_STATUS');
  expect(statuses.map((m) => m.connectionStatus)).toEqual([{ status: 'FAILED', message: expect.stringMatching(message) }]);
  expect(traceErrors(r)).toEqual([]);
  expectNoStack(r);
}

const read = (files: Record<string, string>, extra: string[] = []) =>
  runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog, ...extra], { timeoutMs: 30_000 });
/** The same commands, run in this process. */
const readHere = (files: Record<string, string>, extra: string[] = []) => airbyteInProcess(['read', '--config', files.config, '--catalog', files.catalog, ...extra]);
const discoverHere = (config: string) => airbyteInProcess(['discover', '--config', config]);
const checkHere = (config: string) => airbyteInProcess(['check', '--config', config]);

// ---------------------------------------------------------------------------------------------

describe('a bad config: read, discover and check', () => {
  // [case, config file content (a string is written as is), what the message must say: the field or file, and the fix]
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON (with the token inside)', `{"token": "${TEST_TOKEN}", "project_slugs": ["gh/acme/api"`, /config file .*config\.json is not valid JSON.*Fix its syntax/],
    ['a JSON array, not an object', '["gh/acme/api"]', /Config must be a JSON object such as \{"token"/],
    ['a JSON string', `"${TEST_TOKEN}"`, /Config must be a JSON object/],
    ['no token', { project_slugs: ['gh/acme/api'] }, /missing "token".*set "token" to a CircleCI personal API token/],
    ['a blank token', { ...GOOD, token: '   ' }, /"token" is empty.*set "token"/],
    ['a token that is not a string', { ...GOOD, token: 12345678 }, /"token".*set "token"/],
    ['no project_slugs', { token: TEST_TOKEN }, /no projects to sync: set "project_slugs" to a list such as.*"organizations"/],
    ['empty project_slugs', { ...GOOD, project_slugs: [] }, /"project_slugs".*set "project_slugs" to a list such as/],
    ['a blank project_slugs string', { ...GOOD, project_slugs: '  ' }, /"project_slugs".*set "project_slugs" to a list such as/],
    ['a slug without its vcs', { ...GOOD, project_slugs: ['acme/api'] }, /"acme\/api" is not of the form vcs\/org\/repo.*copy it from the project settings/],
    ['a slug that is a URL', { ...GOOD, project_slugs: ['https://app.circleci.com/pipelines/github/acme/api'] }, /is not of the form vcs\/org\/repo/],
    ['a slug that is not a string', { ...GOOD, project_slugs: [42] }, /"project_slugs".*set "project_slugs"/],
    ['start_date not a date', { ...GOOD, start_date: 'yesterday' }, /"start_date".*set "start_date" to a UTC date such as/],
    ['start_date a day that does not exist', { ...GOOD, start_date: '2025-02-30' }, /"start_date".*not a valid date.*set "start_date"/],
    ['start_date in the future', { ...GOOD, start_date: '2999-01-01' }, /"start_date".*lies in the future.*set "start_date"/],
    ['start_date not a string', { ...GOOD, start_date: 20250101 }, /"start_date".*set "start_date"/],
    ['base_url with ftp', { ...GOOD, base_url: 'ftp://circleci.example.com/api/v2' }, /"base_url" must use http or https.*set "base_url" to an http\(s\) URL/],
    ['base_url not a URL', { ...GOOD, base_url: 'circleci.com/api/v2' }, /"base_url" is not a URL.*set "base_url"/],
    ['base_url with plain http to a remote host', { ...GOOD, base_url: 'http://circleci.example.invalid/api/v2' }, /"base_url" uses plain http to circleci\.example\.invalid.*use https.*"allow_insecure_http" to true/],
    ['allow_insecure_http not a boolean', { ...GOOD, allow_insecure_http: 'yes' }, /"allow_insecure_http".*set "allow_insecure_http" to true or false/],
    ['lookback_days negative', { ...GOOD, lookback_days: -1 }, /"lookback_days".*set "lookback_days" to a whole number/],
    ['max_concurrency zero', { ...GOOD, max_concurrency: 0 }, /"max_concurrency".*set "max_concurrency" to a whole number/],
  ];

  test.each(cases)('%s', async (_name, config, message) => {
    const files = tempFiles({ config, catalog: CATALOG });
    expectConfigError(await readHere(files), message);
    expectConfigError(await discoverHere(files.config), message);
    expectCheckFailed(await checkHere(files.config), message);
  });

  test('spawned, each command ends as the cases above say: read and discover exit 1 with the TRACE, check exits 0; stderr stays empty', async () => {
    const [name, config, message] = cases[0];
    expect(name).toMatch(/with the token inside/);
    const files = tempFiles({ config, catalog: CATALOG });
    const [r, d, c] = await Promise.all([
      read(files),
      runCli(AIRBYTE_CLI, ['discover', '--config', files.config]),
      runCli(AIRBYTE_CLI, ['check', '--config', files.config]),
    ]);
    expectConfigError(r, message);
    expectConfigError(d, message);
    expectCheckFailed(c, message);
    expect([r.code, d.code, c.code]).toEqual([1, 1, 0]);
    expect([r.stderr, d.stderr, c.stderr]).toEqual(['', '', '']);
  });

  test('the messages are written for people: no raw schema patterns, no doubled punctuation', async () => {
    const files = tempFiles({ a: { ...GOOD, start_date: 'yesterday' }, b: { ...GOOD, base_url: 'ftp://x.example/api/v2' }, catalog: CATALOG });
    const [a, b] = [await discoverHere(files.a), await discoverHere(files.b)];
    for (const r of [a, b]) {
      const [e] = traceErrors(r);
      // A user should not have to read a regular expression to learn what a date looks like.
      expect(e.message).not.toMatch(/must match pattern|\^\[0-9\]/);
      expect(e.message).not.toMatch(/::|\.\./);
    }
    expect(traceErrors(a)[0].message).toMatch(/"yesterday"|YYYY-MM-DD/);
  });

  test('a config file that does not exist is named, with the fix', async () => {
    const files = tempFiles({ catalog: CATALOG });
    const missing = `${files.catalog}.nope`;
    const [r, d, c] = [await readHere({ config: missing, catalog: files.catalog }), await discoverHere(missing), await checkHere(missing)];
    const message = /Cannot read the config file .*\.nope: ENOENT\. Check the path/;
    expectConfigError(r, message);
    expectConfigError(d, message);
    expectCheckFailed(c, message);
  });

  test('a missing or unknown command is a config_error with the usage, not a stack', async () => {
    for (const args of [[], ['sync']]) expectConfigError(await airbyteInProcess(args), /Usage: source-circleci/);
    // Spawned once: the exit code and a clean stderr.
    const r = await runCli(AIRBYTE_CLI, ['sync']);
    expectConfigError(r, /Usage: source-circleci/);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: '' });
  });

  test('a missing or unknown option of a command is one config_error with the usage', async () => {
    for (const args of [['read'], ['read', '--config', 'x.json'], ['discover'], ['read', '--config', 'x.json', '--catalog', 'y.json', '--verbose'], ['--help-me']]) {
      expectConfigError(await airbyteInProcess(args), /Usage: source-circleci/);
    }
  });
});

describe('unknown config keys and plain http: a warning, and the command goes on', () => {
  let world: World;
  let mock: MockServer;
  beforeAll(async () => {
    world = new World({ seed: 41, historyDays: 3, pipelinesPerDay: 2, projects: ['gh/acme/api'] });
    mock = await startMockServer({ world, token: TEST_TOKEN });
  });
  afterAll(() => mock.close());

  test('read: a WARN naming every unknown key, and the sync succeeds', async () => {
    const config = { ...GOOD, base_url: mock.baseUrl, start_date: new Date(world.now().getTime() - 3 * DAY).toISOString(), project_slug: 'gh/acme/api', statr_date: '2025-01-01' };
    const r = await read(tempFiles({ config, catalog: CATALOG }));
    expect(r.code).toBe(0);
    expect(logs(r, 'WARN').join('\n')).toMatch(/unknown keys.*project_slug.*statr_date|unknown keys.*statr_date.*project_slug/);
    expect(recordsOf(r.messages, 'pipelines').length).toBeGreaterThan(0);
  });

  test('discover: the same WARN before the catalog', async () => {
    const config = { ...GOOD, statr_date: '2025-01-01' };
    const r = await runCli(AIRBYTE_CLI, ['discover', '--config', tempFiles({ config }).config]);
    expect(r.code).toBe(0);
    expect(r.messages.filter((m) => m.type === 'CATALOG')).toHaveLength(1);
    expect(logs(r, 'WARN').join('\n')).toMatch(/unknown keys.*statr_date/);
  });

  test('discover: base_url with plain http to a host that is not loopback, allowed by allow_insecure_http, is a WARN (no request is made)', async () => {
    const config = { ...GOOD, base_url: 'http://circleci.example.invalid/api/v2', allow_insecure_http: true };
    const r = await runCli(AIRBYTE_CLI, ['discover', '--config', tempFiles({ config }).config]);
    expect(r.code).toBe(0);
    expect(logs(r, 'WARN').join('\n')).toMatch(/plain http to circleci\.example\.invalid.*https/);
  });
});

describe('a bad catalog or state: read', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a catalog that is not JSON', { catalog: '{"streams": [' }, /catalog file .*catalog\.json is not valid JSON.*Fix its syntax/],
    ['a catalog without streams', { catalog: { stream: 'pipelines' } }, /catalog must be a JSON object with a "streams" array.*Run `discover`/],
    ['a catalog naming an unknown stream', { catalog: configuredCatalog({ pipelines: 'incremental', builds: 'full_refresh' } as never) }, /unknown stream "builds".*pipelines, workflows, jobs.*Run `discover`/],
    ['a catalog asking jobs for another cursor', { catalog: { streams: [{ stream: { name: 'jobs' }, sync_mode: 'incremental', cursor_field: ['stopped_at'] }] } }, /"jobs" has a source-defined cursor "_workflow_created_at".*Set cursor_field to \["_workflow_created_at"\]/],
    ['a catalog with an unknown sync mode', { catalog: { streams: [{ stream: { name: 'pipelines' }, sync_mode: 'append' }] } }, /"pipelines" does not support sync_mode "append"/],
    ['a catalog selecting nothing', { catalog: { streams: [] } }, /selects no streams.*Run `discover`/],
    ['a catalog with the wrong cursor', { catalog: { streams: [{ stream: { name: 'pipelines' }, sync_mode: 'incremental', cursor_field: ['created_at'] }] } }, /cursor "updated_at".*Set cursor_field to \["updated_at"\]/],
    ['a state that is not JSON', { state: '[{"type": "STREAM", ' }, /state file .*state\.json is not valid JSON.*Fix its syntax/],
    ['a state that is a string', { state: '"2025-01-01"' }, /state file must hold a JSON array of STREAM state messages.*Fix or remove the state file/],
    ['a GLOBAL state', { state: [{ type: 'GLOBAL', global: { shared_state: {} } }] }, /type GLOBAL; source-circleci keeps per-stream \(STREAM\) state.*Fix or remove/],
    ['a state message without a stream', { state: [{ type: 'STREAM' }] }, /not a STREAM state.*Fix or remove/],
    ['a state whose cursor is not a date', { state: [{ type: 'STREAM', stream: { stream_descriptor: { name: 'pipelines' }, stream_state: { 'gh/acme/api': { updated_at: 'soon' } } } }] }, /"pipelines", project "gh\/acme\/api".*not a date-time.*Fix or remove/],
    ['a state with a broken resume marker', { state: [{ type: 'STREAM', stream: { stream_descriptor: { name: 'jobs' }, stream_state: { 'gh/acme/api': { resume: { from: 9, to: 3 } } } } }] }, /resume marker.*"jobs".*Fix or remove/],
    ['a legacy state with a stream that is not an object', { state: { pipelines: 5 } }, /"pipelines".*must be an object keyed by project slug/],
  ];

  test.each(cases)('%s', async (_name, files, message) => {
    const paths = tempFiles({ config: GOOD, catalog: CATALOG, ...files });
    const r = await readHere(paths, paths.state ? ['--state', paths.state] : []);
    expectConfigError(r, message);
  });

  test('a catalog or state file that does not exist is named', async () => {
    const paths = tempFiles({ config: GOOD, catalog: CATALOG });
    expectConfigError(await readHere({ config: paths.config, catalog: `${paths.catalog}.nope` }), /Cannot read the catalog file .*\.nope: ENOENT\. Check the path/);
    expectConfigError(await readHere(paths, ['--state', `${paths.catalog}.gone`]), /Cannot read the state file .*\.gone: ENOENT\. Check the path/);
  });
});

describe('state from elsewhere: migrated or explained, never silently dropped', () => {
  let world: World;
  let mock: MockServer;
  let start: Date;
  beforeAll(async () => {
    world = new World({ seed: 42, historyDays: 10, pipelinesPerDay: 4, projects: ['gh/acme/api'] });
    start = new Date(world.now().getTime() - 10 * DAY);
    mock = await startMockServer({ world, token: TEST_TOKEN });
  });
  afterAll(() => mock.close());
  const config = () => ({ ...GOOD, base_url: mock.baseUrl, start_date: start.toISOString() });

  test("tap-circle-ci's state file is migrated: its pipelines bookmark holds, and the log says so", async () => {
    const pipelines = world.groundTruth(start).pipelines;
    const bookmark = String(pipelines[Math.floor(pipelines.length / 2)].updated_at);
    const state = {
      currently_syncing: null,
      bookmarks: { pipelines: { 'gh/acme/api': bookmark }, workflows: { [String(pipelines[0].id)]: bookmark, currently_syncing: null }, jobs: {} },
    };
    const paths = tempFiles({ config: config(), catalog: configuredCatalog({ pipelines: 'incremental' }), state });
    const r = await read(paths, ['--state', paths.state]);
    expect(r.code).toBe(0);
    expect(logs(r).join('\n')).toMatch(/tap-circle-ci/);
    const emitted = recordsOf(r.messages, 'pipelines');
    expect(emitted.length).toBeGreaterThan(0);
    expect(emitted.length).toBeLessThan(pipelines.length);
    expect(emitted.filter((p: Message) => Date.parse(p.updated_at) < Date.parse(bookmark))).toEqual([]);
  });

  test('a state of another shape that names no stream of this source is explained, not silently ignored', async () => {
    // E.g. a Singer STATE pasted into Airbyte, or some other connector's state.
    for (const state of [{ value: { bookmarks: { pipelines: { 'gh/acme/api': '2026-01-01T00:00:00Z' } } } }, { foo: 'bar' }]) {
      const paths = tempFiles({ config: config(), catalog: configuredCatalog({ pipelines: 'incremental' }), state });
      const r = await read(paths, ['--state', paths.state]);
      const errors = traceErrors(r);
      const explained = errors.some((e) => e.failure_type === 'config_error' && /state/i.test(e.message)) ||
        logs(r).some((l) => /state/i.test(l) && /ignor|not .*(recogni|understood|used)|unknown/i.test(l));
      expect({ state, explained }).toEqual({ state, explained: true });
      expectNoStack(r);
    }
  });
});

describe('an API that misbehaves: read', () => {
  /** A loopback "CircleCI" whose pipeline list answers `page(n)` for the nth request. */
  async function api(page: (n: number, res: http.ServerResponse) => void) {
    let n = 0;
    const server = http.createServer((req, res) => {
      if (/\/project\/[^?]+\/pipeline/.test(req.url ?? '')) return page(++n, res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url?.endsWith('/me') ? '{"id":"u","login":"u","name":"u"}' : '{"items": [], "next_page_token": null}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    return {
      baseUrl: `http://127.0.0.1:${port}/api/v2`,
      requests: () => n,
      close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
    };
  }
  const json = (res: http.ServerResponse, body: string, type = 'application/json') => {
    res.writeHead(200, { 'content-type': type });
    res.end(body);
  };
  const readFrom = async (baseUrl: string) => {
    const paths = tempFiles({ config: { ...GOOD, base_url: baseUrl }, catalog: configuredCatalog({ pipelines: 'incremental' }) });
    return read(paths);
  };

  test('a page token that repeats: stops paging at once, names the endpoint, exits non-zero', async () => {
    const s = await api((_n, res) => json(res, '{"items": [], "next_page_token": "same-token"}'));
    try {
      const r = await readFrom(s.baseUrl);
      expect(r.code).not.toBe(0);
      const errors = traceErrors(r);
      expect(errors).toHaveLength(1);
      expect(['config_error', 'transient_error']).toContain(errors[0].failure_type);
      expect(errors[0].message).toMatch(/GET \/project\/gh\/acme\/api\/pipeline returned a page token it had already returned/);
      expect(s.requests()).toBe(2);
      expectNoStack(r);
    } finally {
      await s.close();
    }
  });

  const WRONG_SHAPES: Array<[string, string]> = [
    ['a JSON object without items', '{"data": [], "next": null}'],
    ['a bare JSON array', '[]'],
    ['items that is not a list', '{"items": {"id": "x"}, "next_page_token": null}'],
    ['a page token that is not a string', '{"items": [], "next_page_token": 42}'],
  ];

  test.each(WRONG_SHAPES)('a response of the wrong shape (%s): one config_error naming the endpoint and base_url, no retry storm', async (_name, body) => {
    const s = await api((_n, res) => json(res, body));
    try {
      const r = await readFrom(s.baseUrl);
      expect(r.code).not.toBe(0);
      const errors = traceErrors(r);
      // One error, and a config_error: the answer will not change without a change of base_url.
      expect(errors.map((e) => e.failure_type)).toEqual(['config_error']);
      expect(errors[0].message).toMatch(/GET \/project\/gh\/acme\/api\/pipeline answered with a body that is not a CircleCI page/);
      expect(errors[0].message).toMatch(/Check that base_url points at the CircleCI API v2 root/);
      // The answer will not change by asking again ten times.
      expect(s.requests()).toBe(1);
      expectNoStack(r);
    } finally {
      await s.close();
    }
  });

  test('an HTML page with status 200 (base_url points at the web app): one config_error naming base_url, no retry storm', async () => {
    const s = await api((_n, res) => json(res, '<!doctype html><html><head><title>CircleCI</title></head><body>Sign in</body></html>', 'text/html; charset=utf-8'));
    try {
      const r = await readFrom(s.baseUrl);
      expect(r.code).not.toBe(0);
      const errors = traceErrors(r);
      expect(errors.map((e) => e.failure_type)).toEqual(['config_error']);
      expect(errors[0].message).toMatch(/\/project\/gh\/acme\/api\/pipeline/);
      expect(errors[0].message).toMatch(/base_url/);
      expect(s.requests()).toBeLessThanOrEqual(2);
      expectNoStack(r);
    } finally {
      await s.close();
    }
  });
});

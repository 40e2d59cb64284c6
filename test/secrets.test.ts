/**
 * Reliability, part 4 (issue #6): secrets. Runs every leak-prone path of both faces (broken
 * configs holding the token, the token where a slug or date belongs, 401s, servers that echo the
 * token, transient failures, a system_error with its stack trace, redirects to other hosts,
 * SIGTERM), collects every byte they print, and searches all of it for the token. Also: the
 * Circle-Token header never follows a redirect to another host, the token is never put in a URL,
 * thrown errors do not carry it, and plain http to a host other than loopback is refused unless
 * the user opts in (allow_insecure_http), then warned about.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseConfig, readJsonFile } from '../src/config.js';
import { CircleCIClient } from '../src/circleci/client.js';
import { DEFAULT_RETRY_POLICY } from '../src/circleci/retry.js';
import { closeAgents } from '../src/circleci/http.js';
import { asConnectorError } from '../src/errors.js';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { AIRBYTE_CLI, ROOT, TEST_TOKEN, configuredCatalog, parseLines, tempFiles, type Message } from './helpers.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');
const DAY = 86_400_000;

/** Every fragment of the token that would give it away: 12 characters or more of it, and its Basic-auth forms. */
const FRAGMENTS = [
  ...Array.from({ length: TEST_TOKEN.length - 11 }, (_, i) => TEST_TOKEN.slice(i, i + 12)),
  Buffer.from(`${TEST_TOKEN}:`).toString('base64'),
  Buffer.from(TEST_TOKEN).toString('base64'),
];
const leaks = (text: string) => FRAGMENTS.filter((f) => text.includes(f));

/** Everything this suite saw printed or thrown, by origin. */
const collected: Array<{ what: string; text: string }> = [];
const collect = (what: string, text: string) => collected.push({ what, text });

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  messages: Message[];
}

/** Spawns a CLI, collects its whole stdout and stderr (even when they leak), and checks them at once. */
function cli(
  path: string,
  args: string[],
  opts: { env?: Record<string, string>; onLine?: (line: string, signal: (s: NodeJS.Signals) => void) => void; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path, ...args], {
      env: { ...process.env, SOURCE_CIRCLECI_BACKOFF_SCALE: '0.01', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (!opts.onLine) return;
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l, (s) => child.kill(s));
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const what = `${path === SINGER_CLI ? 'tap-circleci' : 'source-circleci'} ${args.join(' ')}`;
      collect(`${what} (stdout)`, stdout);
      collect(`${what} (stderr)`, stderr);
      const leaked = leaks(stdout + stderr);
      if (leaked.length) {
        reject(new Error(`the token leaked (${leaked.join(', ')}) into the output of: ${what}`));
        return;
      }
      let messages: Message[] = [];
      try {
        messages = path === SINGER_CLI && args.includes('--help') ? [] : parseLines(stdout);
      } catch (e) {
        reject(e);
        return;
      }
      resolve({ code, signal, stdout, stderr, messages });
    });
  });
}

const airbyte = (args: string[], opts?: Parameters<typeof cli>[2]) => cli(AIRBYTE_CLI, args, opts);
const singer = (args: string[], opts?: Parameters<typeof cli>[2]) => cli(SINGER_CLI, args, opts);
const traceErrors = (r: Run) => r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error);

/** A loopback server whose every answer the test scripts; it records every request it gets. */
async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void, host = '127.0.0.1') {
  const seen: Array<{ url: string; headers: http.IncomingHttpHeaders }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host}:${port}`,
    baseUrl: `http://${host}:${port}/api/v2`,
    seen,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

let world: World;
let mock: MockServer;
let start: Date;
const CATALOG = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental', jobs: 'full_refresh' });

beforeAll(async () => {
  world = new World({ seed: 51, historyDays: 4, pipelinesPerDay: 3, projects: ['gh/acme/api'] });
  start = new Date(world.now().getTime() - 4 * DAY);
  mock = await startMockServer({ world, token: TEST_TOKEN, latencyMs: 2 });
});

afterAll(async () => {
  await mock.close();
  closeAgents();
});

const good = (extra: Record<string, unknown> = {}) => ({ token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: start.toISOString(), base_url: mock.baseUrl, ...extra });

/** Every command of both faces on one config file. */
async function everyCommand(config: unknown, opts: { env?: Record<string, string> } = {}) {
  const files = tempFiles({ config, catalog: CATALOG });
  return Promise.all([
    airbyte(['check', '--config', files.config], opts),
    airbyte(['discover', '--config', files.config], opts),
    airbyte(['read', '--config', files.config, '--catalog', files.catalog], opts),
    singer(['--config', files.config], opts),
  ]);
}

describe('leak-prone paths print no trace of the token', () => {
  test.each<[string, unknown]>([
    ['a config that is not JSON, token first', `{"token": "${TEST_TOKEN}", "project_slugs": ["gh/acme/api"], oops}`],
    ['a config that is not JSON, token at the error', `{"project_slugs": ["gh/acme/api"], "token": ${TEST_TOKEN}}`],
    ['a config that is a bare string (the token itself)', `"${TEST_TOKEN}"`],
    ['a config that is an array holding the token', `["${TEST_TOKEN}"]`],
    ['the token where the slug belongs', { token: TEST_TOKEN, project_slugs: [TEST_TOKEN] }],
    ['the token as a slug segment', { token: TEST_TOKEN, project_slugs: [`gh/${TEST_TOKEN}`] }],
    ['the token as a space-separated slug string', { token: TEST_TOKEN, project_slugs: `gh/acme/api ${TEST_TOKEN}` }],
    ['the token where start_date belongs', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: TEST_TOKEN }],
    ['the token where base_url belongs', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], base_url: TEST_TOKEN }],
    ['the token as the host of an ftp base_url', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], base_url: `ftp://${TEST_TOKEN}.example/api/v2` }],
    ['the token as an unknown key', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: '2025-01-01', base_url: 'http://127.0.0.1:9/api/v2', [TEST_TOKEN]: true }],
    ['the token in lookback_days', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], lookback_days: TEST_TOKEN }],
  ])('%s', async (_name, config) => {
    const runs = await everyCommand(config);
    // Each run failed cleanly (the checks above already searched its output).
    for (const r of runs) expect(r.code === 0 || r.code === 1 || r.code === 2).toBe(true);
  });

  test.each<[string, unknown]>([
    ['a token with a trailing newline, also pasted as a slug', { token: `${TEST_TOKEN}\n`, project_slugs: [TEST_TOKEN] }],
    ['a token with surrounding spaces, also pasted as start_date', { token: `  ${TEST_TOKEN} `, project_slugs: ['gh/acme/api'], start_date: TEST_TOKEN }],
  ])('%s', async (_name, config) => {
    await everyCommand(config);
  });

  test('the token through TAP_CIRCLECI_TOKEN with a trailing newline, and a slug that is the token', async () => {
    await singer(['--config', 'ENV'], { env: { TAP_CIRCLECI_TOKEN: `${TEST_TOKEN}\n`, TAP_CIRCLECI_PROJECT_SLUGS: TEST_TOKEN } });
  });

  test('the token through TAP_CIRCLECI_TOKEN, with a slug that is the token', async () => {
    const r = await singer(['--config', 'ENV'], { env: { TAP_CIRCLECI_TOKEN: TEST_TOKEN, TAP_CIRCLECI_PROJECT_SLUGS: TEST_TOKEN } });
    expect(r.code).not.toBe(0);
  });

  test('a rejected token (401 on /me, 404 on the project): check, read, and the tap', async () => {
    const strict = await startMockServer({ world, token: 'another-token-abcdef0123' });
    try {
      await everyCommand(good({ base_url: strict.baseUrl }));
      // The rejected token was only ever sent as a header, never in a URL.
      expect(strict.counters.log.filter((l) => leaks(l.path).length)).toEqual([]);
      expect(strict.counters.total).toBeGreaterThan(0);
    } finally {
      await strict.close();
    }
  });

  test('a server that echoes the token in its error bodies (403, 404, 500) and in headers', async () => {
    for (const status of [403, 404, 500]) {
      const s = await serve((req, res) =>
        json(res, status, { message: `Token ${String(req.headers['circle-token'])} is not allowed here (echo: ${JSON.stringify(req.headers)})` }, { 'x-echo-token': String(req.headers['circle-token']) }));
      try {
        const runs = await everyCommand(good({ base_url: s.baseUrl }));
        expect(runs.some((r) => traceErrors(r).length > 0)).toBe(true);
      } finally {
        await s.close();
      }
    }
  });

  test('the token embedded in base_url as user info is neither printed nor sent', async () => {
    const s = await serve((_req, res) => json(res, 200, { items: [], next_page_token: null }));
    try {
      const url = new URL(s.baseUrl);
      await everyCommand(good({ base_url: `http://user:${TEST_TOKEN}@${url.host}/api/v2` }));
      for (const req of s.seen) expect(leaks(`${req.url} ${JSON.stringify({ ...req.headers, 'circle-token': undefined })}`)).toEqual([]);
    } finally {
      await s.close();
    }
  });

  test('transient failures to the end (always 500): TRACE transient_error, retry WARNs', async () => {
    mock.setFaults({ failPath: /\/pipeline$/ });
    try {
      const files = tempFiles({ config: good(), catalog: CATALOG });
      const r = await airbyte(['read', '--config', files.config, '--catalog', files.catalog]);
      expect(traceErrors(r).map((e) => e.failure_type)).toEqual(['transient_error']);
      await singer(['--config', files.config]);
    } finally {
      mock.setFaults(undefined);
    }
  });

  // The only system_error we could provoke from outside: a free-form trigger_parameters nested 5000
  // deep makes JSON.stringify overflow the stack when the record is printed. If that is fixed
  // (the record skipped with a WARN, say), this test needs another way to reach a system_error.
  test('a system_error (a record too deeply nested to serialise) carries its stack trace, and the trace holds no token', async () => {
    let nested = '1';
    for (let i = 0; i < 5000; i++) nested = `{"a":${nested}}`;
    const created = new Date(Date.now() - DAY).toISOString();
    const pipeline = `{"id":"00000000-0000-4000-8000-000000000001","errors":[],"project_slug":"gh/acme/api","number":5,"state":"created","created_at":"${created}",` +
      `"trigger":{"type":"api","received_at":"${created}","actor":{"login":"a","avatar_url":null}},"trigger_parameters":${nested}}`;
    const s = await serve((req, res) =>
      json(res, 200, /\/project\/[^?]*\/pipeline/.test(req.url ?? '') ? `{"items":[${pipeline}],"next_page_token":null}` : '{"items":[],"next_page_token":null}'));
    try {
      const files = tempFiles({ config: good({ base_url: s.baseUrl, start_date: new Date(Date.now() - 2 * DAY).toISOString() }), catalog: configuredCatalog({ pipelines: 'full_refresh' }) });
      const r = await airbyte(['read', '--config', files.config, '--catalog', files.catalog]);
      const errors = traceErrors(r);
      expect(errors.map((e) => e.failure_type)).toEqual(['system_error']);
      expect(errors[0].stack_trace).toMatch(/\n\s+at /);
      await singer(['--config', files.config]);
    } finally {
      await s.close();
    }
  });

  test('SIGTERM in the middle of a read: the WARN, the last checkpoint and the exit hold no token', async () => {
    const files = tempFiles({ config: good(), catalog: CATALOG });
    let sent = false;
    const r = await airbyte(['read', '--config', files.config, '--catalog', files.catalog], {
      onLine: (line, signal) => {
        if (!sent && line.includes('"type":"RECORD"')) {
          sent = true;
          signal('SIGTERM');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code === 143 || r.signal === 'SIGTERM').toBe(true);
    expect(r.messages.some((m) => m.type === 'LOG' && /SIGTERM/.test(m.log.message))).toBe(true);
    let sentTap = false;
    await singer(['--config', files.config], {
      onLine: (line, signal) => {
        if (!sentTap && line.includes('"type":"RECORD"')) {
          sentTap = true;
          signal('SIGTERM');
        }
      },
    });
  });
});

describe('Circle-Token goes to the base_url host only', () => {
  test('a redirect to another host (another address, another port) is followed without the token; back on the base_url host it is sent again', async () => {
    const items = world.groundTruth(start).pipelines.slice(0, 2);
    const page = { items, next_page_token: null };
    for (const otherHost of ['127.0.0.2', '127.0.0.1']) {
      const other = await serve((_req, res) => json(res, 200, page), otherHost);
      const base = await serve((req, res) => {
        if (/\/pipeline(\?|$)/.test(req.url ?? '')) {
          res.writeHead(302, { location: `${other.origin}/elsewhere${req.url}` });
          return res.end();
        }
        json(res, 200, { items: [], next_page_token: null });
      });
      try {
        const files = tempFiles({ config: good({ base_url: base.baseUrl }), catalog: configuredCatalog({ pipelines: 'full_refresh', workflows: 'full_refresh' }) });
        const r = await airbyte(['read', '--config', files.config, '--catalog', files.catalog]);
        expect(r.code).toBe(0);
        expect(r.messages.filter((m) => m.type === 'RECORD' && m.record.stream === 'pipelines')).toHaveLength(2);
        expect(other.seen.length).toBeGreaterThan(0);
        for (const req of other.seen) {
          expect('circle-token' in req.headers).toBe(false);
          expect(req.headers.authorization).toBeUndefined();
          expect(leaks(`${req.url} ${JSON.stringify(req.headers)}`)).toEqual([]);
        }
        // The base_url host itself got the token on every request (workflow lists included).
        expect(base.seen.length).toBeGreaterThan(1);
        expect(base.seen.filter((req) => req.headers['circle-token'] !== TEST_TOKEN).map((req) => req.url)).toEqual([]);
      } finally {
        await Promise.all([other.close(), base.close()]);
      }
    }
  });

  test('the token is never part of any URL requested', async () => {
    mock.resetCounters();
    const files = tempFiles({ config: good(), catalog: CATALOG });
    const r = await airbyte(['read', '--config', files.config, '--catalog', files.catalog]);
    expect(r.code).toBe(0);
    expect(mock.counters.total).toBeGreaterThan(3);
    expect(mock.counters.log.filter((l) => leaks(l.path).length).map((l) => l.path)).toEqual([]);
    expect(mock.counters.log.filter((l) => l.headers['circle-token'] !== TEST_TOKEN).map((l) => l.path)).toEqual([]);
  });
});

describe('plain http to a host that is not loopback is refused unless allow_insecure_http is on', () => {
  const NOW = new Date('2026-11-27T12:00:00Z');
  const base = { token: 'abcdef123456', project_slugs: ['gh/acme/api'] };
  const refusal = (baseUrl: string): string | undefined => {
    try {
      parseConfig({ ...base, base_url: baseUrl }, NOW);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  };
  const warningsFor = (baseUrl: string) => parseConfig({ ...base, base_url: baseUrl, allow_insecure_http: true }, NOW).warnings.filter((w) => /plain http/.test(w));

  test.each(['http://circleci.example.com/api/v2', 'http://10.0.0.5:8080/api/v2', 'http://localhost.example.com/api/v2', 'http://[2001:db8::1]/api/v2'])('%s: a config error naming the host and both fixes; with the key, a warning', (url) => {
    expect(refusal(url)).toContain(new URL(url).hostname);
    expect(refusal(url)).toMatch(/use https.*"allow_insecure_http" to true/);
    const w = warningsFor(url);
    expect(w).toHaveLength(1);
    expect(w[0]).toContain(new URL(url).hostname);
  });

  test.each(['https://circleci.com/api/v2', 'http://127.0.0.1:8080/api/v2', 'http://localhost:8080/api/v2', 'http://[::1]:8080/api/v2', 'http://127.8.9.10/api/v2'])('%s: accepted, no warning', (url) => {
    expect(refusal(url)).toBeUndefined();
    expect(warningsFor(url)).toEqual([]);
  });

  test.each(['http://127.0.0.1.attacker.example/api/v2', 'http://127.evil.example/api/v2'])('%s (a DNS name, not an address): refused', (url) => {
    expect(refusal(url)).toMatch(/plain http/);
  });

  test('allow_insecure_http must be a boolean', () => {
    expect(() => parseConfig({ ...base, base_url: 'http://ci.example.com/api/v2', allow_insecure_http: 'yes' }, NOW)).toThrow(/"allow_insecure_http".*true or false/);
  });

  test('read with the key prints the warning as a LOG WARN before any request', async () => {
    // The stub resolver fails every lookup: the read fails, but only after the warning, and nothing is sent.
    const files = tempFiles({ config: good({ base_url: 'http://circleci.example.invalid/api/v2', allow_insecure_http: true }), catalog: CATALOG });
    const r = await airbyte(['read', '--config', files.config, '--catalog', files.catalog], {
      env: { NODE_OPTIONS: `--import ${join(ROOT, 'test/fixtures/dns-stub.mjs')}`, DNS_STUB_HOST: 'none' },
    });
    const first = r.messages.find((m) => m.type === 'LOG');
    expect(first?.log).toEqual({ level: 'WARN', message: expect.stringMatching(/plain http to circleci\.example\.invalid.*Use https/) });
  });
});

describe('thrown errors do not carry the token', () => {
  const thrown = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      const text = `${(e as Error).message}\n${(e as Error).stack ?? ''}`;
      collect('thrown', text);
      return text;
    }
    throw new Error('expected a throw');
  };

  test('a config file that is not JSON: the message names the place, not the text', () => {
    const files = tempFiles({ c: `{"token": "${TEST_TOKEN}" "project_slugs": []}` });
    expect(leaks(thrown(() => readJsonFile(files.c, 'config')))).toEqual([]);
  });

  test.each<[string, Record<string, unknown>]>([
    ['the token as a slug', { token: TEST_TOKEN, project_slugs: [TEST_TOKEN] }],
    ['the token as start_date', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: TEST_TOKEN }],
    ['the token as base_url', { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], base_url: TEST_TOKEN }],
  ])('parseConfig with %s', (_name, config) => {
    expect(leaks(thrown(() => parseConfig(config)))).toEqual([]);
  });

  test('an HttpError from a server that echoes the token', async () => {
    const s = await serve((req, res) => json(res, 403, { message: `bad token ${String(req.headers['circle-token'])}` }));
    try {
      const client = new CircleCIClient({ baseUrl: s.baseUrl, token: TEST_TOKEN, maxConcurrency: 1, policy: { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 } });
      const e = await client.get('/me').catch((err: Error) => err);
      const text = `${(e as Error).message}\n${(e as Error).stack}`;
      collect('thrown HttpError', text);
      expect(leaks(text)).toEqual([]);
    } finally {
      await s.close();
    }
  });

  test('asConnectorError keeps an unexpected error\'s stack for system_error', () => {
    const e = asConnectorError(new RangeError('boom'));
    expect(e.failureType).toBe('system_error');
    expect(e.stack).toMatch(/RangeError: boom/);
  });
});

test('every output of this suite, searched as a whole, holds no trace of the token', () => {
  const printed = collected.filter((c) => !c.what.startsWith('thrown'));
  // The suite did run the paths above: dozens of outputs, including errors and TRACEs.
  expect(printed.length).toBeGreaterThan(100);
  expect(printed.some((c) => /"failure_type":"system_error"/.test(c.text))).toBe(true);
  expect(printed.some((c) => /"failure_type":"transient_error"/.test(c.text))).toBe(true);
  expect(printed.some((c) => /"failure_type":"config_error"/.test(c.text))).toBe(true);
  const leaked = printed.filter((c) => leaks(c.text).length).map((c) => c.what);
  expect(leaked).toEqual([]);
});

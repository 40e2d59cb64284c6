/**
 * What platforms and networks do to a running sync (issue #11): SIGTERM during a rate-limit pause,
 * a reader that closes stdout, dying by the signal, redirects that change scheme or origin, a DNS
 * blip mid-sync (through a stub resolver preloaded into the CLI: test/fixtures/dns-stub.mjs),
 * `--test` checkpoints, a failing checkpoint, the messages a newcomer meets, a wrong
 * replication-key, and rate limits as a token bucket and in fixed windows. Each test spawns the
 * real CLI against the mock (or a small scripted server) on loopback addresses.
 */
import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { chmodSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import {
  AIRBYTE_CLI, ALL_FULL, ROOT, TEST_TOKEN, byKey, configuredCatalog, parseLines, recordsOf, runCli, tempFiles, type Message,
} from './helpers.js';
import { invalidMessages } from './validate.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');
const DNS_STUB = join(ROOT, 'test/fixtures/dns-stub.mjs');
const DAY = 86_400_000;
const STREAMS = ['pipelines', 'workflows', 'jobs'] as const;

let world: World;
let startDate: Date;
let mock: MockServer;

beforeAll(async () => {
  world = new World({ seed: 31, historyDays: 20, pipelinesPerDay: 6 });
  startDate = new Date(world.now().getTime() - 20 * DAY);
  mock = await startMockServer({ world, token: TEST_TOKEN });
});
afterAll(() => mock.close());

const configFor = (baseUrl: string, extra: Record<string, unknown> = {}) => ({
  token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: baseUrl, ...extra,
});

/** A loopback server in front of the mock: `handle` answers itself or calls `pass` to forward. */
async function front(handle: (n: number, req: http.IncomingMessage, res: http.ServerResponse, pass: () => void) => void, host = '127.0.0.1') {
  let n = 0;
  const server = http.createServer((req, res) => {
    const pass = () => {
      const up = http.request(`http://127.0.0.1:${mock.port}${req.url}`, { headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end();
    };
    handle(++n, req, res, pass);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host}:${port}`,
    baseUrl: `http://${host}:${port}/api/v2`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** Spawns a CLI and hands each stdout line to `onLine` with the child; resolves on exit. */
function spawnCli(cli: string, args: string[], env: Record<string, string>, onLine: (line: string, child: ReturnType<typeof spawn>) => void) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; exitedAt: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, SOURCE_CIRCLECI_BACKOFF_SCALE: '0.01', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l, child);
    });
    child.stdout!.on('error', () => undefined);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (stdout.includes(TEST_TOKEN) || stderr.includes(TEST_TOKEN)) reject(new Error('the token leaked'));
      else resolve({ code, signal, stdout, stderr, exitedAt: Date.now() });
    });
  });
}

describe('SIGTERM while every request waits out a rate-limit pause', () => {
  test('the Airbyte face stops within 2 s with a STATE for the completed pipelines, and dies by SIGTERM', async () => {
    // 60 answers from the mock, then 429 "come back in 10 minutes" for everything.
    const f = await front((n, _req, res, pass) => {
      if (n <= 60) return pass();
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '600' });
      res.end('{"message":"Rate limit exceeded."}');
    });
    try {
      const files = tempFiles({ config: configFor(f.baseUrl, { project_slugs: [world.projectSlugs()[0]] }), catalog: ALL_FULL });
      let signalledAt = 0;
      const r = await spawnCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], { SOURCE_CIRCLECI_BACKOFF_SCALE: '1' }, (line, child) => {
        // The platform is told the sync waits on the rate limit: that is when it cancels.
        if (!signalledAt && line.includes('"RATE_LIMITED"')) {
          signalledAt = Date.now();
          child.kill('SIGTERM');
        }
      });
      expect(signalledAt).toBeGreaterThan(0);
      expect(r.exitedAt - signalledAt).toBeLessThan(2_000);
      expect({ signal: r.signal, code: r.code }).toEqual({ signal: 'SIGTERM', code: null });
      const messages = parseLines(r.stdout);
      expect(invalidMessages(messages)).toEqual([]);
      const stopAt = messages.findIndex((m) => m.type === 'LOG' && /SIGTERM/.test(m.log.message));
      expect(stopAt).toBeGreaterThan(-1);
      const after = messages.slice(stopAt).filter((m) => m.type === 'STATE');
      expect(after.some((m) => m.state.stream.stream_state[world.projectSlugs()[0]]?.resume)).toBe(true);
      expect(r.stderr).toBe('');
    } finally {
      await f.close();
    }
  });
});

describe('a reader that closes stdout (`read | head -3`)', () => {
  test.each([
    ['source-circleci read', AIRBYTE_CLI, (files: Record<string, string>) => ['read', '--config', files.config, '--catalog', files.catalog]],
    ['tap-circleci', SINGER_CLI, (files: Record<string, string>) => ['--config', files.config]],
  ])('%s stops crawling at once and exits non-zero', async (_name, cli, args) => {
    const files = tempFiles({ config: configFor(mock.baseUrl, { max_concurrency: 2 }), catalog: ALL_FULL });
    mock.resetCounters();
    let lines = 0;
    let atClose = -1;
    const r = await spawnCli(cli, args(files), {}, (_line, child) => {
      if (++lines === 3) {
        atClose = mock.counters.total;
        child.stdout!.destroy();
      }
    });
    expect(atClose).toBeGreaterThanOrEqual(0);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    // A handful of requests were in flight or queued when the pipe closed; not the whole crawl.
    expect(mock.counters.total - atClose).toBeLessThan(50);
    expect(r.stderr).toMatch(/stdout was closed by its reader/);
    expect(r.stderr).not.toMatch(/EPIPE|Error:|\n\s+at /);
  });
});

describe("Meltano's `config test`: SIGTERM after the first RECORD", () => {
  test('tap-circleci dies by SIGTERM (so Meltano counts the test as passed), after complete lines', async () => {
    const files = tempFiles({ config: configFor(mock.baseUrl, { max_concurrency: 2 }) });
    let sent = false;
    const r = await spawnCli(SINGER_CLI, ['--config', files.config], {}, (line, child) => {
      if (!sent && line.includes('"type":"RECORD"')) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    expect(sent).toBe(true);
    expect({ signal: r.signal, code: r.code }).toEqual({ signal: 'SIGTERM', code: null });
    expect(r.stdout.endsWith('\n')).toBe(true);
    parseLines(r.stdout);
    expect(r.stderr).toMatch(/SIGTERM/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

/** A self-signed certificate for 127.0.0.1 (openssl), trusted by the spawned CLI through NODE_EXTRA_CA_CERTS. */
function selfSigned(): { key: string; cert: string; certFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'source-circleci-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8'), certFile: cert };
}

describe('redirects', () => {
  test('https to http on the same host and port (one port speaking both): not followed, the token never travels in clear, one clear error', async () => {
    const tls = selfSigned();
    // What reached plain http, without header values: a failing test must not print the token.
    const plainSeen: { url?: string; withToken: boolean }[] = [];
    const plain = http.createServer((req, res) => {
      plainSeen.push({ url: req.url, withToken: 'circle-token' in req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"items":[],"next_page_token":null}');
    });
    const secure = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      res.writeHead(301, { location: `http://127.0.0.1:${port}${req.url}` });
      res.end();
    });
    // One port, both protocols: a TLS handshake starts with byte 0x16. TLS gets the bytes through a
    // stream of its own (it reads the socket's handle directly, which would skip the first chunk).
    const server = net.createServer((socket) => {
      socket.once('data', (first) => {
        if (first[0] !== 0x16) {
          socket.pause();
          socket.unshift(first);
          plain.emit('connection', socket);
          socket.resume();
          return;
        }
        const tlsSide = new Duplex({
          read: () => void socket.resume(),
          write: (chunk, enc, cb) => void socket.write(chunk, enc, cb),
          final: (cb) => { socket.end(); cb(); },
          destroy: (err, cb) => { socket.destroy(); cb(err); },
        });
        tlsSide.push(first);
        socket.on('data', (c) => { if (!tlsSide.push(c)) socket.pause(); });
        socket.on('end', () => tlsSide.push(null));
        socket.on('error', () => tlsSide.destroy());
        secure.emit('connection', tlsSide);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const files = tempFiles({
        config: { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: startDate.toISOString(), base_url: `https://127.0.0.1:${port}/api/v2` },
        catalog: configuredCatalog({ pipelines: 'full_refresh' }),
      });
      const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], { env: { NODE_EXTRA_CA_CERTS: tls.certFile } });
      expect(plainSeen).toEqual([]);
      expect(r.code).not.toBe(0);
      const errors = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error);
      expect(errors).toHaveLength(1);
      expect(errors[0].failure_type).toBe('config_error');
      expect(errors[0].message).toMatch(/redirected from https to plain http/);
      expect(errors[0].message).toContain(`http://127.0.0.1:${port}/api/v2/project/gh/acme/api/pipeline`);
    } finally {
      server.close();
      plain.closeAllConnections();
    }
  });

  test('another port on the same host is another origin: followed without the token', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const other = await front((_n, req, res, pass) => {
      seen.push(req.headers);
      pass();
    }, '127.0.0.1');
    const base = await front((_n, req, res) => {
      res.writeHead(302, { location: `${other.origin}${req.url}` });
      res.end();
    }, '127.0.0.1');
    try {
      const files = tempFiles({ config: configFor(base.baseUrl, { project_slugs: [world.projectSlugs()[0]] }), catalog: configuredCatalog({ pipelines: 'full_refresh' }) });
      const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog]);
      // The mock refuses requests without the token: the read fails, and no request there carried it.
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.filter((h) => 'circle-token' in h).length).toBe(0);
      expect(r.code).not.toBe(0);
    } finally {
      await Promise.all([other.close(), base.close()]);
    }
  });
});

describe('DNS', () => {
  test('a failed lookup after the first answer is a blip: retried, and the sync completes with every record', async () => {
    const one = new World({ seed: 33, historyDays: 10, pipelinesPerDay: 5, projects: ['gh/acme/api'] });
    const oneStart = new Date(one.now().getTime() - 10 * DAY);
    const oneMock = await startMockServer({ world: one, token: TEST_TOKEN });
    try {
      const config = { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: oneStart.toISOString(), base_url: `http://mock.test:${oneMock.port}/api/v2`, allow_insecure_http: true };
      const files = tempFiles({ config, catalog: ALL_FULL });
      // Lookup 1 opens the first connection (the pipeline list, the only request until it is
      // answered); 2 and 3 fail: new connections for the workflow lists, after that answer.
      const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], {
        env: { NODE_OPTIONS: `--import ${DNS_STUB}`, DNS_STUB_HOST: 'mock.test', DNS_STUB_FAIL: '2,3' },
      });
      const errors = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error.message);
      expect({ code: r.code, errors }).toEqual({ code: 0, errors: [] });
      expect(r.messages.some((m) => m.type === 'LOG' && /ENOTFOUND; retry/.test(m.log.message))).toBe(true);
      const truth = one.groundTruth(oneStart);
      for (const s of STREAMS) {
        const got = byKey(s, recordsOf(r.messages, s));
        const missing = [...byKey(s, truth[s] as unknown as Message[]).keys()].filter((k) => !got.has(k));
        expect({ s, missing: missing.length }).toEqual({ s, missing: 0 });
      }
    } finally {
      await oneMock.close();
    }
  });

  test('a lookup that fails before any answer, with a custom base_url: config_error naming base_url', async () => {
    // A name is not loopback: plain http to it needs the opt-in (docs/base-url-safety.md).
    const files = tempFiles({ config: { ...configFor('http://ci.example.test/api/v2'), allow_insecure_http: true }, catalog: ALL_FULL });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], { env: { NODE_OPTIONS: `--import ${DNS_STUB}`, DNS_STUB_HOST: 'none' } });
    const errors = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error);
    expect(errors).toHaveLength(1);
    expect(errors[0].failure_type).toBe('config_error');
    expect(errors[0].message).toMatch(/ci\.example\.test.*does not exist.*base_url/);
  });

  test('no network at all with the default base_url: circleci.com cannot be reached from this machine (not "check base_url")', async () => {
    const { base_url: _b, ...config } = configFor('');
    const files = tempFiles({ config, catalog: ALL_FULL });
    for (const args of [['check', '--config', files.config], ['read', '--config', files.config, '--catalog', files.catalog]]) {
      const r = await runCli(AIRBYTE_CLI, args, { env: { NODE_OPTIONS: `--import ${DNS_STUB}`, DNS_STUB_HOST: 'none' } });
      const text = r.messages.map((m) => m.connectionStatus?.message ?? m.trace?.error?.message ?? '').join('\n');
      expect(text).toMatch(/circleci\.com cannot be reached from this machine/);
      expect(text).not.toMatch(/Check base_url|does not exist/);
    }
  });
});

describe('tap-circleci --test', () => {
  test('prints no STATE covering records it did not emit: its records plus a sync from its last STATE hold everything', async () => {
    // Seed 31 at this clock: the two newest pipelines have no workflows yet, so the second one is
    // complete the moment it is listed, while --test drops its record (one per stream: projects too).
    const now = new Date('2026-06-01T12:00:00Z');
    const w = new World({ seed: 31, now, historyDays: 10, pipelinesPerDay: 6, projects: ['gh/acme/api'] });
    const since = new Date(now.getTime() - 10 * DAY);
    const m = await startMockServer({ world: w, token: TEST_TOKEN });
    try {
      const files = tempFiles({ config: { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: since.toISOString(), base_url: m.baseUrl } });
      const test = await runCli(SINGER_CLI, ['--config', files.config, '--test']);
      expect(test.code).toBe(0);
      expect(test.messages.filter((x) => x.type === 'RECORD').length).toBe(4); // one per stream selected by default
      const states = test.messages.filter((x) => x.type === 'STATE');
      const union = new Map<string, Map<string, Message>>(STREAMS.map((s) => [s, byKey(s, test.messages.filter((x) => x.type === 'RECORD' && x.stream === s).map((x) => x.record))]));
      // No STATE at all is fine (nothing claimed); otherwise the next sync starts from the last one.
      const stateArgs = states.length ? ['--state', tempFiles({ s: states.at(-1)!.value }).s] : [];
      const next = await runCli(SINGER_CLI, ['--config', files.config, ...stateArgs]);
      expect(next.code).toBe(0);
      for (const s of STREAMS) byKey(s, next.messages.filter((x) => x.type === 'RECORD' && x.stream === s).map((x) => x.record), union.get(s));
      const truth = w.groundTruth(since);
      for (const s of STREAMS) {
        const missing = [...byKey(s, truth[s] as unknown as Message[]).keys()].filter((k) => !union.get(s)!.has(k));
        expect({ s, missing: missing.length }).toEqual({ s, missing: 0 });
      }
    } finally {
      await m.close();
    }
  });
});

describe('the checkpoint chain', () => {
  test('a checkpoint that fails mid-project fails the sync with its own message, never as an unhandled rejection', async () => {
    // The engine in a process of its own (test/fixtures/failing-checkpoint.mjs), where an unhandled
    // rejection is seen as the CLI would meet it; no face lets a test make a checkpoint fail.
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'test/fixtures/failing-checkpoint.mjs')], { stdio: ['ignore', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout }));
    });
    expect(r.code).toBe(0);
    const outcome = parseLines(r.stdout)[0];
    expect(outcome.unhandled).toEqual([]);
    expect(outcome.rejected).toContain('the destination refused the checkpoint');
  });
});

describe('messages a newcomer meets', () => {
  const traceMessage = (r: { messages: Message[] }) => r.messages.find((m) => m.type === 'TRACE' && m.trace.type === 'ERROR')?.trace.error.message ?? '';

  test('--help keeps words whole; --version prints the version on both faces', async () => {
    // --help is text, not messages: read it raw.
    const raw = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const c = spawn(process.execPath, [AIRBYTE_CLI, '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.on('close', (code) => resolve({ code, stdout: out }));
    });
    expect(raw.code).toBe(0);
    expect(raw.stdout).toContain('CircleCI (API v2) source for Airbyte: projects, pipelines, workflows, jobs, job details and test results.');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    // Also through a symlink, as npm's bin links and a Meltano `executable` may run it: the face
    // still knows it is the program, not an import.
    const link = join(mkdtempSync(join(tmpdir(), 'source-circleci-bin-')), 'tap-circleci');
    symlinkSync(SINGER_CLI, link);
    for (const [cli, name] of [[AIRBYTE_CLI, 'source-circleci'], [SINGER_CLI, 'tap-circleci'], [link, 'tap-circleci']]) {
      const v = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const c = spawn(process.execPath, [cli, '--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
        c.on('close', (code) => resolve({ code, stdout: out }));
      });
      expect({ code: v.code, stdout: v.stdout }).toEqual({ code: 0, stdout: `${name} ${version}\n` });
    }
  });

  test('usage mistakes: whole sentences, and a wrong command is called a wrong command', async () => {
    const missing = await runCli(AIRBYTE_CLI, ['read', '--config', 'x.json']);
    expect(traceMessage(missing)).toMatch(/^Missing required argument: catalog\. Usage: /);
    const wrong = await runCli(AIRBYTE_CLI, ['sync', '--config', 'x.json']);
    expect(wrong.code).toBe(1);
    expect(traceMessage(wrong)).toMatch(/^Unknown command "sync": the commands are spec, check, discover and read\. Usage: /);
  });

  test('an unreadable config names the permission and the user the connector runs as', async () => {
    const files = tempFiles({ config: configFor(mock.baseUrl) });
    chmodSync(files.config, 0o600);
    // As root, run the CLI as "nobody" (as the image runs it as "airbyte"); otherwise take the
    // permission away from ourselves.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(files.config, 0o000);
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const c = spawn(process.execPath, [AIRBYTE_CLI, 'check', '--config', files.config], {
        stdio: ['ignore', 'pipe', 'ignore'], ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
      let out = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code, stdout: out }));
    });
    // check answers FAILED with the reason.
    const message = parseLines(r.stdout).find((m) => m.type === 'CONNECTION_STATUS')?.connectionStatus.message ?? '';
    expect(message).toContain(`Cannot read the config file ${files.config}: permission denied.`);
    expect(message).toMatch(/runs as the user "[^"]+" \(in the Docker image: "airbyte", not you\)/);
    expect(message).toContain('chmod a+r');
    expect(message).not.toMatch(/EACCES\. Check the path/);
  });

  test('check names the real path of a missing project, as read does', async () => {
    const files = tempFiles({ config: configFor(mock.baseUrl, { project_slugs: ['gh/acme/nope'] }) });
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', files.config]);
    const status = r.messages.find((m) => m.type === 'CONNECTION_STATUS')!.connectionStatus;
    expect(status.status).toBe('FAILED');
    expect(status.message).toContain('404 on GET /project/gh/acme/nope');
    expect(status.message).not.toContain('{slug}');
  });

  test('one raw STATE line passed as --state is explained: pass the array of its "state" objects', async () => {
    const line = { type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'pipelines' }, stream_state: {} }, sourceStats: { recordCount: 0 } } };
    const files = tempFiles({ config: configFor(mock.baseUrl), catalog: ALL_FULL, state: line });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog, '--state', files.state]);
    expect(r.code).toBe(1);
    expect(traceMessage(r)).toMatch(/whole STATE line as read prints it.*Pass a JSON array of their "state" objects/);
  });

  test('"project_slug" gets a did-you-mean', async () => {
    const { project_slugs: slugs, ...rest } = configFor(mock.baseUrl);
    const files = tempFiles({ config: { ...rest, project_slug: slugs[0] } });
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', files.config]);
    expect(r.messages.find((m) => m.type === 'CONNECTION_STATUS')!.connectionStatus.message).toMatch(/missing "project_slugs" \(it has "project_slug": did you mean "project_slugs"\?\)/);
  });

  test("the mock's --help is an answer (stdout, exit 0); a port in use is one clear line", async () => {
    const MOCK_CLI = join(ROOT, 'dist-dev/mock/cli.js');
    const run = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [MOCK_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      c.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    const help = await run(['--help']);
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^A mock CircleCI API v2/);
    const busy = await run(['--port', String(mock.port)]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(new RegExp(`^Port ${mock.port} on 127\\.0\\.0\\.1 is already in use.*--port 0 for a free one\\.\\n$`));
  });
});

describe('rate limits: a token bucket and fixed windows', () => {
  // 60 requests per 3 s window (20 a second), so a sync spans a few windows in seconds; 10% of
  // the quota is about the requests in flight, as with CircleCI's real quota.
  const QUOTA = 60;
  const WINDOW_S = 3;
  // Side by side: both wait on the quota, not on the CPU. (The governor paces on the quota less the
  // requests in flight: pacing on the header alone slipped into a window's end on a busy machine.)
  test.concurrent.each(['fixed', 'bucket'] as const)('%s: at least 90%% of the allowed rate, under 5%% answered 429, every record', async (window) => {
    const w = new World({ seed: 35, historyDays: 25, pipelinesPerDay: 2, projects: ['gh/acme/api'] });
    const since = new Date(w.now().getTime() - 25 * DAY);
    const m = await startMockServer({ world: w, token: TEST_TOKEN, latencyMs: 20, rateLimit: { perMinute: QUOTA, window, windowSeconds: WINDOW_S } });
    try {
      const files = tempFiles({ config: { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: since.toISOString(), base_url: m.baseUrl }, catalog: ALL_FULL });
      // Real waits: the pacing and Retry-After are what is tested.
      const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], { env: { SOURCE_CIRCLECI_BACKOFF_SCALE: '1' } });
      expect(r.code).toBe(0);
      const truth = w.groundTruth(since);
      for (const s of STREAMS) expect({ s, n: byKey(s, recordsOf(r.messages, s)).size }).toEqual({ s, n: truth[s].length });
      const log = m.counters.log;
      const limited = log.filter((l) => l.status === 429).length;
      const ok = log.length - limited;
      expect(ok).toBeGreaterThan(3 * QUOTA); // the sync spans several windows
      expect({ window, limited, share429: limited / log.length < 0.05 }).toEqual({ window, limited, share429: true });
      // Pacing spends what is left of the quota over what is left of the window: it never runs
      // into the window's end (at the bucket's rate it would spend the last 10% ~9 times too fast).
      if (window === 'fixed') expect({ window, limited }).toEqual({ window, limited: 0 });
      // Allowed: in fixed windows the quota of every window the sync touched but its last (which
      // it need not fill); from a full bucket its capacity plus what flows back meanwhile.
      const t0 = log[0].wallMs;
      const span = (log.at(-1)!.wallMs - t0) / 1000;
      const lastWindow = Math.floor(span / WINDOW_S);
      const allowed = window === 'fixed'
        ? QUOTA * lastWindow + log.filter((l) => l.status !== 429 && Math.floor((l.wallMs - t0) / 1000 / WINDOW_S) === lastWindow).length
        : QUOTA + (QUOTA / WINDOW_S) * span;
      expect({ window, ok, allowed, ofAllowed: Math.min(1, ok / allowed) >= 0.9 }).toEqual({ window, ok, allowed, ofAllowed: true });
    } finally {
      await m.close();
    }
  });
});

describe('a replication-key that is not the stream\'s', () => {
  test('stops the run with an error naming the stream and its valid key (or that it has none), on every stream', async () => {
    const discovered = parseLines((await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, [SINGER_CLI, '--discover'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.on('close', () => resolve(out));
    })))[0];
    for (const entry of discovered.streams) {
      const name = entry.tap_stream_id as string;
      const catalog = structuredClone(discovered);
      const valid: string[] | undefined = entry.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata['valid-replication-keys'];
      for (const e of catalog.streams) {
        const root = e.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata;
        root.selected = e.tap_stream_id === name;
        if (e.tap_stream_id === name) root['replication-key'] = 'not_a_field';
      }
      const files = tempFiles({ config: configFor(mock.baseUrl), catalog });
      const r = await runCli(SINGER_CLI, ['--config', files.config, '--catalog', files.catalog]);
      expect({ name, code: r.code, records: r.messages.filter((m) => m.type === 'RECORD').length }).toEqual({ name, code: 1, records: 0 });
      expect(r.stderr).toContain(`CRITICAL tap-circleci: Stream "${name}"`);
      expect(r.stderr).toContain('"not_a_field"');
      expect(r.stderr).toContain(valid ? `Set it to "${valid[0]}"` : 'has no replication key');
    }
  });
});

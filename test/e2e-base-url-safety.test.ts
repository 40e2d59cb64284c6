/**
 * base_url on a hosted platform, through both spawned CLIs: plain http to a host other than this
 * machine is refused unless the user opts in ("allow_insecure_http"), and what a server answers
 * reaches the user's error message only as a short, one-line, sanitised excerpt.
 *
 * No request leaves this machine: the remote names below are resolved by the stub resolver
 * (test/fixtures/dns-stub.mjs), which fails every lookup, and the servers are on 127.0.0.1.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseConfig } from '../src/config.js';
import { AIRBYTE_CLI, ROOT, TEST_TOKEN, configuredCatalog, runCli, tempFiles, type CliResult } from './helpers.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');
const DNS_STUB = join(ROOT, 'test/fixtures/dns-stub.mjs');
/** Every name fails to resolve (ENOTFOUND) inside the spawned CLI: nothing is sent anywhere. */
const NO_DNS = { NODE_OPTIONS: `--import ${DNS_STUB}`, DNS_STUB_HOST: 'none' };
const REMOTE_HTTP = 'http://circleci.internal.example/api/v2';
const CONFIG = { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: '2025-01-01' };
const CATALOG = configuredCatalog({ pipelines: 'incremental' });

const traceErrors = (r: CliResult) => r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error);
const statuses = (r: CliResult) => r.messages.filter((m) => m.type === 'CONNECTION_STATUS').map((m) => m.connectionStatus);
const stderrLines = (r: CliResult) => r.stderr.split('\n').filter(Boolean);

describe('plain http to a host that is not this machine', () => {
  const refused = /"base_url" uses plain http to circleci\.internal\.example.*use https.*"allow_insecure_http" to true/;

  test('Airbyte check: CONNECTION_STATUS FAILED with one message naming the fix', async () => {
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', tempFiles({ config: { ...CONFIG, base_url: REMOTE_HTTP } }).config], { env: NO_DNS });
    expect(r.code).toBe(0);
    expect(statuses(r)).toEqual([{ status: 'FAILED', message: expect.stringMatching(refused) }]);
    expect(statuses(r)[0].message).not.toContain('\n');
    expect(traceErrors(r)).toEqual([]);
  });

  test('Airbyte read: one config_error TRACE, no record, non-zero exit', async () => {
    const files = tempFiles({ config: { ...CONFIG, base_url: REMOTE_HTTP }, catalog: CATALOG });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], { env: NO_DNS });
    expect(r.code).not.toBe(0);
    expect(traceErrors(r).map((e) => ({ failure_type: e.failure_type, message: e.message }))).toEqual([{ failure_type: 'config_error', message: expect.stringMatching(refused) }]);
    expect(r.messages.filter((m) => m.type === 'RECORD' || m.type === 'STATE')).toEqual([]);
  });

  test('Singer: exit 1, one CRITICAL line on stderr, nothing on stdout', async () => {
    const r = await runCli(SINGER_CLI, ['--config', tempFiles({ config: { ...CONFIG, base_url: REMOTE_HTTP } }).config], { env: NO_DNS });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toEqual([expect.stringMatching(new RegExp(`^CRITICAL tap-circleci: .*${refused.source}`))]);
  });

  test('with "allow_insecure_http": true the config is accepted, with a warning (in-process: no request is made)', () => {
    const c = parseConfig({ ...CONFIG, base_url: REMOTE_HTTP, allow_insecure_http: true });
    expect(c.baseUrl).toBe(REMOTE_HTTP);
    expect(c.warnings.join(' ')).toMatch(/plain http to circleci\.internal\.example.*allow_insecure_http/);
  });

  test('Singer with TAP_CIRCLECI_ALLOW_INSECURE_HTTP=true (--config ENV, as Meltano may pass it) goes past validation, to the host lookup (stubbed to fail)', async () => {
    const r = await runCli(SINGER_CLI, ['--config', tempFiles({ config: { ...CONFIG, base_url: REMOTE_HTTP } }).config, '--config', 'ENV'], {
      env: { ...NO_DNS, TAP_CIRCLECI_ALLOW_INSECURE_HTTP: 'true' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/uses plain http to circleci\.internal\.example, so/);
    expect(r.stderr).toMatch(/CRITICAL tap-circleci: The host of base_url \(circleci\.internal\.example\) does not exist/);
  });

  test('loopback stays allowed without the key (http://127.0.0.1, localhost, [::1])', () => {
    for (const url of ['http://127.0.0.1:8080/api/v2', 'http://localhost:8080/api/v2', 'http://[::1]:8080/api/v2']) {
      expect(parseConfig({ ...CONFIG, base_url: url }).warnings).toEqual([]);
    }
  });
});

describe('what a server answers reaches the user as a short, one-line excerpt', () => {
  let server: http.Server;
  let baseUrl: string;
  let reply: (res: http.ServerResponse) => void;
  beforeAll(async () => {
    server = http.createServer((_req, res) => reply(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  // A load balancer's error page, as nginx and cloud balancers send them: long, with markup.
  const HTML_502 = `<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body{font-family:sans-serif}</style></head>\n<body><center><h1>502 Bad Gateway</h1></center>\n${'<p>upstream: 10.1.2.3:8443 request-id 9f8e7d6c</p>\n'.repeat(60)}<hr><center>nginx</center></body></html>\n`;
  // An internal service's failure, passed on in CircleCI's JSON envelope: a stack trace.
  const INTERNAL = `java.lang.IllegalStateException: pipeline store unavailable (shard 7)\n${'\tat com.circleci.internal.pipelines.Store.read(Store.java:412)\n'.repeat(80)}Caused by: db-primary-3.internal:5432 connection refused`;

  const html502 = (res: http.ServerResponse) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end(HTML_502);
  };
  const internal400 = (res: http.ServerResponse) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message: INTERNAL }));
  };

  /** The message a user reads: short, one line, no markup, nothing of the page beyond a name. */
  function expectShort(message: string) {
    expect(message).not.toContain('\n');
    expect(message).not.toMatch(/[<>]/);
    expect(message).not.toMatch(/10\.1\.2\.3|nginx/);
    expect(message.length).toBeLessThan(500);
  }

  const read = async (cli: 'airbyte' | 'singer') => {
    const files = tempFiles({ config: { ...CONFIG, base_url: baseUrl }, catalog: CATALOG });
    return cli === 'airbyte'
      ? runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog])
      : runCli(SINGER_CLI, ['--config', files.config]);
  };
  const errorOf = (cli: 'airbyte' | 'singer', r: CliResult): string => {
    expect(r.code).not.toBe(0);
    if (cli === 'airbyte') {
      const errors = traceErrors(r);
      expect(errors).toHaveLength(1);
      return errors[0].message;
    }
    const critical = stderrLines(r).filter((l) => l.startsWith('CRITICAL'));
    expect(critical).toHaveLength(1);
    return critical[0];
  };

  test.each(['airbyte', 'singer'] as const)('%s: an HTML 502 page, answered until the retries give up, is named "an HTML page", not quoted', async (cli) => {
    reply = html502;
    const message = errorOf(cli, await read(cli));
    expectShort(message);
    expect(message).toMatch(/the last answer was HTTP 502 \(an HTML page\)/);
  });

  test('Airbyte check: the same page, the same short message', async () => {
    reply = html502;
    const r = await runCli(AIRBYTE_CLI, ['check', '--config', tempFiles({ config: { ...CONFIG, base_url: baseUrl } }).config]);
    const [status] = statuses(r);
    expect(status.status).toBe('FAILED');
    expectShort(status.message);
    expect(status.message).toMatch(/HTTP 502 \(an HTML page\)/);
  });

  test.each(['airbyte', 'singer'] as const)('%s: a long multi-line internal body in a 400 becomes one line of at most 200 characters of it', async (cli) => {
    reply = internal400;
    const message = errorOf(cli, await read(cli));
    expectShort(message);
    const quoted = /answered HTTP 400 \((.*)\)\.?$/.exec(message)?.[1];
    expect(quoted).toBeDefined();
    expect(quoted!.length).toBeLessThanOrEqual(200);
    expect(quoted).toMatch(/^java\.lang\.IllegalStateException: pipeline store unavailable \(shard 7\) at com\.circleci/);
    expect(message).not.toMatch(/db-primary-3/);
  });
});

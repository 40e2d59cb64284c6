/**
 * Reliability, part 1 (issue #6): faults. The spawned CLI against the mock CircleCI API with
 * injected 500s, HTML 502s, 429s with and without Retry-After, connection resets, truncated JSON
 * and responses slower than the request timeout; and against endpoints that fail every time, or
 * never answer, where the read must end in bounded time with a transient_error that names the
 * endpoint and the last status, keeping the checkpoints it emitted valid.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import {
  AIRBYTE_CLI, ALL_FULL, ALL_INCREMENTAL, TEST_TOKEN, byKey, configuredCatalog, lastStates, recordsOf, runCli, statesOf, tempFiles,
  type CliResult, type Message,
} from './helpers.js';
import { invalidMessages } from './validate.js';

const DAY = 86_400_000;
const STREAMS = ['pipelines', 'workflows', 'jobs'] as const;

let world: World;
let startDate: Date;

const configFor = (baseUrl: string, extra: Record<string, unknown> = {}) => ({
  token: TEST_TOKEN,
  project_slugs: world.projectSlugs(),
  start_date: startDate.toISOString(),
  base_url: baseUrl,
  ...extra,
});

async function read(catalog: unknown, config: unknown, opts: { state?: unknown; env?: Record<string, string> } = {}) {
  const files = tempFiles({ config, catalog, ...(opts.state ? { state: opts.state } : {}) });
  const args = ['read', '--config', files.config, '--catalog', files.catalog, ...(opts.state ? ['--state', files.state] : [])];
  const started = Date.now();
  const result = await runCli(AIRBYTE_CLI, args, { env: opts.env, timeoutMs: 90_000 });
  expect(invalidMessages(result.messages)).toEqual([]);
  return { ...result, elapsedMs: Date.now() - started };
}

const traceErrors = (r: CliResult) => r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error);
const logs = (r: CliResult) => r.messages.filter((m) => m.type === 'LOG').map((m) => `${m.log.level} ${m.log.message}`);

/** Records by key equal the ground truth: nothing missing, nothing extra, every field equal. */
function expectEqualToTruth(stream: string, actual: Map<string, Message>, truth: Message[]) {
  const expected = byKey(stream, truth);
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  expect({ stream, missing: missing.slice(0, 5), missingCount: missing.length, extra: extra.slice(0, 5) })
    .toEqual({ stream, missing: [], missingCount: 0, extra: [] });
  for (const [k, v] of expected) expect({ stream, k, record: actual.get(k) }).toEqual({ stream, k, record: v });
}

/** A loopback server whose every answer the test scripts. */
async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/api/v2`,
    seen,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** The pipeline numbers every stream's resume marker of `slug` claims as completed, if all have one. */
function completedRange(state: Message[], slug: string): { from: number; to: number } | undefined {
  let from = Number.NEGATIVE_INFINITY;
  let to = Number.POSITIVE_INFINITY;
  for (const s of STREAMS) {
    const marker = state.find((m) => m.stream.stream_descriptor.name === s)?.stream.stream_state[slug]?.resume;
    if (!marker) return undefined;
    from = Math.max(from, marker.from);
    to = Math.min(to, marker.to);
  }
  return from <= to ? { from, to } : undefined;
}

beforeAll(() => {
  // ~120 pipelines in each of 3 projects, workflows with up to 6 jobs (3 a page below).
  world = new World({ seed: 21, historyDays: 30, pipelinesPerDay: 4 });
  startDate = new Date(world.now().getTime() - 25 * DAY);
});

describe('a full read through a faulty API', () => {
  test('8% 500, 3% HTML 502, 5% 429 (half without Retry-After), 2% resets, 2% truncated JSON, 3% slower than the timeout: exit 0, records = ground truth, no duplicates', async () => {
    const faulty = await startMockServer({
      world, token: TEST_TOKEN, jobPageSize: 3, seed: 5,
      faults: {
        rate500: 0.08, rate502Html: 0.03, rate429: 0.05, retryAfterMissingShare: 0.5,
        rateReset: 0.02, rateTruncated: 0.02, rateSlow: 0.03, slowMs: 2000,
      },
    });
    try {
      const r = await read(ALL_FULL, configFor(faulty.baseUrl), { env: { SOURCE_CIRCLECI_TIMEOUT_MS: '600' } });
      expect({ code: r.code, errors: traceErrors(r) }).toEqual({ code: 0, errors: [] });
      // The Airbyte face writes nothing to stderr (no terminal, no progress line): anything there
      // is Node's, e.g. a MaxListenersExceededWarning from abort listeners left behind by waits.
      expect(r.stderr).toBe('');
      const truth = world.groundTruth(startDate);
      for (const s of STREAMS) {
        const records = recordsOf(r.messages, s);
        expect({ s, duplicates: records.length - byKey(s, records).size }).toEqual({ s, duplicates: 0 });
        expectEqualToTruth(s, byKey(s, records), truth[s] as unknown as Message[]);
      }
      // Every kind of fault did happen, and was retried.
      expect(Object.keys(faulty.counters.byStatus)).toEqual(expect.arrayContaining(['200', '429', '500', '502', 'reset']));
      const retried = logs(r).filter((l) => /^WARN GET .*retry \d+ in/.test(l)).join('\n');
      expect(retried).toMatch(/rate limited; retry/);
      expect(retried).toMatch(/HTTP 500; retry/);
      expect(retried).toMatch(/HTTP 502; retry/);
      expect(retried).toMatch(/ECONNRESET|socket hang up|FetchError|system/i);
      expect(retried).toMatch(/not valid JSON \(truncated\?\); retry/);
      expect(retried).toMatch(/no answer within 600 ms; retry/);
      // Each stream ends COMPLETE.
      for (const s of STREAMS) {
        const statuses = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'STREAM_STATUS' && m.trace.stream_status.stream_descriptor.name === s);
        expect(statuses.at(-1)?.trace.stream_status.status).toBe('COMPLETE');
      }
    } finally {
      await faulty.close();
    }
  });
});

describe('an endpoint that fails every time', () => {
  /** ~240 pipelines a project, so a resume marker (every 100 completed pipelines) is written before the failure. */
  let big: World;
  let bigStart: Date;
  let mock: MockServer;
  beforeAll(async () => {
    big = new World({ seed: 22, historyDays: 20, pipelinesPerDay: 8, projects: ['gh/acme/api', 'bb/acme/web'] });
    bigStart = new Date(big.now().getTime() - 20 * DAY);
    mock = await startMockServer({ world: big, token: TEST_TOKEN });
  });
  afterAll(() => mock.close());

  const bigConfig = () => ({ token: TEST_TOKEN, project_slugs: big.projectSlugs(), start_date: bigStart.toISOString(), base_url: mock.baseUrl });

  test('the read ends in bounded time with one transient_error naming the endpoint and the last status, exit non-zero; its checkpoints stay valid', async () => {
    // The 150th newest pipeline of the first project: its workflow list answers 500, always.
    const truth = big.groundTruth(bigStart);
    const first = truth.pipelines.filter((p) => p.project_slug === big.projectSlugs()[0]);
    const victim = first[149];
    mock.setFaults({ failPath: new RegExp(`^/api/v2/pipeline/${victim.id}/workflow$`) });
    mock.resetCounters();
    let r: Awaited<ReturnType<typeof read>>;
    try {
      r = await read(ALL_INCREMENTAL, bigConfig());
    } finally {
      mock.setFaults(undefined);
    }
    // Bounded: 10 attempts with the (scaled) backoff, not forever, not the peer's 31 s of 429s.
    expect(r.elapsedMs).toBeLessThan(60_000);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    const errors = traceErrors(r);
    expect(errors).toHaveLength(1);
    expect(errors[0].failure_type).toBe('transient_error');
    expect(errors[0].message).toContain(`/pipeline/${victim.id}/workflow`);
    expect(errors[0].message).toMatch(/HTTP 500/);
    expect(errors[0].message).toMatch(/failed 10 times/);
    expect(errors[0].stack_trace).toBeUndefined();
    // It was tried exactly as often as the policy says.
    expect(mock.counters.log.filter((l) => l.path.startsWith(`/api/v2/pipeline/${victim.id}/workflow`)).length).toBe(10);
    // The TRACE ERROR is the last word: no STATE after it.
    const errorAt = r.messages.findIndex((m) => m.type === 'TRACE' && m.trace.type === 'ERROR');
    expect(r.messages.slice(errorAt + 1).filter((m) => m.type === 'STATE' || m.type === 'RECORD')).toEqual([]);
    // The failed project saved how far it got (a resume marker), the other one finished.
    const states = statesOf(r.messages);
    const markers = states.filter((m) => m.state.stream.stream_state[big.projectSlugs()[0]]?.resume);
    expect(markers.length).toBeGreaterThan(0);

    // Valid checkpoints: from each of them (the first one where every stream carries the marker,
    // and the last), the records printed up to it plus a resumed sync cover the ground truth.
    const slug = big.projectSlugs()[0];
    const firstFull = r.messages.findIndex((_m, i) => completedRange(lastStates(r.messages.slice(0, i + 1)), slug) !== undefined);
    expect(firstFull).toBeGreaterThan(-1);
    for (const upTo of [firstFull + 1, r.messages.length]) {
      const before = r.messages.slice(0, upTo);
      const state = lastStates(before);
      mock.resetCounters();
      const again = await read(ALL_INCREMENTAL, bigConfig(), { state });
      expect(again.code).toBe(0);
      for (const s of STREAMS) {
        const union = byKey(s, recordsOf(before, s));
        byKey(s, recordsOf(again.messages, s), union);
        const expected = byKey(s, truth[s] as unknown as Message[]);
        const missing = [...expected.keys()].filter((k) => !union.has(k));
        expect({ upTo, s, missing: missing.length }).toEqual({ upTo, s, missing: 0 });
      }
      // The resumed sync did not fetch again the workflows of pipelines the markers say are done.
      const range = completedRange(state, slug)!;
      const done = new Set(first.filter((p) => (p.number as number) >= range.from && (p.number as number) <= range.to).map((p) => p.id));
      expect(done.size).toBeGreaterThanOrEqual(100);
      const refetched = mock.counters.log.filter((l) => done.has(/^\/api\/v2\/pipeline\/([^/?]+)\/workflow/.exec(l.path)?.[1] ?? ''));
      expect(refetched.map((l) => l.path)).toEqual([]);
    }
  });

  test.each([
    ['always 429 with Retry-After', 'HTTP 429', (_q: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end('{"message":"Rate limit exceeded."}');
    }],
    ['always 429 without Retry-After', 'HTTP 429', (_q: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(429, { 'content-type': 'application/json' });
      res.end('{"message":"Rate limit exceeded."}');
    }],
    ['always an HTML 503', 'HTTP 503', (_q: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>');
    }],
    ['never answers (accepts, then silence)', 'no answer within 250 ms', () => undefined],
  ])('a server that is %s: transient_error naming the endpoint and %s, in bounded time', async (_name, last, handler) => {
    const s = await serve(handler);
    try {
      const config = { token: TEST_TOKEN, project_slugs: ['gh/acme/api'], start_date: startDate.toISOString(), base_url: s.baseUrl };
      // The short timeout only matters to the silent server; the others answer at once (and a busy
      // machine must not turn their last answer into a timeout).
      const silent = last.startsWith('no answer');
      const r = await read(configuredCatalog({ pipelines: 'incremental' }), config, { env: { SOURCE_CIRCLECI_TIMEOUT_MS: silent ? '250' : '20000' } });
      expect(r.elapsedMs).toBeLessThan(30_000);
      expect(r.code).not.toBe(0);
      expect(r.code).not.toBeNull();
      const errors = traceErrors(r);
      expect(errors).toHaveLength(1);
      expect(errors[0].failure_type).toBe('transient_error');
      expect(errors[0].message).toContain('/project/gh/acme/api/pipeline');
      expect(errors[0].message).toContain(last);
      expect(errors[0].message).toMatch(/run the sync again later/i);
      expect(s.seen.length).toBe(10);
      expect(r.messages.filter((m) => m.type === 'RECORD')).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

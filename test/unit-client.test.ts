import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CircleCIClient, HttpError } from '../src/circleci/client.js';
import type { ConnectorError } from '../src/errors.js';
import { DEFAULT_RETRY_POLICY } from '../src/circleci/retry.js';
import { closeAgents } from '../src/circleci/http.js';

// The client keeps connections alive; let jest exit.
afterAll(() => closeAgents());

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A throwaway loopback server whose every answer the test scripts. */
async function serve(handler: Handler, host = '127.0.0.1'): Promise<{ url: string; close: () => Promise<void>; seen: http.IncomingMessage[] }> {
  const seen: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://${host}:${port}`, seen, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

const fastPolicy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 4, timeoutMs: 2000 };
const client = (url: string, extra: Partial<ConstructorParameters<typeof CircleCIClient>[0]> = {}) =>
  new CircleCIClient({ baseUrl: `${url}/api/v2`, token: 'secret-token-123', maxConcurrency: 4, policy: fastPolicy, ...extra });

async function collect(gen: AsyncGenerator<unknown[]>): Promise<unknown[]> {
  const all: unknown[] = [];
  for await (const page of gen) all.push(...page);
  return all;
}

describe('pagination', () => {
  test('follows next_page_token to the last page; a missing token ends it like null', async () => {
    const s = await serve((req, res) => {
      const token = new URL(req.url!, 'http://x').searchParams.get('page-token');
      if (!token) return json(res, 200, { items: [1, 2], next_page_token: 'p2' });
      if (token === 'p2') return json(res, 200, { items: [3], next_page_token: 'p3' });
      return json(res, 200, { items: [4] });
    });
    expect(await collect(client(s.url).pages('/things'))).toEqual([1, 2, 3, 4]);
    expect(s.seen.map((r) => r.headers['circle-token'])).toEqual(['secret-token-123', 'secret-token-123', 'secret-token-123']);
    await s.close();
  });

  test('a repeated page token stops with an error instead of looping', async () => {
    const s = await serve((_req, res) => json(res, 200, { items: [1], next_page_token: 'again' }));
    await expect(collect(client(s.url).pages('/loop'))).rejects.toThrow(/already returned/);
    expect(s.seen.length).toBe(2);
    await s.close();
  });

  test('a body that is not a page is an error naming the endpoint', async () => {
    const s = await serve((_req, res) => json(res, 200, { data: [] }));
    await expect(collect(client(s.url).pages('/odd'))).rejects.toThrow(/GET \/odd answered with a body that is not a CircleCI page/);
    await s.close();
  });
});

describe('retries', () => {
  test('5xx, 429 and truncated bodies are retried until an answer comes', async () => {
    let n = 0;
    const s = await serve((_req, res) => {
      n++;
      if (n === 1) return json(res, 503, { message: 'down' });
      if (n === 2) return json(res, 429, { message: 'Rate limit exceeded.' }, { 'retry-after': '0' });
      if (n === 3) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"items": [1, 2');
      }
      return json(res, 200, { ok: true });
    });
    const retries: string[] = [];
    const c = client(s.url, { onRetry: (e) => retries.push(e.reason) });
    expect(await c.get('/x')).toEqual({ ok: true });
    expect(retries).toEqual(['HTTP 503', 'HTTP 429', 'HTTP 200 with a body that is not valid JSON (truncated?)']);
    await s.close();
  });

  test('Retry-After is honoured: the next attempt waits as long as the server asked', async () => {
    const arrivals: number[] = [];
    const s = await serve((_req, res) => {
      arrivals.push(Date.now());
      return arrivals.length === 1 ? json(res, 429, { message: 'Rate limit exceeded.' }, { 'retry-after': '1' }) : json(res, 200, { ok: true });
    });
    const waits: number[] = [];
    const c = client(s.url, { onRetry: (e) => waits.push(e.waitMs), policy: { ...fastPolicy, maxDelayMs: 60_000 } });
    expect(await c.get('/x')).toEqual({ ok: true });
    expect(waits.at(-1)).toBe(1000);
    expect(arrivals[1] - arrivals[0]).toBeGreaterThanOrEqual(990);
    await s.close();
  });

  test('a connection reset is retried', async () => {
    let n = 0;
    const s = await serve((req, res) => (++n === 1 ? req.socket.destroy() : json(res, 200, { ok: n })));
    expect(await client(s.url).get('/x')).toEqual({ ok: 2 });
    await s.close();
  });

  test('a server that never answers times out and is retried, then gives up with the endpoint and last reason', async () => {
    const s = await serve(() => undefined);
    const c = client(s.url, { policy: { ...fastPolicy, timeoutMs: 100, maxAttempts: 2 } });
    await expect(c.get('/slow')).rejects.toThrow(/GET \/slow failed 2 times.*no answer within 100 ms/);
    await s.close();
  });

  test('404 is final and not retried', async () => {
    const s = await serve((_req, res) => json(res, 404, { message: 'Not Found' }));
    const err = (await client(s.url).get('/gone').catch((e) => e)) as HttpError;
    expect(err).toBeInstanceOf(HttpError);
    expect(err.status).toBe(404);
    expect(s.seen.length).toBe(1);
    await s.close();
  });
});

describe('a base_url that cannot be right', () => {
  test('a host that does not exist is a config error naming base_url, not retried', async () => {
    const c = new CircleCIClient({ baseUrl: 'http://no-such-host.invalid/api/v2', token: 'secret-token-123', maxConcurrency: 1, policy: fastPolicy });
    const err = (await c.get('/me').catch((e) => e)) as ConnectorError;
    expect(err.failureType).toBe('config_error');
    expect(err.message).toMatch(/host of base_url \(no-such-host.invalid\) does not exist/);
    expect(c.requests).toBe(1);
  });
});

describe('the token goes to the base_url host only', () => {
  test('a redirect to another host is followed without Circle-Token', async () => {
    const other = await serve((_req, res) => json(res, 200, { there: true }), '127.0.0.2');
    const s = await serve((_req, res) => {
      res.writeHead(302, { location: `${other.url}/elsewhere` });
      res.end();
    });
    expect(await client(s.url).get('/moved')).toEqual({ there: true });
    expect(s.seen[0].headers['circle-token']).toBe('secret-token-123');
    expect(other.seen[0].headers['circle-token']).toBeUndefined();
    await Promise.all([s.close(), other.close()]);
  });
});

/** What an error message may quote of a server's reply (src/circleci/excerpt.ts). */
import { MAX_EXCERPT, serverExcerpt } from '../src/circleci/excerpt.js';
import { registerSecret } from '../src/redact.js';

const json = (body: unknown) => serverExcerpt(body, JSON.stringify(body), 'application/json');

describe('serverExcerpt', () => {
  test('CircleCI\'s JSON message is quoted as it is', () => {
    expect(json({ message: 'Project not found' })).toBe('Project not found');
    expect(json({ error: 'Invalid page token' })).toBe('Invalid page token');
  });

  test('a long, multi-line message becomes one line of at most MAX_EXCERPT characters', () => {
    const trace = `IllegalStateException: store down\n${'\tat com.example.Store.read(Store.java:1)\n'.repeat(50)}`;
    const e = json({ message: trace });
    expect(e).not.toMatch(/[\n\t]/);
    expect(e.length).toBeLessThanOrEqual(MAX_EXCERPT);
    expect(e).toMatch(/^IllegalStateException: store down at com\.example\.Store\.read/);
    expect(e.endsWith('…')).toBe(true);
  });

  test('a web page, bare or inside the JSON message, is named and not quoted', () => {
    expect(serverExcerpt(undefined, '<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>', 'text/html')).toBe('an HTML page');
    expect(serverExcerpt(undefined, 'Bad gateway', 'text/html; charset=utf-8')).toBe('an HTML page');
    expect(json({ message: '<html><title>Sign in</title></html>' })).toBe('an HTML page');
  });

  test('a plain-text body is quoted on one line; a JSON body without a message is not quoted', () => {
    expect(serverExcerpt(undefined, 'upstream connect error\nreset reason: overflow', 'text/plain')).toBe('upstream connect error reset reason: overflow');
    expect(json({ status: 'error', trace_id: 'abc', internal: { shard: 7 } })).toBe('');
    expect(serverExcerpt(undefined, '', null)).toBe('');
  });

  test('nothing that could be the token: the token, token-shaped runs, echoed headers', () => {
    registerSecret('excerpt-secret-0123456789');
    expect(json({ message: 'bad token excerpt-secret-0123456789 given' })).toBe('bad token **** given');
    expect(json({ message: 'key 0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4 is revoked' })).toBe('key **** is revoked');
    expect(serverExcerpt(undefined, 'GET /me HTTP/1.1\r\nCircle-Token: CCIPAT_abc\r\n', 'text/plain')).toBe('a reply that quotes request headers');
    // Ordinary words and ids stay.
    expect(json({ message: 'Pipeline 64f4fd25-1c2b-4a3d-9e8f-f5451f14781e not found' })).toBe('Pipeline 64f4fd25-1c2b-4a3d-9e8f-f5451f14781e not found');
  });
});

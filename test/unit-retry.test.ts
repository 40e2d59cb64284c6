import { DEFAULT_RETRY_POLICY, backoffMs, serverWaitMs } from '../src/circleci/retry.js';

const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n.toLowerCase()] ?? null });
const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1000, maxDelayMs: 8000 };

describe('retry policy', () => {
  test('backoff doubles, is capped, and jitters within [50%, 100%] of the step', () => {
    expect(backoffMs(policy, 1, () => 1)).toBe(1000);
    expect(backoffMs(policy, 1, () => 0)).toBe(500);
    expect(backoffMs(policy, 3, () => 1)).toBe(4000);
    expect(backoffMs(policy, 10, () => 1)).toBe(8000);
    expect(backoffMs(policy, 10, () => 0)).toBe(4000);
  });

  test('Retry-After in seconds and as an HTTP date', () => {
    expect(serverWaitMs(policy, headers({ 'retry-after': '3' }))).toBe(3000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(serverWaitMs(policy, headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5000);
  });

  test('RateLimit-Reset and X-RateLimit-Reset when Retry-After is missing', () => {
    expect(serverWaitMs(policy, headers({ 'ratelimit-reset': '2' }))).toBe(2000);
    expect(serverWaitMs(policy, headers({ 'x-ratelimit-reset': '4' }))).toBe(4000);
    const now = 1_800_000_000_000;
    expect(serverWaitMs(policy, headers({ 'x-ratelimit-reset': String(now / 1000 + 6) }), now)).toBe(6000);
  });

  test('no hint means the caller backs off exponentially; absurd waits are capped', () => {
    expect(serverWaitMs(policy, headers({}))).toBeUndefined();
    expect(serverWaitMs(policy, headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(serverWaitMs(policy, headers({ 'retry-after': '999999' }))).toBe(40000);
    expect(serverWaitMs(policy, headers({ 'retry-after': '-5' }))).toBe(0);
  });

  test('429, 5xx and timeouts are retried; other 4xx are final', () => {
    for (const s of [408, 429, 500, 502, 503, 504]) expect(DEFAULT_RETRY_POLICY.retryStatuses).toContain(s);
    for (const s of [400, 401, 403, 404]) expect(DEFAULT_RETRY_POLICY.retryStatuses).not.toContain(s);
  });
});

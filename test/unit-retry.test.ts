import { DEFAULT_RETRY_POLICY, backoffMs, serverWaitMs } from '../src/circleci/retry.js';
import { parseConfig } from '../src/config.js';

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

describe('retry timing from the environment (docs/retry-timing.md)', () => {
  const base = { token: 'abcdef123456', project_slugs: ['gh/acme/api'] };
  const NOW = new Date('2026-11-27T12:00:00Z');
  const policyFor = (baseUrl: string | undefined, env: Record<string, string>) => {
    const c = parseConfig({ ...base, ...(baseUrl ? { base_url: baseUrl } : {}) }, NOW, env);
    return { policy: { ...DEFAULT_RETRY_POLICY, ...c.retryTiming }, warnings: c.warnings };
  };
  const retryAfter30 = { get: (n: string) => (n === 'retry-after' ? '30' : null) };

  test('SOURCE_CIRCLECI_BACKOFF_SCALE shrinks our waits and the server\'s against a loopback base_url (the mock)', () => {
    const { policy, warnings } = policyFor('http://127.0.0.1:8080/api/v2', { SOURCE_CIRCLECI_BACKOFF_SCALE: '0.01' });
    expect(backoffMs(policy, 1, () => 1)).toBe(10);
    expect(serverWaitMs(policy, retryAfter30)).toBe(300);
    expect(warnings).toEqual([]);
  });

  test.each([undefined, 'https://circleci.example.com/api/v2'])('against %s it is ignored, with a warning: waits and Retry-After in full', (url) => {
    const { policy, warnings } = policyFor(url, { SOURCE_CIRCLECI_BACKOFF_SCALE: '0.01' });
    expect(backoffMs(policy, 1, () => 1)).toBe(1000);
    expect(serverWaitMs(policy, retryAfter30)).toBe(30_000);
    expect(warnings).toEqual([expect.stringMatching(/SOURCE_CIRCLECI_BACKOFF_SCALE is set but ignored.*test setting.*Unset it/)]);
  });

  test('SOURCE_CIRCLECI_TIMEOUT_MS is a supported setting, for any host', () => {
    expect(policyFor(undefined, { SOURCE_CIRCLECI_TIMEOUT_MS: '120000' }).policy.timeoutMs).toBe(120_000);
    expect(policyFor('http://127.0.0.1:8080/api/v2', { SOURCE_CIRCLECI_TIMEOUT_MS: '250' }).policy.timeoutMs).toBe(250);
    expect(policyFor(undefined, {}).policy.timeoutMs).toBe(60_000);
  });

  test.each([
    [{ SOURCE_CIRCLECI_TIMEOUT_MS: '5s' }, /SOURCE_CIRCLECI_TIMEOUT_MS is "5s".*whole number of milliseconds from 100 to 600000/],
    [{ SOURCE_CIRCLECI_TIMEOUT_MS: '0' }, /SOURCE_CIRCLECI_TIMEOUT_MS is "0"/],
    [{ SOURCE_CIRCLECI_TIMEOUT_MS: '3600000' }, /SOURCE_CIRCLECI_TIMEOUT_MS is "3600000"/],
    [{ SOURCE_CIRCLECI_BACKOFF_SCALE: 'fast' }, /SOURCE_CIRCLECI_BACKOFF_SCALE is "fast".*above 0 and at most 1/],
    [{ SOURCE_CIRCLECI_BACKOFF_SCALE: '0' }, /SOURCE_CIRCLECI_BACKOFF_SCALE is "0"/],
  ])('%j is a config error naming the variable and the fix', (env, message) => {
    expect(() => policyFor('http://127.0.0.1:8080/api/v2', env)).toThrow(message);
  });

  test('empty variables count as unset', () => {
    expect(policyFor(undefined, { SOURCE_CIRCLECI_TIMEOUT_MS: '', SOURCE_CIRCLECI_BACKOFF_SCALE: ' ' })).toEqual({ policy: { ...DEFAULT_RETRY_POLICY, scale: 1 }, warnings: [] });
  });
});

import { onStop } from './stop.js';

/**
 * The one retry policy: which outcomes are retried, how long to wait, when to give up.
 * Data, not scattered ifs, so it is read in one place and tests can pass their own.
 */
export interface RetryPolicy {
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** Give up once this much time has passed since the first attempt. */
  maxElapsedMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Per attempt: no answer within this time counts as a transient failure. */
  timeoutMs: number;
  retryStatuses: readonly number[];
  /** Attempts for a 404 on data that should exist (RequestOptions.mustExist); any other 404 is final at once. */
  notFoundAttempts: number;
}

/** SOURCE_CIRCLECI_BACKOFF_SCALE shrinks every wait (tests run with 0.01); it never changes what is retried. */
const scale = (() => {
  const v = Number(process.env.SOURCE_CIRCLECI_BACKOFF_SCALE);
  return Number.isFinite(v) && v > 0 ? v : 1;
})();

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 10,
  maxElapsedMs: 15 * 60_000,
  baseDelayMs: 1_000,
  maxDelayMs: 60_000,
  timeoutMs: Number(process.env.SOURCE_CIRCLECI_TIMEOUT_MS) || 60_000,
  retryStatuses: [408, 429, 500, 502, 503, 504],
  notFoundAttempts: 3,
};

/** Capped exponential backoff with jitter in [50%, 100%] of the step, so parallel retries spread out. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step * (0.5 + random() / 2) * scale);
}

type Headers = { get(name: string): string | null };

/**
 * How long the server asked us to wait: Retry-After (seconds or an HTTP date), else
 * RateLimit-Reset / X-RateLimit-Reset (seconds to the window's reset), capped by the policy.
 */
export function serverWaitMs(policy: RetryPolicy, headers: Headers, now: number = Date.now()): number | undefined {
  const retryAfter = headers.get('retry-after');
  let ms: number | undefined;
  if (retryAfter !== null && retryAfter.trim() !== '') {
    const secs = Number(retryAfter);
    ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - now;
  } else {
    for (const name of ['ratelimit-reset', 'x-ratelimit-reset']) {
      const v = Number(headers.get(name));
      // Some servers send an epoch timestamp here rather than seconds to go.
      if (headers.get(name) !== null && Number.isFinite(v)) ms = v > 1e9 ? v * 1000 - now : v * 1000;
      if (ms !== undefined) break;
    }
  }
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  return Math.round(Math.min(Math.max(ms, 0), policy.maxDelayMs * 5) * scale);
}

/**
 * Waits `ms`, or until `signal` aborts. An abort listener added after the signal fired never runs,
 * so an aborted signal ends the wait at once; the hook goes when the wait ends (see stop.ts).
 */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      unhook();
      resolve();
    };
    const t = setTimeout(done, ms);
    const unhook = onStop(signal, done);
  });

import { configError } from '../errors.js';
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
  /** Every wait, ours and the server's, is multiplied by this (1; tests against the mock shrink it). */
  scale?: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 10,
  maxElapsedMs: 15 * 60_000,
  baseDelayMs: 1_000,
  maxDelayMs: 60_000,
  timeoutMs: 60_000,
  retryStatuses: [408, 429, 500, 502, 503, 504],
  notFoundAttempts: 3,
};

/** What the environment may change in the policy (docs/retry-timing.md), and what to tell the user. */
export interface EnvTiming {
  timing: Pick<RetryPolicy, 'scale'> & Partial<Pick<RetryPolicy, 'timeoutMs'>>;
  warnings: string[];
}

const TIMEOUT_RANGE = [100, 600_000] as const;

/**
 * The two timing variables. SOURCE_CIRCLECI_TIMEOUT_MS (the per-request timeout) is a supported
 * setting. SOURCE_CIRCLECI_BACKOFF_SCALE is a test hook: it shrinks CircleCI's own Retry-After
 * too, so it is honoured only against a loopback base_url (the mock); a copy left in a hosted
 * platform's environment must not make the connector hammer a rate-limited API.
 */
export function timingFromEnv(env: Record<string, string | undefined>, loopback: boolean): EnvTiming {
  const out: EnvTiming = { timing: { scale: 1 }, warnings: [] };
  const timeout = env.SOURCE_CIRCLECI_TIMEOUT_MS?.trim();
  if (timeout) {
    const ms = Number(timeout);
    if (!/^\d+$/.test(timeout) || ms < TIMEOUT_RANGE[0] || ms > TIMEOUT_RANGE[1]) {
      throw configError(
        `The environment variable SOURCE_CIRCLECI_TIMEOUT_MS is ${JSON.stringify(timeout)}: set it to a whole number of milliseconds ` +
          `from ${TIMEOUT_RANGE[0]} to ${TIMEOUT_RANGE[1]} (how long one request may go unanswered; default 60000), or unset it.`,
      );
    }
    out.timing.timeoutMs = ms;
  }
  const scale = env.SOURCE_CIRCLECI_BACKOFF_SCALE?.trim();
  if (scale) {
    if (!loopback) {
      out.warnings.push(
        'SOURCE_CIRCLECI_BACKOFF_SCALE is set but ignored: it is a test setting, honoured only when base_url is this machine (localhost, 127.x.x.x, ::1). ' +
          'Retry waits, and the waits CircleCI asks for, are kept in full. Unset it to silence this warning.',
      );
    } else {
      const v = Number(scale);
      if (!Number.isFinite(v) || v <= 0 || v > 1) {
        throw configError(`The environment variable SOURCE_CIRCLECI_BACKOFF_SCALE is ${JSON.stringify(scale)}: set it to a number above 0 and at most 1 (0.01 makes every retry wait 100 times shorter), or unset it.`);
      }
      out.timing.scale = v;
    }
  }
  return out;
}

/** Capped exponential backoff with jitter in [50%, 100%] of the step, so parallel retries spread out. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step * (0.5 + random() / 2) * (policy.scale ?? 1));
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
  return Math.round(Math.min(Math.max(ms, 0), policy.maxDelayMs * 5) * (policy.scale ?? 1));
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

import type { Limiter } from './limiter.js';
import { sleep } from './retry.js';

type Headers = { get(name: string): string | null };

/** Below this share of the quota, requests are paced at the rate the quota comes back. */
const PACE_BELOW = 0.1;

/**
 * Keeps the crawl close to CircleCI's rate limit without crossing it: spreads requests out when
 * RateLimit-Remaining runs low, pauses everyone when a 429 says to wait, halves the concurrency
 * on 429 and adds one back per window of successes (AIMD).
 */
export class RateGovernor {
  private pauseUntil = 0;
  private nextStart = 0;
  private intervalMs = 0;
  private successes = 0;
  private lastDecrease = 0;

  constructor(
    private readonly limiter: Limiter,
    private readonly max: number,
    private readonly onPause?: (untilMs: number) => void,
  ) {}

  /** Waits until a request may start, or until `signal` aborts (a pause may last minutes). */
  async gate(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) return;
      const now = Date.now();
      const at = Math.max(this.pauseUntil, this.nextStart);
      if (at <= now) break;
      await sleep(at - now, signal);
    }
    this.nextStart = Date.now() + this.intervalMs;
  }

  /** Everyone waits until `ms` from now (a 429's Retry-After applies to the whole token). */
  pause(ms: number): void {
    const until = Date.now() + ms;
    if (until <= this.pauseUntil) return;
    this.pauseUntil = until;
    this.onPause?.(until);
  }

  observe(status: number | undefined, headers: Headers | undefined): void {
    if (headers) this.pace(headers);
    if (status === 429) {
      const now = Date.now();
      // One decrease per burst of 429s: the requests in flight all see the same exhaustion.
      if (now - this.lastDecrease > 1000) {
        this.limiter.setLimit(Math.max(1, Math.floor(this.limiter.current / 2)));
        this.lastDecrease = now;
      }
      this.successes = 0;
    } else if (status !== undefined && status < 400 && this.limiter.current < this.max) {
      if (++this.successes >= this.limiter.current) {
        this.limiter.setLimit(this.limiter.current + 1);
        this.successes = 0;
      }
    }
  }

  get concurrency(): number {
    return this.limiter.current;
  }

  private pace(headers: Headers): void {
    // Where both header families are sent, the tighter one applies.
    const lowest = (names: string[]) => {
      const values = names.map((n) => headers.get(n)).filter((v): v is string => v !== null && v.trim() !== '').map(Number).filter(Number.isFinite);
      return values.length ? Math.min(...values) : undefined;
    };
    const limit = lowest(['ratelimit-limit', 'x-ratelimit-limit']);
    const remaining = lowest(['ratelimit-remaining', 'x-ratelimit-remaining']);
    let reset = lowest(['ratelimit-reset', 'x-ratelimit-reset']);
    if (limit === undefined || remaining === undefined || reset === undefined || limit <= 0) {
      this.intervalMs = 0;
      return;
    }
    if (reset > 1e9) reset = Math.max(0, reset - Date.now() / 1000); // an epoch, not seconds to go
    // The spent part of the quota (limit - remaining) comes back within `reset` seconds: pacing at
    // that rate spends the quota as fast as it returns, never faster.
    this.intervalMs = remaining <= limit * PACE_BELOW ? Math.min((reset * 1000) / Math.max(limit - remaining, 1), 60_000) : 0;
  }
}

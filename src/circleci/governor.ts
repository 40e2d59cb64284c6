import type { Limiter } from './limiter.js';
import { onStop } from './stop.js';

type Headers = { get(name: string): string | null };

/** Below this share of the quota, requests are paced so that the quota lasts until it comes back. */
const PACE_BELOW = 0.1;

/**
 * Keeps the crawl close to CircleCI's rate limit without crossing it: spreads requests out when
 * RateLimit-Remaining runs low, pauses everyone when a 429 says to wait, halves the concurrency
 * on 429 and adds one back per window of successes (AIMD).
 */
export class RateGovernor {
  private pauseUntil = 0;
  private lastStart = 0;
  private intervalMs = 0;
  /** Gates waiting for their turn: woken when the pacing loosens (a new window, say). */
  private readonly waiting = new Set<() => void>();
  private successes = 0;
  /** Requests sent and not yet answered: they spend quota that no header counts yet. */
  private inFlight = 0;
  private lastDecrease = 0;
  /** The last rate-limit headers seen: remaining, when the quota resets, when seen (epoch ms). */
  private last?: { remaining: number; resetAt: number; at: number };
  /**
   * How the quota comes back, as seen so far: 'bucket' when it flowed back before its reset,
   * 'window' when a second passed with none back (all of it returns when the window ends).
   */
  private model: 'unknown' | 'window' | 'bucket' = 'unknown';

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
      // The interval as it is now, not as it was when the previous request started.
      const at = Math.max(this.pauseUntil, this.lastStart + this.intervalMs);
      if (at <= now) break;
      await this.wait(at - now, signal);
    }
    this.lastStart = Date.now();
  }

  /** Sleeps `ms`, or less when the pacing loosens or `signal` aborts. */
  private wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(done);
        unhook();
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting.add(done);
      const unhook = onStop(signal, done);
    });
  }

  /** Sends one request (after `gate`), counting it as in flight until it is answered. */
  async sent<T>(request: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await request();
    } finally {
      this.inFlight--;
    }
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
    if (limit === undefined || remaining === undefined || reset === undefined || limit <= 0) return this.setInterval(0);
    const now = Date.now();
    if (reset > 1e9) reset = Math.max(0, reset - now / 1000); // an epoch, not seconds to go
    const resetAt = now + reset * 1000;
    if (this.last && resetAt <= this.last.resetAt + 1500) {
      // Same window (a new one would move the reset a window on). More quota than before, by more
      // than requests in flight can explain (answers overtaking each other): it flows back.
      if (remaining > this.last.remaining + this.limiter.running) this.model = 'bucket';
      else if (this.model === 'unknown' && remaining <= this.last.remaining && now - this.last.at >= 1000) this.model = 'window';
    }
    this.last = { remaining, resetAt, at: now };
    // What is left to start: the header does not yet count the requests still in flight (on a
    // busy machine their answers are read late, and pacing on the header alone overshot a window).
    const available = Math.max(0, remaining - this.inFlight);
    this.setInterval(available > limit * PACE_BELOW ? 0 : this.paceMs(limit, available, reset));
  }

  private setInterval(ms: number): void {
    const before = this.intervalMs;
    this.intervalMs = ms;
    if (ms < before) for (const wake of [...this.waiting]) wake();
  }

  private paceMs(limit: number, remaining: number, reset: number): number {
    // A bucket: the spent part (limit - remaining) comes back within `reset` seconds, so pacing at
    // that rate spends the quota as fast as it returns. A fixed window: nothing comes back until
    // the reset, so what remains is spread over the time left (at the bucket's rate the last 10%
    // would go about nine times too fast, and the window would end in 429s).
    // Never wait past the reset itself: the quota is back by then in either model. While the model
    // is unknown, wait at most a second: the next answer tells whether any came back meanwhile.
    const share = this.model === 'bucket' ? limit - remaining : remaining;
    return Math.min((reset * 1000) / Math.max(share, 1), reset * 1000, this.model === 'unknown' ? 1000 : 60_000);
  }
}

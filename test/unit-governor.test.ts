import { RateGovernor } from '../src/circleci/governor.js';
import { Limiter } from '../src/circleci/limiter.js';

const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n.toLowerCase()] ?? null });

describe('the limiter', () => {
  test('never runs more tasks at once than its limit, and follows a lowered limit', async () => {
    const limiter = new Limiter(3);
    let active = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const task = () => limiter.run(async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise<void>((r) => release.push(r));
      active--;
    });
    const all = Array.from({ length: 10 }, task);
    await new Promise((r) => setImmediate(r));
    expect(active).toBe(3);
    limiter.setLimit(1);
    // Finish the three running tasks: only one may start in their place.
    for (const r of release.splice(0)) r();
    await new Promise((r) => setImmediate(r));
    expect(active).toBe(1);
    while (release.length || active) {
      for (const r of release.splice(0)) r();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(peak).toBe(3);
  });
});

describe('the rate governor', () => {
  test('halves concurrency on a burst of 429s once, then adds one back per window of successes', () => {
    const limiter = new Limiter(16);
    const g = new RateGovernor(limiter, 16);
    g.observe(429, headers({}));
    g.observe(429, headers({}));
    g.observe(429, headers({}));
    expect(g.concurrency).toBe(8);
    for (let i = 0; i < 8; i++) g.observe(200, headers({}));
    expect(g.concurrency).toBe(9);
    for (let i = 0; i < 9; i++) g.observe(200, headers({}));
    expect(g.concurrency).toBe(10);
  });

  test('a 429 pauses every request until Retry-After, and says so once', async () => {
    const announced: number[] = [];
    const g = new RateGovernor(new Limiter(4), 4, (until) => announced.push(until));
    const before = Date.now();
    g.pause(150);
    g.pause(100); // an earlier end does not shorten the pause
    await g.gate();
    expect(Date.now() - before).toBeGreaterThanOrEqual(140);
    expect(announced).toHaveLength(1);
  });

  test('requests are spread out once RateLimit-Remaining runs low, and not before', async () => {
    const g = new RateGovernor(new Limiter(4), 4);
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '50', 'ratelimit-reset': '30' }));
    // Half the quota left: no pacing yet.
    let t = Date.now();
    await g.gate();
    await g.gate();
    expect(Date.now() - t).toBeLessThan(50);
    // 8 left of 100 (the lower of the two families), reset in 1.6 s. Nothing says the quota flows
    // back before then, so it may come back only at the reset (a fixed window): the 8 are spread
    // over the 1.6 s, one every 200 ms.
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '8', 'x-ratelimit-remaining': '9', 'ratelimit-reset': '1.6' }));
    await g.gate();
    t = Date.now();
    await g.gate();
    await g.gate();
    expect(Date.now() - t).toBeGreaterThanOrEqual(390);
  });

  test('once the quota is seen flowing back before its reset (a token bucket), it is paced at the rate it returns', async () => {
    const g = new RateGovernor(new Limiter(4), 4);
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '0', 'ratelimit-reset': '10' }));
    // 9 more than before (more than the 4 in flight can explain), and the reset no later: it flows
    // back. The 95 spent come back within 9.5 s: one request every 100 ms, not every 1.9 s.
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '5', 'ratelimit-reset': '9.5' }));
    await g.gate();
    const t = Date.now();
    await g.gate();
    await g.gate();
    expect(Date.now() - t).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t).toBeLessThan(1900);
  });

  test('a gate waiting out a slow pace starts at once when the quota comes back, and wakes on abort', async () => {
    const g = new RateGovernor(new Limiter(4), 4);
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '1', 'ratelimit-reset': '60' }));
    await g.gate();
    let passed = false;
    const waiting = g.gate().then(() => (passed = true));
    await new Promise((r) => setImmediate(r));
    expect(passed).toBe(false);
    // A new window: the whole quota is back.
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '99', 'ratelimit-reset': '60' }));
    await waiting;
    expect(passed).toBe(true);
    // A pause of minutes ends at once when the sync is stopped.
    const stop = new AbortController();
    g.pause(300_000);
    const paused = g.gate(stop.signal);
    stop.abort();
    await paused;
  });
});

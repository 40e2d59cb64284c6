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
    // 5 left of 100 (the lower of the two families), the 95 spent come back within 9.5 s: one request every 100 ms.
    g.observe(200, headers({ 'ratelimit-limit': '100', 'ratelimit-remaining': '5', 'x-ratelimit-remaining': '7', 'ratelimit-reset': '9.5' }));
    await g.gate();
    t = Date.now();
    await g.gate();
    await g.gate();
    expect(Date.now() - t).toBeGreaterThanOrEqual(190);
  });
});

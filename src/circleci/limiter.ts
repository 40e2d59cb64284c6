/**
 * One global limit on requests in flight, shared by every project and every level of the tree.
 * Waiting requests go in priority order (lowest first, then first come): the crawler gives the
 * requests of the pipelines listed earliest precedence, so pipelines finish in the order they were listed and
 * checkpoints keep up. The rate governor moves the limit (down on 429, back up on success).
 */
interface Waiter {
  priority: number;
  order: number;
  start: () => void;
}

export class Limiter {
  private active = 0;
  private arrivals = 0;
  private readonly heap: Waiter[] = [];

  constructor(private limit: number) {}

  get current(): number {
    return this.limit;
  }

  /** Tasks running now. */
  get running(): number {
    return this.active;
  }

  setLimit(limit: number): void {
    this.limit = Math.max(1, limit);
    while (this.active < this.limit && this.heap.length) {
      this.active++;
      this.pop().start();
    }
  }

  async run<T>(task: () => Promise<T>, priority = 0): Promise<T> {
    // A released slot passes straight to the next waiter, so the limit is never overshot.
    if (this.active >= this.limit) await new Promise<void>((start) => this.push({ priority, order: this.arrivals++, start }));
    else this.active++;
    try {
      return await task();
    } finally {
      if (this.active <= this.limit && this.heap.length) this.pop().start();
      else this.active--;
    }
  }

  private before(a: Waiter, b: Waiter): boolean {
    return a.priority < b.priority || (a.priority === b.priority && a.order < b.order);
  }

  private push(w: Waiter): void {
    const h = this.heap;
    h.push(w);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private pop(): Waiter {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

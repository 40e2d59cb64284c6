/**
 * Deterministic randomness for the mock CircleCI world and server.
 *
 * Everything the mock generates comes from small seeded generators, so the same seed (and the
 * same initial clock) always produces the same pipelines, ids, timings and fault decisions.
 */

/** A 32-bit hash of a list of numbers and strings (murmur3-style mixing). */
export function hash32(...parts: (number | string)[]): number {
  let h = 0x9e3779b9 ^ parts.length;
  const mix = (k: number): void => {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  };
  for (const part of parts) {
    if (typeof part === 'number') {
      // Numbers up to 2^53: mix the low and the high 32 bits.
      mix(part | 0);
      mix(Math.floor(part / 0x100000000) | 0);
    } else {
      mix(0x5f5f5f5f);
      for (let i = 0; i < part.length; i++) mix(part.charCodeAt(i));
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const HEX = '0123456789abcdef';

/** sfc32, seeded through splitmix32: fast, small state, good enough for test data. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = split();
    for (let i = 0; i < 8; i++) this.u32();
  }

  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  next(): number {
    return this.u32() / 0x100000000;
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** Picks a value by relative weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of choices) total += w;
    let r = this.next() * total;
    for (const [value, w] of choices) {
      r -= w;
      if (r < 0) return value;
    }
    return choices[choices.length - 1][0];
  }

  /** An exponentially distributed value with the given mean. */
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  /** n lowercase hex digits. */
  hex(n: number): string {
    let out = '';
    while (out.length < n) {
      let v = this.u32();
      for (let i = 0; i < 8 && out.length < n; i++) {
        out += HEX[v & 15];
        v >>>= 4;
      }
    }
    return out;
  }

  /** A random (version 4, RFC 4122 variant) UUID. */
  uuid(): string {
    const h8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');
    const a = h8(this.u32());
    const b = h8((this.u32() & 0xffff0fff) | 0x00004000);
    const c = h8((this.u32() & 0x3fffffff) | 0x80000000);
    const d = h8(this.u32());
    return `${a}-${b.slice(0, 4)}-${b.slice(4)}-${c.slice(0, 4)}-${c.slice(4)}${d}`;
  }
}

/** A deterministic UUID for a name (for stable user and organisation ids). */
export function uuidFor(...parts: (number | string)[]): string {
  return new Rng(hash32(...parts)).uuid();
}

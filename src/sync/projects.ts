import picomatch from 'picomatch';
import type { Config } from '../config.js';

/**
 * Which projects this connection syncs: the listed ones and the discovered ones, less the
 * excluded, and of those the share `partition` gives it. Pure, so each rule is tested in-process.
 */

export interface ProjectSelection {
  /** The projects to sync, listed ones first. */
  slugs: string[];
  /** Found by discovery and not listed: one that has gone by the time it is read is a WARN, not a failure. */
  discovered: Set<string>;
  excluded: number;
  /** Projects that belong to another connection's partition. */
  elsewhere: number;
}

/**
 * FNV-1a (32 bits) of the slug: the same number on every machine and version, so a project never
 * moves between connections, and a new one lands in exactly one.
 */
export function partitionOf(slug: string, count: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(slug, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}

type Scope = Pick<Config, 'excludeProjects' | 'partition'>;

export const excluder = (config: Scope): ((slug: string) => boolean) =>
  config.excludeProjects.length ? picomatch(config.excludeProjects, { dot: true, nocase: true }) : () => false;
const elsewhere = (config: Scope, slug: string): boolean => !!config.partition && partitionOf(slug, config.partition.count) !== config.partition.index;

export function selectProjects(config: Pick<Config, 'projectSlugs'> & Scope, discovered: readonly string[]): ProjectSelection {
  const listed = new Set(config.projectSlugs);
  const all = [...new Set([...config.projectSlugs, ...discovered])];
  const isExcluded = excluder(config);
  const kept = all.filter((s) => !isExcluded(s));
  const mine = kept.filter((s) => !elsewhere(config, s));
  return {
    slugs: mine,
    discovered: new Set(mine.filter((s) => !listed.has(s))),
    excluded: all.length - kept.length,
    elsewhere: kept.length - mine.length,
  };
}

/** Whether a slug this connection's state holds is still one it is meant to sync, or excluded or elsewhere by choice. */
export function outOfScope(config: Scope, slug: string): boolean {
  return excluder(config)(slug) || elsewhere(config, slug);
}

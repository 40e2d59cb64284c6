import { configError } from '../errors.js';
import type { Json } from './stream.js';

/** What CircleCI's Insights keep (its documentation and the API's own limit on start-date). */
export const INSIGHTS_KEEP_MS = 90 * 86_400_000;
/**
 * How far inside the 90 days the oldest start-date sent sits: the time between reading
 * CircleCI's clock and the request reaching it, so the request is never refused as too old.
 * Costs the runs of the oldest ten minutes, on a first sync only (they expire minutes later).
 */
export const EDGE_MARGIN_MS = 10 * 60_000;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The start-date of a runs request: `since`, but never older than what Insights keep (by CircleCI's
 * clock `now`, less the margin).
 */
export const startDate = (since: number, now: number): number => Math.max(since, now - INSIGHTS_KEEP_MS + EDGE_MARGIN_MS);

/** Every key with its hyphens as underscores (time-wasted → time_wasted); an underscored key wins over its hyphenated twin. */
export function underscored(item: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(item)) if (k.includes('-')) out[k.replace(/-/g, '_')] = v;
  for (const [k, v] of Object.entries(item)) if (!k.includes('-')) out[k] = v;
  return out;
}

/** The objects of a list that CircleCI may name with hyphens or underscores ("flaky-tests" or "flaky_tests"). */
export function listIn(body: unknown, key: string, endpoint: string): Json[] {
  const list = isObject(body) ? (body[key] ?? body[key.replace(/_/g, '-')]) : undefined;
  if (!Array.isArray(list)) {
    throw configError(
      `GET ${endpoint} answered without a "${key}" list. Check that base_url points at the CircleCI API v2 root ` +
        '(https://circleci.com/api/v2, or https://<your CircleCI Server>/api/v2).',
      'unexpected response shape',
    );
  }
  return list.filter(isObject);
}

export { isObject };

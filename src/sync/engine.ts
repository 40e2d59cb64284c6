import { CircleCIClient, type RetryEvent } from '../circleci/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../circleci/retry.js';
import type { Config } from '../config.js';
import { configError } from '../errors.js';
import { crawl, projectExists, tokenAccepted, tokenRejected, type Selection, type SyncSink } from './crawler.js';
import type { SyncState } from './state.js';

/** What both faces share: building the client, checking a connection, running a sync. */

export function makeClient(config: Config, sink?: Pick<SyncSink, 'log'>, policy: RetryPolicy = DEFAULT_RETRY_POLICY): CircleCIClient {
  return new CircleCIClient({
    baseUrl: config.baseUrl,
    token: config.token,
    maxConcurrency: config.maxConcurrency,
    policy,
    onRetry: (e: RetryEvent) =>
      void sink?.log(
        'WARN',
        `GET ${e.endpoint}: ${e.rateLimited ? 'rate limited' : e.reason}; retry ${e.attempt} in ${(e.waitMs / 1000).toFixed(1)} s.`,
      ),
  });
}

/** `check` must answer quickly: a few tries, not the sync's patience. */
const CHECK_POLICY: RetryPolicy = { ...DEFAULT_RETRY_POLICY, maxAttempts: 3, maxElapsedMs: 30_000, timeoutMs: Math.min(DEFAULT_RETRY_POLICY.timeoutMs, 30_000) };

/** GET /me, then every project; throws a config error naming what is wrong. */
export async function checkConnection(config: Config): Promise<void> {
  const client = makeClient(config, undefined, CHECK_POLICY);
  if (!(await tokenAccepted(client))) throw tokenRejected();
  const missing: string[] = [];
  for (const slug of config.projectSlugs) if (!(await projectExists(client, slug))) missing.push(slug);
  if (missing.length) {
    throw configError(
      `${missing.length === 1 ? 'Project' : 'Projects'} ${missing.map((s) => `"${s}"`).join(', ')} not found, or not accessible with this token (404 on GET /project/{slug}). ` +
        'Check the slugs in "project_slugs" (copy them from the project settings in CircleCI) and that the token\'s user follows the projects.',
    );
  }
}

export async function runSync(config: Config, selection: Map<string, Selection>, state: SyncState, sink: SyncSink, signal?: AbortSignal): Promise<void> {
  for (const w of config.warnings) await sink.log('WARN', w);
  const client = makeClient(config, sink);
  const started = Date.now();
  try {
    await crawl({ config, client, selection, state, sink, signal });
  } finally {
    await sink.log('INFO', `Sync finished after ${((Date.now() - started) / 1000).toFixed(1)} s and ${client.requests} requests.`);
  }
}

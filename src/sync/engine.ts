import { CircleCIClient, type RetryEvent } from '../circleci/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../circleci/retry.js';
import type { Config } from '../config.js';
import { configError } from '../errors.js';
import { projectExists, tokenAccepted, tokenRejected } from '../circleci/probes.js';
import { slugPath } from '../slug-path.js';
import { discoverProjects, type Org } from '../circleci/organizations.js';
import { perOrganization, streamByName } from '../streams/index.js';
import { crawl, type Selection, type SyncSink } from './crawler.js';
import { outOfScope, selectProjects } from './projects.js';
import type { SyncState } from './state.js';
import { readUsage } from './usage.js';
import { usageOrganizations } from './usage-orgs.js';
import type { UsageState } from './usage-state.js';

/** What both faces share: building the client, checking a connection, running a sync. */

export function makeClient(config: Config, sink?: Pick<SyncSink, 'log' | 'rateLimited'>, policy: RetryPolicy = DEFAULT_RETRY_POLICY, signal?: AbortSignal): CircleCIClient {
  let announcedUntil = 0;
  return new CircleCIClient({
    baseUrl: config.baseUrl,
    token: config.token,
    maxConcurrency: config.maxConcurrency,
    policy: { ...policy, ...config.retryTiming },
    signal,
    onRetry: (e: RetryEvent) =>
      void sink?.log(
        'WARN',
        `GET ${e.endpoint}: ${e.rateLimited ? 'rate limited' : e.reason}; retry ${e.attempt} in ${(e.waitMs / 1000).toFixed(1)} s.`,
      ),
    // Tell the platform why nothing is flowing, once per new wait, so its heartbeat does not give up.
    onRateLimited: (untilMs) => {
      if (untilMs - announcedUntil < 1000) return;
      announcedUntil = untilMs;
      void sink?.rateLimited?.(untilMs);
    },
  });
}

/** `check` must answer quickly: a few tries, not the sync's patience. */
const CHECK_POLICY: RetryPolicy = { ...DEFAULT_RETRY_POLICY, maxAttempts: 3, maxElapsedMs: 30_000, timeoutMs: 30_000 };

/**
 * GET /me, then every project; throws a config error naming what is wrong. `log` hears what
 * check can say about the usage stream (it has no catalog, so it does not know whether usage is
 * selected): which organizations a sync would export, and that it creates no export to find out.
 */
export async function checkConnection(config: Config, log?: (level: 'INFO' | 'WARN', message: string) => Promise<void> | void): Promise<void> {
  const client = makeClient(config, undefined, CHECK_POLICY);
  if (!(await tokenAccepted(client))) throw tokenRejected();
  // One discovery per organization (its projects are not probed one by one: they were just listed).
  const discovery = config.organizations.length ? await discoverProjects(client, config.organizations) : undefined;
  // Concurrent (the client keeps max_concurrency in flight): hundreds of projects answer in seconds.
  const found = await Promise.all(config.projectSlugs.map((slug) => projectExists(client, slug)));
  const missing = config.projectSlugs.filter((_, i) => !found[i]);
  if (missing.length) {
    throw configError(
      `${missing.length === 1 ? 'Project' : 'Projects'} ${missing.map((s) => `"${s}"`).join(', ')} not found, or not accessible with this token ` +
        `(404 on ${missing.map((s) => `GET /project/${slugPath(s)}`).join(', ')}). ` +
        'Check the slugs in "project_slugs" (copy them from the project settings in CircleCI) and that the token\'s user follows the projects.',
    );
  }
  if (log) await checkUsage(config, client, discovery?.organizations ?? [], log);
}

/**
 * What check can honestly say about usage export. CircleCI offers no read-only question for it (a
 * poll of a job that does not exist answers 404 whether the organization has usage export or
 * not), and creating an export to find out would spend one of the organization's 10 an hour and
 * start a query that runs for minutes: check creates none. It names the organizations a sync
 * would export; the first sync that selects usage says in one WARN where it is not available.
 */
async function checkUsage(config: Config, client: CircleCIClient, resolved: Org[], log: (level: 'INFO' | 'WARN', message: string) => Promise<void> | void): Promise<void> {
  const notes: string[] = [];
  const orgs = await usageOrganizations(config, client, resolved, (m) => void notes.push(m));
  for (const n of notes) await log('INFO', n);
  if (!orgs.length) return;
  await log(
    'INFO',
    `usage (an opt-in stream): a sync that selects it exports ${orgs.map((o) => o.name).join(', ')}. ` +
      'Whether an organization has usage export (CircleCI cloud, on a plan that includes it) is known only once an export is created, and check creates none ' +
      '(it would spend one of the 10 an hour CircleCI allows); the first sync says so in one WARN for an organization without it, and goes on.',
  );
}

/** The projects of this sync: listed and discovered, less the excluded, this connection's share. */
async function projectsOf(config: Config, client: CircleCIClient, state: SyncState, sink: SyncSink) {
  const discovery = config.organizations.length ? await discoverProjects(client, config.organizations) : { slugs: [], notes: [], organizations: [] as Org[] };
  for (const note of discovery.notes) await sink.log('INFO', note);
  const projects = selectProjects(config, discovery.slugs);
  if (config.organizations.length || config.partition || config.excludeProjects.length) {
    await sink.log(
      'INFO',
      `Syncing ${projects.slugs.length} projects (${config.projectSlugs.length} listed, ${discovery.slugs.length} discovered` +
        `${projects.excluded ? `, ${projects.excluded} excluded` : ''}${projects.elsewhere ? `, ${projects.elsewhere} in other partitions` : ''}).`,
    );
  }
  // Discovering: a project the state knows that is neither found nor left out by choice has gone,
  // or is no longer visible. Its state is kept (it may come back).
  const now = new Set(projects.slugs);
  const known = new Set(Object.entries(state).filter(([name]) => !isPerOrganization(name)).flatMap(([, s]) => Object.keys(s)));
  for (const slug of config.organizations.length ? known : []) {
    if (!now.has(slug) && !outOfScope(config, slug)) {
      await sink.log('WARN', `${slug}: in the state but not found now (deleted, archived, or no longer visible to the token); not synced, its state is kept in case it comes back.`);
    }
  }
  return { ...projects, organizations: discovery.organizations };
}

const isPerOrganization = (name: string): boolean => {
  const s = streamByName(name);
  return !!s && perOrganization(s);
};

export interface SyncOptions {
  signal?: AbortSignal;
  /** Called about twice a second with a one-line summary, for a person watching a terminal. */
  progress?: (line: string) => void;
}

export async function runSync(config: Config, selection: Map<string, Selection>, state: SyncState, sink: SyncSink, opts: SyncOptions = {}): Promise<void> {
  for (const w of config.warnings) await sink.log('WARN', w);
  const client = makeClient(config, sink, DEFAULT_RETRY_POLICY, opts.signal);
  const started = Date.now();
  const counts = new Map<string, number>();
  const counted: SyncSink = {
    ...sink,
    record: (stream, data) => {
      counts.set(stream, (counts.get(stream) ?? 0) + 1);
      return sink.record(stream, data);
    },
    checkpoint: sink.checkpoint.bind(sink),
    log: sink.log.bind(sink),
    status: sink.status.bind(sink),
    rateLimited: sink.rateLimited?.bind(sink),
  };
  const tick = () => {
    const secs = (Date.now() - started) / 1000;
    const records = [...counts].map(([s, n]) => `${s} ${n}`).join(' · ') || 'no records yet';
    opts.progress?.(`${records} · ${client.requests} requests (${(client.requests / Math.max(secs, 0.001)).toFixed(0)}/s, ${client.concurrency} in flight max) · ${secs.toFixed(0)} s`);
  };
  if (opts.progress) tick();
  const ticker = opts.progress && setInterval(tick, 500).unref();
  try {
    const projects = await projectsOf(config, client, state, sink);
    const out = opts.progress ? counted : sink;
    // The project tree (the crawler) and the per-organization usage reader run side by side: the
    // reader mostly waits for CircleCI's exports. An unselected usage stream costs nothing.
    const tree = new Map([...selection].filter(([name]) => !isPerOrganization(name)));
    const usage = selection.get('usage');
    const work: Promise<void>[] = [];
    if (tree.size) work.push(crawl({ config: { ...config, projectSlugs: projects.slugs }, client, selection: tree, state, sink: out, signal: opts.signal, discovered: projects.discovered }));
    if (usage) {
      work.push(
        (async () => {
          const orgs = await usageOrganizations(config, client, projects.organizations, (m) => sink.log('WARN', m));
          // Which day it is, by CircleCI's clock: ask it once if nothing has answered yet.
          if (client.firstAnswerAt === undefined && !(await tokenAccepted(client))) throw tokenRejected();
          const now = client.serverNow();
          await readUsage({ config, client, mode: usage.mode, schema: usage.schema, state: (state.usage ?? {}) as UsageState, sink: out, orgs, signal: opts.signal, now });
        })(),
      );
    }
    const results = await Promise.allSettled(work);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    if (ticker) clearInterval(ticker);
    await sink.log('INFO', `Sync finished after ${((Date.now() - started) / 1000).toFixed(1)} s and ${client.requests} requests.`);
  }
}

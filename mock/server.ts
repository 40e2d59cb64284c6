/**
 * A mock of the CircleCI API v2 routes the connector reads, served from a World over real HTTP.
 *
 * Routes (GET only, under /api/v2): /me, /project/{slug}, /project/{slug}/pipeline,
 * /project/{slug}/pipeline/{number}, /project/{slug}/job/{number}, /project/{slug}/{number}/tests,
 * /pipeline/{id}, /pipeline/{id}/workflow, /workflow/{id}, /workflow/{id}/job. Anything else: 404 Not Found.
 *
 * Page tokens are opaque: base64url(JSON) + "." + an HMAC of it, bound to the route and its query.
 * - Pipelines: {r:"pl", s: short slug, b: branch|null, n: N} = "the pipelines numbered below N",
 *   so paging while new pipelines arrive neither skips nor repeats (new ones only appear on page 1).
 * - Workflows: {r:"wf", p: pipeline id, o: offset}. Workflows are listed oldest first and reruns
 *   are appended, so an offset stays valid while the list grows.
 * - Jobs: {r:"jb", w: workflow id, o: offset}. A workflow's job list never changes length.
 * - Tests: {r:"ts", s: short slug, j: job number, o: offset}. A job's results are fixed once it ends.
 * A token that fails the check, or is used on another route/slug/branch/id: 404 {"message":"Not Found"}.
 *
 * Organization routes (same host and token; see orgRoutes.ts for their shapes):
 * /api/v2/me/collaborations, /api/v3/orgs, /api/v3/projects (cloud only: 404 with `server`),
 * /api/v1.1/projects (followed projects only).
 *
 * Insights routes (see insightsRoutes.ts): /api/v2/insights/{slug}/workflows,
 * /api/v2/insights/{slug}/workflows/{name}, /api/v2/insights/{slug}/flaky-tests.
 *
 * Usage Export API (same host and token; POST create, GET poll; see usageRoutes.ts): its parts are
 * served by a second loopback server, the storage host (storage.ts, MockServer.storageUrl).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Rng, hash32 } from './random.js';
import { parseSlug, type World } from './world.js';
import { orgRoutes } from './orgRoutes.js';
import { insightsRoutes, type InsightsKeyStyle } from './insightsRoutes.js';
import { matchUsage, usageRoutes, type UsageJobInfo, type UsageOptions } from './usageRoutes.js';
import { startStorage, type StorageLogEntry } from './storage.js';

export interface FaultOptions {
  rate500?: number;
  rate502Html?: number;
  rate503?: number;
  rate429?: number;
  /** Share of injected 429s sent without Retry-After. */
  retryAfterMissingShare?: number;
  /** Connection reset: the socket is destroyed without an answer. */
  rateReset?: number;
  /** 200 with a JSON body cut in the middle (Content-Length matches the cut body). */
  rateTruncated?: number;
  rateSlow?: number;
  /** Extra delay of slow responses; default 1500 ms. */
  slowMs?: number;
  /** Every request whose path (as sent, before decoding) matches fails with 500. */
  failPath?: RegExp;
  /** Every request whose path matches answers 404 Not Found: a job's details or results gone while its list is still there. */
  notFoundPath?: RegExp;
  /**
   * With notFoundPath: only the first this many requests of each matching path (as sent) answer
   * 404, then it answers as usual (the 404s CircleCI gives during an incident). Default: all.
   */
  notFoundTimes?: number;
}

export interface MockOptions {
  world: World;
  /** The accepted personal token; default 'test-token-0123456789abcdef'. */
  token?: string;
  host?: string;
  port?: number;
  /** Pipelines per page; default 20. */
  pageSize?: number;
  workflowPageSize?: number;
  /** Default 5, so jobs paginate. */
  jobPageSize?: number;
  /** Test results per page; default 20. */
  testPageSize?: number;
  /** Added to every response. */
  latencyMs?: number;
  faults?: FaultOptions;
  /** Seeds the fault decisions and page-token signatures; default 1. */
  seed?: number;
  /**
   * Per-token rate limit of perMinute requests. 'bucket' (default): a token bucket of that capacity
   * refilled continuously, RateLimit-Reset = seconds until it is full again. 'fixed': back-to-back
   * windows of 60 s from the token's first request, the whole quota back at each window's end,
   * RateLimit-Reset = seconds to the window's end.
   */
  rateLimit?: { perMinute: number; omitRetryAfter?: boolean; window?: 'bucket' | 'fixed'; /** The minute, shortened for tests; default 60. */ windowSeconds?: number };
  /** Omit the next_page_token key on the last page instead of sending null. */
  omitLastPageToken?: boolean;
  /** Workflow and job lookups for pipelines older than this answer 404 Not Found; the pipeline still lists. */
  retentionDays?: number;
  /** Accept the deprecated ?circle-token= query (default: 401 like the real API). */
  acceptQueryToken?: boolean;
  /** counters.log keeps about this many of the latest requests; default 20000. */
  logLimit?: number;
  /**
   * A clock that runs while the mock serves: N world seconds per wall second, applied in a step
   * before each request is answered, so pipelines arrive and workflows are rerun and finish
   * between one request and the next. 0 (default): the clock moves only by world.advance().
   */
  clockRate?: number;
  /**
   * The same, counted in requests instead of wall time: the clock moves this many world ms before
   * each request is answered, so a sync spans the same world time on a fast or a loaded machine.
   */
  clockStepMs?: number;
  /** CircleCI Server: every /api/v3/* answers 404 Not Found (v3 is cloud only); v1.1 and v2 work. */
  server?: boolean;
  /** How /me/collaborations spells the VCS key: 'vcs_type' (default, what clients read) or 'vcs-type' (the OpenAPI document). */
  collaborationsKeyStyle?: 'vcs_type' | 'vcs-type';
  /** Projects per page of /api/v3/projects when page[limit] is absent; default 20. */
  v3PageSize?: number;
  /** How Insights spell their keys: 'underscore' (default: credits_used, flaky_tests) or 'hyphen' (credits-used, flaky-tests). */
  insightsKeyStyle?: InsightsKeyStyle;
  /** Items per page of the Insights workflow names and runs; default 20. */
  insightsPageSize?: number;
  /** Projects (slugs) whose Insights answer 404, as on an older CircleCI Server; true: every project. */
  insightsUnavailable?: true | string[];
  /** The Usage Export API: lifecycle, limits, parts, faults (see usageRoutes.ts and docs/mock-usage.md). */
  usage?: UsageOptions & { /** The first n part downloads answer 503; default 0. */ storageFailFirst?: number };
}

export type RouteName =
  | 'me'
  | 'project'
  | 'pipelines'
  | 'workflows'
  | 'jobs'
  | 'jobDetails'
  | 'tests'
  | 'collaborations'
  | 'v3Orgs'
  | 'v3Projects'
  | 'v1Projects'
  | 'insights'
  | 'usage'
  | 'other';

export interface RequestLogEntry {
  method: string;
  /** Path and query as sent. */
  path: string;
  /** 0 for a connection reset. */
  status: number;
  /** The request headers (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
  /** The world's clock when it was answered, epoch ms. */
  at: number;
  /** This machine's clock when it was answered, epoch ms (rate-limit windows run on it). */
  wallMs: number;
}

export interface RequestCounters {
  total: number;
  byRoute: Record<RouteName, number>;
  /** Keys are HTTP statuses ('200', '404', ...) and 'reset' for destroyed connections. */
  byStatus: Record<string, number>;
  log: RequestLogEntry[];
}

export interface MockServer {
  /** e.g. http://127.0.0.1:PORT/api/v2 */
  baseUrl: string;
  port: number;
  world: World;
  /** Live counters (reset in place by resetCounters). */
  counters: RequestCounters;
  resetCounters(): void;
  setFaults(f: FaultOptions | undefined): void;
  /** Starts, changes or (with 0, 0) stops the running clock; see MockOptions.clockRate and clockStepMs. */
  setClock(rate: number, stepMs?: number): void;
  close(): Promise<void>;
  /** The storage host serving usage export parts, e.g. http://127.0.0.1:PORT (no token needed). */
  storageUrl: string;
  /** Every request the storage host received, with its headers (to prove no token reached it). */
  storageLog: StorageLogEntry[];
  /** The usage export jobs created so far. */
  usageJobs(): UsageJobInfo[];
  /** Changes usage options from now on (e.g. readyAfterPolls to let a pending export complete). */
  setUsageOptions(next: UsageOptions & { storageFailFirst?: number }): void;
}

export const DEFAULT_TOKEN = 'test-token-0123456789abcdef';
const DAY = 86_400_000;

const MSG = {
  login: 'You must log in first.',
  projectNotFound: 'Project not found',
  notFound: 'Not Found',
  queryAuth:
    'Support for query parameter authentication has been deprecated to improve security. Please use a supported authentication method such as header-based, or basic authentication.',
  rateLimited: 'Rate limit exceeded.',
  internal: 'Internal server error.',
  method: 'Method Not Allowed',
};

const HTML_502 = '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n';
const HTML_503 =
  '<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n';

type Kind =
  | 'me'
  | 'project'
  | 'pipelineList'
  | 'pipelineByNumber'
  | 'jobDetails'
  | 'pipeline'
  | 'workflowList'
  | 'workflow'
  | 'jobList'
  | 'tests'
  | 'collaborations'
  | 'v3Orgs'
  | 'v3Projects'
  | 'v1Projects'
  | 'insightsWorkflows'
  | 'insightsRuns'
  | 'insightsFlaky'
  | 'usage'
  | 'unknown';

interface Match {
  kind: Kind;
  counter: RouteName;
  /** What a missing or wrong token gets. */
  family: 'me' | 'project' | 'id' | 'none';
  slug?: string;
  id?: string;
  number?: number;
  /** An Insights workflow name. */
  name?: string;
  usage?: { orgId: string; jobId?: string };
}

const UNKNOWN: Match = { kind: 'unknown', counter: 'other', family: 'none' };

/** Routes a raw path: %2F inside segments counts as a slash; the slug is exactly 3 segments. */
export function matchRoute(pathname: string): Match {
  let segs: string[];
  try {
    segs = pathname
      .split('/')
      .slice(1)
      .flatMap((s) => decodeURIComponent(s).split('/'));
  } catch {
    return UNKNOWN;
  }
  if (segs[0] !== 'api') return UNKNOWN;
  if (segs[1] === 'v3' && segs.length === 3 && segs[2] === 'orgs') return { kind: 'v3Orgs', counter: 'v3Orgs', family: 'me' };
  if (segs[1] === 'v3' && segs.length === 3 && segs[2] === 'projects') return { kind: 'v3Projects', counter: 'v3Projects', family: 'me' };
  if (segs[1] === 'v1.1' && segs.length === 3 && segs[2] === 'projects') return { kind: 'v1Projects', counter: 'v1Projects', family: 'me' };
  if (segs[1] !== 'v2') return UNKNOWN;
  const s = segs.slice(2);
  const usage = matchUsage(s);
  if (usage) return { kind: 'usage', counter: 'usage', family: 'me', usage };
  if (s.length === 2 && s[0] === 'me' && s[1] === 'collaborations') return { kind: 'collaborations', counter: 'collaborations', family: 'me' };
  const isNumber = (x: string | undefined): boolean => x !== undefined && /^[0-9]{1,15}$/.test(x);
  if (s.length === 1 && s[0] === 'me') return { kind: 'me', counter: 'me', family: 'me' };
  if (s[0] === 'project' && s.length >= 4) {
    const slug = s.slice(1, 4).join('/');
    const rest = s.slice(4);
    if (!parseSlug(slug)) return UNKNOWN;
    if (rest.length === 0) return { kind: 'project', counter: 'project', family: 'project', slug };
    if (rest[0] === 'pipeline' && rest.length === 1) return { kind: 'pipelineList', counter: 'pipelines', family: 'project', slug };
    if (rest[0] === 'pipeline' && rest.length === 2 && isNumber(rest[1]))
      return { kind: 'pipelineByNumber', counter: 'pipelines', family: 'project', slug, number: Number(rest[1]) };
    if (rest[0] === 'job' && rest.length === 2 && isNumber(rest[1]))
      return { kind: 'jobDetails', counter: 'jobDetails', family: 'project', slug, number: Number(rest[1]) };
    if (rest.length === 2 && isNumber(rest[0]) && rest[1] === 'tests')
      return { kind: 'tests', counter: 'tests', family: 'project', slug, number: Number(rest[0]) };
    return UNKNOWN;
  }
  if (s[0] === 'insights' && s.length >= 5 && parseSlug(s.slice(1, 4).join('/'))) {
    const slug = s.slice(1, 4).join('/');
    const rest = s.slice(4);
    const m = { counter: 'insights', family: 'project', slug } as const;
    if (rest.length === 1 && rest[0] === 'workflows') return { ...m, kind: 'insightsWorkflows' };
    if (rest.length >= 2 && rest[0] === 'workflows' && rest[1] !== '') return { ...m, kind: 'insightsRuns', name: rest.slice(1).join('/') };
    if (rest.length === 1 && rest[0] === 'flaky-tests') return { ...m, kind: 'insightsFlaky' };
    return UNKNOWN;
  }
  if (s[0] === 'pipeline' && s.length === 2 && s[1] !== '') return { kind: 'pipeline', counter: 'pipelines', family: 'id', id: s[1] };
  if (s[0] === 'pipeline' && s.length === 3 && s[2] === 'workflow') return { kind: 'workflowList', counter: 'workflows', family: 'id', id: s[1] };
  if (s[0] === 'workflow' && s.length === 2 && s[1] !== '') return { kind: 'workflow', counter: 'workflows', family: 'id', id: s[1] };
  if (s[0] === 'workflow' && s.length === 3 && s[2] === 'job') return { kind: 'jobList', counter: 'jobs', family: 'id', id: s[1] };
  return UNKNOWN;
}

export interface Reply {
  status: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
}

const json = (status: number, payload: unknown): Reply => ({ status, body: JSON.stringify(payload) });
const message = (status: number, text: string): Reply => json(status, { message: text });

interface Bucket {
  tokens: number;
  lastMs: number;
}

export async function startMockServer(opts: MockOptions): Promise<MockServer> {
  const world = opts.world;
  const token = opts.token ?? DEFAULT_TOKEN;
  const host = opts.host ?? '127.0.0.1';
  const pageSize = Math.max(1, opts.pageSize ?? 20);
  const workflowPageSize = Math.max(1, opts.workflowPageSize ?? 20);
  const jobPageSize = Math.max(1, opts.jobPageSize ?? 5);
  const testPageSize = Math.max(1, opts.testPageSize ?? 20);
  const latencyMs = Math.max(0, opts.latencyMs ?? 0);
  const seed = opts.seed ?? 1;
  const logLimit = Math.max(1, opts.logLimit ?? 20_000);
  let faults: FaultOptions | undefined = opts.faults;
  /** Per path: requests that matched notFoundPath (since the faults were last set). */
  const notFoundSeen = new Map<string, number>();
  const faultRng = new Rng(hash32(seed, 'faults'));
  const secret = `mock-circleci-page-token:${seed}`;
  const buckets = new Map<string, Bucket>();

  // ----- the running clock

  let clockRate = Math.max(0, opts.clockRate ?? 0);
  let clockStepMs = Math.max(0, opts.clockStepMs ?? 0);
  let clockWall = performance.now();
  /** Plays the world forward by the wall time since the last step, times the rate. */
  const stepClock = (): void => {
    const wall = performance.now();
    const ms = clockRate > 0 ? Math.floor((wall - clockWall) * clockRate) : 0;
    if (clockRate === 0) clockWall = wall;
    else if (ms > 0) {
      world.advance(ms);
      // Keep the fraction of a world millisecond for the next step.
      clockWall += ms / clockRate;
    }
    if (clockStepMs > 0) world.advance(clockStepMs);
  };

  const counters: RequestCounters = { total: 0, byRoute: emptyRoutes(), byStatus: {}, log: [] };
  const count = (req: http.IncomingMessage, route: RouteName, status: number): void => {
    counters.total++;
    counters.byRoute[route]++;
    const key = status === 0 ? 'reset' : String(status);
    counters.byStatus[key] = (counters.byStatus[key] ?? 0) + 1;
    counters.log.push({ method: req.method ?? '', path: req.url ?? '', status, headers: { ...req.headers }, at: world.now().getTime(), wallMs: Date.now() });
    if (counters.log.length > 2 * logLimit) counters.log.splice(0, counters.log.length - logLimit);
  };

  // ----- page tokens

  const sign = (payloadB64: string): string => createHmac('sha256', secret).update(payloadB64).digest('base64url').slice(0, 22);
  const encodeToken = (payload: Record<string, unknown>): string => {
    const b64 = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${b64}.${sign(b64)}`;
  };
  const decodeToken = (tok: string): Record<string, unknown> | undefined => {
    const parts = tok.split('.');
    if (parts.length !== 2) return undefined;
    const expected = Buffer.from(sign(parts[0]));
    const given = Buffer.from(parts[1]);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    try {
      const payload = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      return payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : undefined;
    } catch {
      return undefined;
    }
  };
  const page = (items: unknown[], next: string | null): Reply =>
    next === null && opts.omitLastPageToken ? json(200, { items }) : json(200, { items, next_page_token: next });
  /** An offset page of a short list (workflows, jobs). */
  const offsetPage = (all: unknown[], size: number, tokenParam: string | null, bind: Record<string, unknown>): Reply => {
    let offset = 0;
    if (tokenParam) {
      const t = decodeToken(tokenParam);
      const ok = t && Object.entries(bind).every(([k, v]) => t[k] === v) && Number.isSafeInteger(t.o) && (t.o as number) >= 0;
      if (!ok) return message(404, MSG.notFound);
      offset = t.o as number;
    }
    const items = all.slice(offset, offset + size);
    const more = offset + size < all.length;
    return page(items, more ? encodeToken({ ...bind, o: offset + size }) : null);
  };

  // ----- retention

  const expired = (pipelineId: string | undefined): boolean => {
    if (opts.retentionDays === undefined || pipelineId === undefined) return false;
    const created = world.pipelineCreatedAt(pipelineId);
    return created !== undefined && created.getTime() < world.now().getTime() - opts.retentionDays * DAY;
  };

  // ----- handlers (after auth)

  const handle = (m: Match, query: URLSearchParams): Reply => {
    switch (m.kind) {
      case 'me':
        return json(200, world.me());
      case 'project': {
        const p = world.project(m.slug as string);
        return p ? json(200, p) : message(404, MSG.projectNotFound);
      }
      case 'pipelineList': {
        const slug = world.canonicalSlug(m.slug as string);
        if (!slug) return message(404, MSG.projectNotFound);
        const branch = query.has('branch') ? (query.get('branch') as string) : undefined;
        const bind = { r: 'pl', s: slug, b: branch ?? null };
        let before: number | undefined;
        const tokenParam = query.get('page-token');
        if (tokenParam) {
          const t = decodeToken(tokenParam);
          const ok = t && t.r === bind.r && t.s === bind.s && t.b === bind.b && Number.isSafeInteger(t.n);
          if (!ok) return message(404, MSG.notFound);
          before = t.n as number;
        }
        const result = world.pipelinePage(slug, { branch, before, limit: pageSize });
        if (!result) return message(404, MSG.projectNotFound);
        return page(result.items, result.nextBefore === null ? null : encodeToken({ ...bind, n: result.nextBefore }));
      }
      case 'pipelineByNumber': {
        if (!world.canonicalSlug(m.slug as string)) return message(404, MSG.projectNotFound);
        const p = world.pipelineByNumber(m.slug as string, m.number as number);
        return p ? json(200, p) : message(404, MSG.notFound);
      }
      case 'jobDetails': {
        if (!world.canonicalSlug(m.slug as string)) return message(404, MSG.projectNotFound);
        const d = world.jobDetails(m.slug as string, m.number as number);
        if (!d || expired(d.pipeline.id)) return message(404, MSG.notFound);
        return json(200, d);
      }
      case 'tests': {
        const slug = world.canonicalSlug(m.slug as string);
        if (!slug) return message(404, MSG.projectNotFound);
        const n = m.number as number;
        const items = world.jobTests(slug, n);
        if (!items || expired(world.pipelineIdOfJob(slug, n))) return message(404, MSG.notFound);
        return offsetPage(items, testPageSize, query.get('page-token'), { r: 'ts', s: slug, j: n });
      }
      case 'pipeline': {
        const p = world.pipeline(m.id as string);
        return p ? json(200, p) : message(404, MSG.notFound);
      }
      case 'workflowList': {
        const id = m.id as string;
        const wfs = world.workflowsOf(id);
        if (!wfs || expired(id)) return message(404, MSG.notFound);
        return offsetPage(wfs, workflowPageSize, query.get('page-token'), { r: 'wf', p: id });
      }
      case 'workflow': {
        const wf = world.workflow(m.id as string);
        if (!wf || expired(wf.pipeline_id ?? undefined)) return message(404, MSG.notFound);
        return json(200, wf);
      }
      case 'jobList': {
        const id = m.id as string;
        const jobs = world.jobsOf(id);
        if (!jobs || expired(world.pipelineIdOfWorkflow(id))) return message(404, MSG.notFound);
        return offsetPage(jobs, jobPageSize, query.get('page-token'), { r: 'jb', w: id });
      }
      case 'collaborations':
        return json(200, orgs.collaborations());
      case 'v3Orgs':
        return orgs.v3Orgs(query);
      case 'v3Projects':
        return orgs.v3Projects(query);
      case 'v1Projects':
        return json(200, orgs.v1Projects());
      case 'insightsWorkflows':
        return insights.workflows(m.slug as string, query);
      case 'insightsRuns':
        return insights.runs(m.slug as string, m.name as string, query);
      case 'insightsFlaky':
        return insights.flakyTests(m.slug as string);
      default:
        return message(404, MSG.notFound);
    }
  };
  const storage = await startStorage(host, secret, opts.usage?.storageFailFirst ?? 0);
  const usage = usageRoutes(world, storage, opts.usage, opts.server === true);
  const orgs = orgRoutes(world, {
    keyStyle: opts.collaborationsKeyStyle ?? 'vcs_type',
    pageSize: Math.max(1, opts.v3PageSize ?? 20),
    encode: encodeToken,
    decode: decodeToken,
  });
  const insights = insightsRoutes(world, {
    keyStyle: opts.insightsKeyStyle ?? 'underscore',
    pageSize: Math.max(1, opts.insightsPageSize ?? 20),
    unavailable: opts.insightsUnavailable ?? [],
    encode: encodeToken,
    decode: decodeToken,
  });

  // ----- auth and rate limit

  const presentedToken = (req: http.IncomingMessage): string | undefined => {
    const header = req.headers['circle-token'];
    if (typeof header === 'string' && header !== '') return header;
    const auth = req.headers.authorization;
    if (typeof auth === 'string') {
      const basic = /^Basic\s+(\S+)\s*$/i.exec(auth);
      if (basic) {
        const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
        return decoded.endsWith(':') ? decoded.slice(0, -1) : decoded;
      }
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (bearer) return bearer[1];
    }
    return undefined;
  };

  /** Takes one token from the bucket of this credential; the rate-limit headers, and whether it was refused. */
  const takeToken = (key: string): { headers: Record<string, string>; limited: boolean; retryAfter: number } => {
    const rl = opts.rateLimit;
    if (!rl) return { headers: {}, limited: false, retryAfter: 0 };
    const cap = Math.max(1, rl.perMinute);
    const windowMs = (rl.windowSeconds ?? 60) * 1000;
    const perMs = cap / windowMs;
    const nowMs = performance.now();
    if (rl.window === 'fixed') return takeFromWindow(key, cap, nowMs, windowMs);
    const b = buckets.get(key) ?? { tokens: cap, lastMs: nowMs };
    b.tokens = Math.min(cap, b.tokens + (nowMs - b.lastMs) * perMs);
    b.lastMs = nowMs;
    buckets.set(key, b);
    const limited = b.tokens < 1;
    if (!limited) b.tokens -= 1;
    const reset = Math.ceil((cap - b.tokens) / perMs / 1000);
    const retryAfter = limited ? Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000)) : 0;
    return { headers: rateHeaders(cap, Math.max(0, Math.floor(b.tokens)), reset), limited, retryAfter };
  };

  const windows = new Map<string, { start: number; used: number }>();
  /** Fixed windows: the quota comes back all at once when the window ends. */
  const takeFromWindow = (key: string, cap: number, nowMs: number, windowMs: number) => {
    let w = windows.get(key);
    if (!w || nowMs - w.start >= windowMs) {
      // Windows follow each other back to back, as a server with a fixed schedule keeps them.
      const start = w ? w.start + Math.floor((nowMs - w.start) / windowMs) * windowMs : nowMs;
      w = { start, used: 0 };
      windows.set(key, w);
    }
    const limited = w.used >= cap;
    if (!limited) w.used++;
    const reset = Math.max(1, Math.ceil((w.start + windowMs - nowMs) / 1000));
    return { headers: rateHeaders(cap, cap - w.used, reset), limited, retryAfter: limited ? reset : 0 };
  };

  // ----- the server

  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;
  const delay = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve();
          }, ms);
          timers.add(t);
        });

  const onRequest = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const body = readBody(req);
    const url = new URL(req.url ?? '/', 'http://mock.invalid');
    let m = matchRoute(url.pathname);
    // CircleCI Server has no API v3 at all: its paths are unknown there, token or not.
    if (opts.server && /^\/api\/v3(\/|$)/.test(url.pathname)) m = { ...UNKNOWN, counter: m.counter };
    const send = (reply: Reply, extra: Record<string, string> = {}): void => {
      if (closing || res.destroyed) return;
      const headers: Record<string, string | number> = {
        // CircleCI's clock is the world's: a client that reads Date sees the time the data is at.
        Date: world.now().toUTCString(),
        'Content-Type': reply.contentType ?? 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(reply.body),
        ...extra,
        ...reply.headers,
      };
      res.writeHead(reply.status, headers);
      res.end(reply.body);
      count(req, m.counter, reply.status);
    };

    // Every random decision is drawn up front, the same number per request.
    const f = faults;
    const uFault = faultRng.next();
    const uSlow = faultRng.next();
    const uMissing = faultRng.next();
    const uCut = faultRng.next();
    const wait = latencyMs + (f?.rateSlow && uSlow < f.rateSlow ? (f.slowMs ?? 1500) : 0);
    await delay(wait);
    if (closing) return;
    stepClock();

    if (req.method !== 'GET' && !(req.method === 'POST' && m.kind === 'usage')) {
      send(message(405, MSG.method), { Allow: 'GET' });
      return;
    }
    const presented = presentedToken(req);
    const rl = takeToken(presented ?? 'anonymous');
    if (rl.limited) {
      const extra = { ...rl.headers };
      if (!opts.rateLimit?.omitRetryAfter) extra['Retry-After'] = String(rl.retryAfter);
      send(message(429, MSG.rateLimited), extra);
      return;
    }
    if (f?.failPath && f.failPath.test(url.pathname)) {
      send(message(500, MSG.internal), rl.headers);
      return;
    }
    if (f?.notFoundPath && f.notFoundPath.test(url.pathname)) {
      const seen = (notFoundSeen.get(url.pathname) ?? 0) + 1;
      notFoundSeen.set(url.pathname, seen);
      if (f.notFoundTimes === undefined || seen <= f.notFoundTimes) {
        send(message(404, MSG.notFound), rl.headers);
        return;
      }
    }
    let truncate = false;
    if (f) {
      let edge = 0;
      const hit = (rate: number | undefined): boolean => {
        const lo = edge;
        edge += Math.max(0, rate ?? 0);
        return uFault >= lo && uFault < edge;
      };
      if (hit(f.rate500)) return send(message(500, MSG.internal), rl.headers);
      if (hit(f.rate502Html)) return send({ status: 502, body: HTML_502, contentType: 'text/html' }, rl.headers);
      if (hit(f.rate503)) return send({ status: 503, body: HTML_503, contentType: 'text/html' }, rl.headers);
      if (hit(f.rate429)) {
        const extra = { ...rl.headers };
        if (!(uMissing < (f.retryAfterMissingShare ?? 0))) extra['Retry-After'] = '1';
        return send(message(429, MSG.rateLimited), extra);
      }
      if (hit(f.rateReset)) {
        count(req, m.counter, 0);
        req.socket.destroy();
        return;
      }
      truncate = hit(f.rateTruncated);
    }

    if (url.searchParams.has('circle-token') && !opts.acceptQueryToken) {
      send(message(401, MSG.queryAuth), rl.headers);
      return;
    }
    const authed = presented === token || (opts.acceptQueryToken === true && url.searchParams.get('circle-token') === token);
    let reply: Reply;
    if (!authed && m.family === 'me') reply = message(401, MSG.login);
    else if (!authed && m.family === 'project') reply = message(404, MSG.projectNotFound);
    else if (!authed) reply = message(404, MSG.notFound);
    else if (m.kind === 'usage') reply = usage.handle(req.method ?? '', m.usage!, await body, hostOf(req));
    else reply = handle(m, url.searchParams);
    if (truncate && reply.status === 200 && reply.body.length > 1) {
      // Cut mid-way (ASCII payloads, so characters = bytes); Content-Length matches the cut body.
      const cut = Math.max(1, Math.floor(reply.body.length * (0.2 + 0.6 * uCut)));
      reply = { ...reply, body: reply.body.slice(0, Math.min(cut, reply.body.length - 1)) };
    }
    send(reply, rl.headers);
  };

  const server = http.createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        const body = JSON.stringify({ message: MSG.internal });
        res.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      }
      console.error('mock CircleCI server: handler failed:', err);
    });
  });
  // Clients close idle keep-alive sockets a second before the server's hint; on a loaded machine
  // Node's 5 s default let the server close a socket the client was about to reuse (ECONNRESET).
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  const hostOf = (req: http.IncomingMessage): string => {
    try {
      return new URL(`http://${req.headers.host ?? ''}`).hostname || hostInUrl;
    } catch {
      return hostInUrl;
    }
  };

  return {
    baseUrl: `http://${hostInUrl}:${port}/api/v2`,
    port,
    world,
    counters,
    storageUrl: `http://${hostInUrl}:${storage.port}`,
    storageLog: storage.log,
    usageJobs: () => usage.jobs(),
    setUsageOptions(next): void {
      usage.setOptions(next);
      if (next.storageFailFirst !== undefined) storage.setFailFirst(next.storageFailFirst);
    },
    resetCounters(): void {
      counters.total = 0;
      counters.byRoute = emptyRoutes();
      counters.byStatus = {};
      counters.log = [];
    },
    setFaults(next: FaultOptions | undefined): void {
      faults = next;
      notFoundSeen.clear();
    },
    setClock(rate: number, stepMs = 0): void {
      stepClock();
      clockRate = Math.max(0, rate);
      clockStepMs = Math.max(0, stepMs);
    },
    close(): Promise<void> {
      closing = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return Promise.all([closed, storage.close()]).then(() => undefined);
    },
  };
}

/** The request body as text (at most 1 MB; the rest is dropped), read while the request is handled. */
function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1_000_000) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
    req.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** Both header families CircleCI may send, with the same numbers. */
function rateHeaders(limit: number, remaining: number, resetSeconds: number): Record<string, string> {
  return {
    'RateLimit-Limit': String(limit),
    'RateLimit-Remaining': String(remaining),
    'RateLimit-Reset': String(resetSeconds),
    'X-RateLimit-Limit': String(limit),
    'X-RateLimit-Remaining': String(remaining),
    'X-RateLimit-Reset': String(resetSeconds),
  };
}

function emptyRoutes(): Record<RouteName, number> {
  return { me: 0, project: 0, pipelines: 0, workflows: 0, jobs: 0, jobDetails: 0, tests: 0, collaborations: 0, v3Orgs: 0, v3Projects: 0, v1Projects: 0, insights: 0, usage: 0, other: 0 };
}

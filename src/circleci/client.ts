import { ConnectorError, configError, transientError } from '../errors.js';
import { DEFAULT_BASE_URL } from '../config.js';
import { registerSecret } from '../redact.js';
import { serverExcerpt } from './excerpt.js';
import { getJson, type Attempt } from './http.js';
import { RateGovernor } from './governor.js';
import { Limiter } from './limiter.js';
import { DEFAULT_RETRY_POLICY, backoffMs, serverWaitMs, sleep, type RetryPolicy } from './retry.js';

/** A final, non-retryable answer (401, 403, 404, ...). */
export class HttpError extends ConnectorError {
  constructor(
    readonly status: number,
    readonly endpoint: string,
    /** Short, one line, sanitised (excerpt.ts): never the raw body. */
    readonly serverMessage: string,
    readonly method: 'GET' | 'POST' = 'GET',
    /** A 429 of an endpoint's own limit (RequestOptions.ownLimit 'final'): how long the server asked to wait. */
    readonly retryAfterMs?: number,
  ) {
    super(`${method} ${endpoint} answered HTTP ${status}${serverMessage ? ` (${serverMessage})` : ''}.`, 'transient_error', `HTTP ${status}`);
    this.name = 'HttpError';
  }
}

export interface RetryEvent {
  endpoint: string;
  attempt: number;
  waitMs: number;
  /** What went wrong: "HTTP 503", "ECONNRESET", ... */
  reason: string;
  rateLimited: boolean;
}

export interface ClientOptions {
  baseUrl: string;
  token: string;
  maxConcurrency: number;
  policy?: RetryPolicy;
  onRetry?: (e: RetryEvent) => void;
  /** Every request waits until `untilMs` (epoch ms): the token is rate limited. */
  onRateLimited?: (untilMs: number) => void;
  /** Aborts requests in flight and waits (shutdown). */
  signal?: AbortSignal;
}

/** The sync is being stopped: not a failure of CircleCI's. */
export class StoppedError extends ConnectorError {
  constructor() {
    super('The sync was stopped.', 'transient_error');
    this.name = 'StoppedError';
  }
}

export interface RequestOptions {
  /** The data should exist: a 404 is asked again (policy.notFoundAttempts), as CircleCI answers some during incidents. */
  mustExist?: boolean;
  /** Another API version beside base_url's v2 (organizations' projects: v3 on cloud, v1.1 on CircleCI Server). */
  api?: 'v3' | 'v1.1';
  /**
   * A 429 here is this endpoint's own limit (usage exports: creates and polls per organization),
   * not the token's: other requests do not pause for it. 'wait': retried after the wait asked
   * for, like any 429; 'final': thrown at once as an HttpError carrying that wait, for the caller
   * to pace on (a create limit of 10 an hour is not waited out by a retry loop).
   */
  ownLimit?: 'wait' | 'final';
}

interface Page {
  items: unknown[];
  next_page_token?: string | null;
}

function isPage(body: unknown): body is Page {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as Page).items)) return false;
  const token = (body as Page).next_page_token;
  return token === undefined || token === null || typeof token === 'string';
}

/** CircleCI API v2: auth, the retry policy, the global concurrency limit and pagination. */
export class CircleCIClient {
  /** HTTP attempts made, retries included. */
  requests = 0;
  /**
   * When CircleCI first answered, by its own clock (the Date header; this machine's clock if the
   * header is missing): the start of the sync as CircleCI saw it, epoch ms.
   */
  firstAnswerAt?: number;
  /** The latest answer's Date header and this machine's clock when it came (see serverNow). */
  private lastAnswer?: { server: number; local: number };

  /** CircleCI's clock now, as its latest answer told it (this machine's before any answer), epoch ms. */
  serverNow(): number {
    return this.lastAnswer ? this.lastAnswer.server + (Date.now() - this.lastAnswer.local) : Date.now();
  }

  /** Requests allowed in flight right now (lowered under rate limiting). */
  get concurrency(): number {
    return this.governor.concurrency;
  }
  private readonly limiter: Limiter;
  private readonly governor: RateGovernor;
  private readonly policy: RetryPolicy;
  private readonly tokenOrigin: string;

  constructor(private readonly opts: ClientOptions) {
    this.limiter = new Limiter(opts.maxConcurrency);
    this.governor = new RateGovernor(this.limiter, opts.maxConcurrency, opts.onRateLimited);
    this.policy = opts.policy ?? DEFAULT_RETRY_POLICY;
    this.tokenOrigin = new URL(opts.baseUrl).origin;
    registerSecret(opts.token);
  }

  /**
   * GET a JSON document, retrying transient failures; throws HttpError for final 4xx answers.
   * Lower `priority` values go first when requests wait for a slot.
   */
  async get(path: string, query: Record<string, string | undefined> = {}, priority = 0, opts: RequestOptions = {}): Promise<unknown> {
    return this.request('GET', path, query, priority, opts);
  }

  /** POST a JSON body (creating a usage export), through the same limit and retry policy as a GET. */
  async post(path: string, body: unknown, opts: RequestOptions = {}): Promise<unknown> {
    return this.request('POST', path, {}, 0, opts, JSON.stringify(body));
  }

  /** The retry policy's data, for the one other HTTP path (token-free downloads) to follow. */
  get retryPolicy(): RetryPolicy {
    return this.policy;
  }

  private async request(method: 'GET' | 'POST', path: string, query: Record<string, string | undefined>, priority: number, opts: RequestOptions, body?: string): Promise<unknown> {
    const url = new URL(this.apiRoot(opts.api) + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const stop = this.opts.signal;
      const result: Attempt = await this.limiter.run(async () => {
        await this.governor.gate(stop);
        if (stop?.aborted) return { kind: 'failure', reason: 'stopped' } as const;
        return this.governor.sent(() => getJson(url, this.opts.token, this.tokenOrigin, this.policy.timeoutMs, stop, body === undefined ? undefined : { body }));
      }, priority);
      if (stop?.aborted) throw new StoppedError();
      this.requests++;
      if (this.firstAnswerAt === undefined && (result.kind === 'response' || result.kind === 'failure') && result.headers) this.firstAnswerAt = dateOf(result.headers) ?? Date.now();
      const date = (result.kind === 'response' || result.kind === 'failure') && result.headers ? dateOf(result.headers) : undefined;
      if (date !== undefined && date >= (this.lastAnswer?.server ?? Number.NEGATIVE_INFINITY)) this.lastAnswer = { server: date, local: Date.now() };
      if (result.kind === 'html') throw notTheApi(path, this.opts.baseUrl, 'an HTML page');
      if (result.kind === 'downgrade') {
        throw configError(
          `${method} ${path} was redirected from https to plain http (${result.location}); not followed, so the token does not travel unencrypted. ` +
            `Check base_url (${this.opts.baseUrl}): it should be the server's https address, and the server should not redirect it to http.`,
          'redirect from https to http',
        );
      }
      // A failed lookup before anything answered: the host is wrong, or this machine has no network.
      // Once something has answered, it is a blip (DNS hiccup, resolver restart) and retried below.
      if (result.kind === 'failure' && DNS_FAILURES.has(result.reason) && this.firstAnswerAt === undefined) throw this.unreachable(result.reason);
      const ownLimited = result.status === 429 && opts.ownLimit !== undefined;
      // The endpoint's own limit says nothing about the token's: no pause, no lower concurrency.
      if (!ownLimited) this.governor.observe(result.status, result.headers);
      if (result.kind === 'response' && result.status >= 200 && result.status < 300) return result.body;
      if (ownLimited && opts.ownLimit === 'final' && result.kind === 'response') {
        const said = serverExcerpt(result.body, result.bodyText, result.headers.get('content-type'));
        throw new HttpError(429, path, said, method, serverWaitMs({ ...this.policy, scale: 1, maxDelayMs: 3_600_000 }, result.headers));
      }
      const retried = this.policy.retryStatuses.includes(result.status ?? 0) || (result.status === 404 && opts.mustExist && attempt < this.policy.notFoundAttempts);
      if (result.kind === 'response' && !retried) {
        throw new HttpError(result.status, path, serverExcerpt(result.body, result.bodyText, result.headers.get('content-type')), method);
      }
      const reason = result.kind === 'response' ? `HTTP ${result.status}` : result.status ? `HTTP ${result.status} with ${result.reason}` : result.reason;
      const elapsed = Date.now() - started;
      if (attempt >= this.policy.maxAttempts || elapsed >= this.policy.maxElapsedMs) {
        const said = result.kind === 'response' ? serverExcerpt(result.body, result.bodyText, result.headers.get('content-type')) : '';
        throw transientError(
          `${method} ${path} failed ${attempt} times over ${Math.round(elapsed / 1000)} s; the last answer was ${reason}${said ? ` (${said})` : ''}. ` +
            'CircleCI may be unavailable or rate-limiting this token: run the sync again later; it resumes from its last checkpoint.',
          reason,
        );
      }
      const rateLimited = result.status === 429;
      const asked = result.headers && (rateLimited || result.status === 503) ? serverWaitMs(this.policy, result.headers) : undefined;
      const waitMs = asked ?? backoffMs(this.policy, attempt);
      this.opts.onRetry?.({ endpoint: path, attempt, waitMs, reason, rateLimited });
      // A 429 is about the token, not this request: everyone waits (unless it is the endpoint's own limit).
      if (rateLimited && !ownLimited) this.governor.pause(waitMs);
      else await sleep(waitMs, stop);
    }
  }

  /** base_url, or the same server's root of another API version: /api/v2 becomes /api/v3 or /api/v1.1. */
  private apiRoot(api: RequestOptions['api']): string {
    if (!api) return this.opts.baseUrl;
    if (!/\/api\/v2$/.test(this.opts.baseUrl)) {
      throw configError(
        `"organizations" needs CircleCI's API ${api} beside API v2, found by replacing the /api/v2 at the end of base_url, but base_url (${this.opts.baseUrl}) does not end in /api/v2. ` +
          'Set base_url to the API v2 root (https://circleci.com/api/v2, or https://<your CircleCI Server>/api/v2), or list the projects in "project_slugs" instead.',
        'base_url without /api/v2',
      );
    }
    return this.opts.baseUrl.replace(/\/api\/v2$/, `/api/${api}`);
  }

  private unreachable(reason: string): ConnectorError {
    const host = new URL(this.opts.baseUrl).hostname;
    if (this.opts.baseUrl === DEFAULT_BASE_URL) {
      return transientError(
        `${host} cannot be reached from this machine: looking up its address failed (${reason}). ` +
          'Check that this machine (or the container or Airbyte network it runs in) can reach the internet, and its DNS and proxy settings; then run again.',
        reason,
      );
    }
    if (reason === 'ENOTFOUND') return configError(`The host of base_url (${host}) does not exist (DNS lookup failed). Check base_url (${this.opts.baseUrl}).`, reason);
    return transientError(`Looking up the host of base_url (${host}) failed (${reason}): this machine's DNS did not answer. Check its network and DNS settings, then run again.`, reason);
  }

  /** Every page of a list, following next_page_token (missing, null or empty = last page). */
  async *pages(path: string, query: Record<string, string | undefined> = {}, priority = 0, opts: RequestOptions = {}): AsyncGenerator<unknown[]> {
    const seen = new Set<string>();
    let pageToken: string | undefined;
    do {
      const body = await this.get(path, { ...query, 'page-token': pageToken }, priority, opts);
      if (!isPage(body)) throw notTheApi(path, this.opts.baseUrl, 'a body that is not a CircleCI page ({"items": [...], "next_page_token": ...})');
      yield body.items;
      pageToken = body.next_page_token || undefined;
      if (pageToken !== undefined) {
        // A server that hands back a token it gave before would page forever.
        if (seen.has(pageToken)) {
          throw configError(
            `GET ${path} returned a page token it had already returned; stopped paging to avoid an endless loop. ` +
              'If base_url goes through a proxy, check that it passes the query string (page-token) on; otherwise report it to CircleCI.',
            'repeated page token',
          );
        }
        seen.add(pageToken);
      }
    } while (pageToken !== undefined);
  }
}

/** getaddrinfo's "no such host" and "try again". */
const DNS_FAILURES = new Set(['ENOTFOUND', 'EAI_AGAIN']);

const dateOf = (headers: { get(name: string): string | null }): number | undefined => {
  const t = Date.parse(headers.get('date') ?? '');
  return Number.isNaN(t) ? undefined : t;
};

/** Asking again will not help: the answer says base_url is not the API. */
const notTheApi = (path: string, baseUrl: string, what: string) =>
  configError(
    `GET ${path} answered with ${what}. Check that base_url points at the CircleCI API v2 root ` +
      `(it is ${baseUrl}; CircleCI's is https://circleci.com/api/v2, a CircleCI Server's https://<host>/api/v2).`,
    'unexpected response shape',
  );


import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { isLoopback } from '../config.js';
import { configError, transientError } from '../errors.js';
import { StoppedError, type CircleCIClient } from './client.js';
import { openDownload } from './http.js';
import { backoffMs, sleep, type RetryPolicy } from './retry.js';

/**
 * CircleCI's Usage Export API: create an export job for an organization and a window, poll it,
 * and read its parts (gzipped CSV files at pre-signed URLs on another host) row by row.
 */

export type ExportState = 'created' | 'processing' | 'completed' | 'failed';

export interface ExportJob {
  id: string;
  state: ExportState | string;
  downloadUrls: string[];
  errorReason?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const jobsPath = (orgId: string) => `/organizations/${encodeURIComponent(orgId)}/usage_export_job`;

function jobOf(body: unknown, what: string): ExportJob {
  const id = isObject(body) ? body.usage_export_job_id : undefined;
  if (!isObject(body) || typeof id !== 'string' || typeof body.state !== 'string') {
    throw transientError(`${what} answered with something that is not a usage export job ({"usage_export_job_id": ..., "state": ...}). Check base_url.`, 'not an export job');
  }
  const urls = Array.isArray(body.download_urls) ? body.download_urls.filter((u): u is string => typeof u === 'string' && u !== '') : [];
  return { id, state: body.state, downloadUrls: urls, ...(typeof body.error_reason === 'string' ? { errorReason: body.error_reason } : {}) };
}

/**
 * POST a new export of [start, end). A 429 (the organization's create limit) is thrown at once
 * as an HttpError carrying the Retry-After, for the caller to pace on; 404 (no usage export for
 * this organization) and 400 (a window CircleCI does not accept) as HttpErrors too.
 */
export async function createExport(client: CircleCIClient, orgId: string, start: Date, end: Date): Promise<ExportJob> {
  const body = await client.post(jobsPath(orgId), { start: start.toISOString(), end: end.toISOString() }, { ownLimit: 'final' });
  return jobOf(body, `POST ${jobsPath(orgId)}`);
}

/** GET an export's state (its download URLs once completed). */
export async function pollExport(client: CircleCIClient, orgId: string, jobId: string): Promise<ExportJob> {
  const path = `${jobsPath(orgId)}/${encodeURIComponent(jobId)}`;
  return jobOf(await client.get(path, {}, 0, { ownLimit: 'wait' }), `GET ${path}`);
}

export interface DownloadOptions {
  policy: RetryPolicy;
  /** Plain http to a host other than this machine is allowed (the config's allow_insecure_http). */
  allowInsecureHttp: boolean;
  signal?: AbortSignal;
  onRetry?: (reason: string, attempt: number, waitMs: number) => void;
}

/** Where a part is, for messages: its host and path, never its query (the signature). */
export const partName = (url: URL) => `${url.host}${url.pathname}`;

/** One CSV row: its cells, and the part's header (lowercase column names; the same array for every row of a part). */
export interface CsvRow {
  columns: readonly string[];
  values: string[];
}

/**
 * The rows of one part, with the part's lowercase column names: downloaded without any
 * credential (http.ts openDownload), gunzipped if gzipped, parsed by csv-parse (quoted fields,
 * embedded commas, quotes and newlines), streamed so a 100 MB part never sits in memory.
 * Transient failures are retried by the one retry policy; a retry skips the rows already
 * yielded (a part's content is fixed), so no row is yielded twice.
 */
export async function* partRows(raw: string, opts: DownloadOptions): AsyncGenerator<CsvRow> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw transientError('CircleCI gave a usage export download URL that is not a URL. Run the sync again; if it persists, report it to CircleCI.', 'bad download url');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (isLoopback(url.hostname) || opts.allowInsecureHttp))) {
    throw configError(
      `A usage export part is at ${url.protocol}//${partName(url)}, not https: not downloaded. ` +
        'Only if this network is trusted (a proxy in your cluster), set "allow_insecure_http" to true.',
      'insecure download url',
    );
  }
  const { policy, signal } = opts;
  let yielded = 0;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    let reason: string;
    const answer = await openDownload(url, policy.timeoutMs, signal);
    if (signal?.aborted) throw new StoppedError();
    if (answer.kind === 'body') {
      let seen = 0;
      try {
        for await (const row of csvRows(answer.body)) {
          if (seen++ < yielded) continue;
          yielded++;
          yield row;
        }
        return;
      } catch (e) {
        if (signal?.aborted) throw new StoppedError();
        // node-fetch words some body errors "... while trying to fetch <url>": the URL carries the signature.
        reason = (e as Error).message.split('\n')[0].replace(/\bhttps?:\/\/\S+/g, partName(url)).slice(0, 200);
      }
    } else if (answer.kind === 'downgrade') {
      throw transientError(`Downloading a usage export part (${partName(url)}) was redirected from https to plain http (${answer.location}); not followed.`, 'redirect from https to http');
    } else if (answer.kind === 'status') {
      reason = `HTTP ${answer.status}`;
      if (!policy.retryStatuses.includes(answer.status)) {
        const expired = answer.status === 403 ? ' The link may have expired: the next sync asks CircleCI for the export again and gets fresh links.' : '';
        throw transientError(`Downloading a usage export part (${partName(url)}) answered ${reason}${answer.excerpt ? ` (${answer.excerpt.slice(0, 120)})` : ''}.${expired}`, reason);
      }
    } else {
      reason = answer.reason;
    }
    const elapsed = Date.now() - started;
    if (attempt >= policy.maxAttempts || elapsed >= policy.maxElapsedMs) {
      throw transientError(
        `Downloading a usage export part (${partName(url)}) failed ${attempt} times over ${Math.round(elapsed / 1000)} s; the last was ${reason}. ` +
          'Run the sync again: the export stays in the state until all its rows are out.',
        reason,
      );
    }
    const waitMs = backoffMs(policy, attempt);
    opts.onRetry?.(reason, attempt, waitMs);
    await sleep(waitMs, signal);
    if (signal?.aborted) throw new StoppedError();
  }
}

/** CSV rows out of a body: gunzipped when it starts with gzip's magic bytes; the first line is the header, lowercased. */
async function* csvRows(body: Readable): AsyncGenerator<CsvRow> {
  const chunks = body[Symbol.asyncIterator]();
  const first = await chunks.next();
  if (first.done) return;
  const head = first.value as Buffer;
  const rest = Readable.from(
    (async function* () {
      yield head;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value as Buffer;
    })(),
    { objectMode: false },
  );
  const gzipped = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  // Rows as arrays, not objects: the caller reads them by column index (a third faster on 100 MB).
  // Loaded here, not at start: only a sync that downloads an export needs it (every CLI start paid for it).
  const { parse } = await import('csv-parse');
  const parser = parse({ bom: true, skip_empty_lines: true });
  const done = (e: Error | null) => {
    if (e) parser.destroy(e);
  };
  if (gzipped) pipeline(rest, createGunzip(), parser, done);
  else pipeline(rest, parser, done);
  try {
    let columns: string[] | undefined;
    for await (const values of parser) {
      if (!columns) columns = (values as string[]).map((h) => h.trim().toLowerCase());
      else yield { columns, values: values as string[] };
    }
  } finally {
    body.destroy();
  }
}

import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import fetch, { type Response } from 'node-fetch';
import { onStop } from './stop.js';

/** One HTTP attempt (a GET, or the POST that creates a usage export) and what came of it. The only module that speaks HTTP. */
export type Attempt =
  | { kind: 'response'; status: number; headers: Response['headers']; body: unknown; bodyText: string }
  /** A 2xx web page where JSON was expected: base_url points at a website or a login proxy. */
  | { kind: 'html'; status: number }
  /** An https request redirected to plain http: not followed (the token would travel in clear). */
  | { kind: 'downgrade'; location: string }
  /** No usable answer: reset, timeout, DNS, or a body that is not JSON (truncated). */
  | { kind: 'failure'; reason: string; status?: number; headers?: Response['headers'] };

const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
const MAX_REDIRECTS = 5;

/**
 * GET `url` with the token in `Circle-Token`. Redirects are followed by hand so that the token
 * is only ever sent to `tokenOrigin` (scheme, host and port of base_url), and never from https
 * down to http.
 */
export async function getJson(url: URL, token: string, tokenOrigin: string, timeoutMs: number, stop?: AbortSignal, post?: { body: string }): Promise<Attempt> {
  let target = url;
  for (let hop = 0; ; hop++) {
    // A listener added to an already aborted signal never fires: check first.
    if (stop?.aborted) return { kind: 'failure', reason: 'stopped' };
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'source-circleci' };
    if (post) headers['Content-Type'] = 'application/json';
    // The origin, not URL.host: the host ignores the scheme, and http on the same host is not safe.
    if (target.origin === tokenOrigin) headers['Circle-Token'] = token;
    let res: Response;
    let bodyText: string;
    // One controller and one timer per attempt: cheaper than AbortSignal.timeout + AbortSignal.any.
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, timeoutMs);
    const unhook = onStop(stop, () => abort.abort());
    try {
      res = await fetch(target, {
        headers,
        ...(post ? { method: 'POST', body: post.body } : {}),
        redirect: 'manual',
        signal: abort.signal,
        agent: (u: URL) => (u.protocol === 'https:' ? agents.https : agents.http),
      });
      bodyText = await res.text();
    } catch (e) {
      const err = e as Error & { code?: string; type?: string };
      if (stop?.aborted) return { kind: 'failure', reason: 'stopped' };
      const reason = timedOut ? `no answer within ${timeoutMs} ms` : err.code ?? err.type ?? err.name;
      return { kind: 'failure', reason };
    } finally {
      clearTimeout(timer);
      unhook();
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && hop < MAX_REDIRECTS) {
      const next = new URL(location, target);
      if (target.protocol === 'https:' && next.protocol !== 'https:') return { kind: 'downgrade', location: next.href };
      target = next;
      continue;
    }
    if (bodyText === '' && res.status === 204) return { kind: 'response', status: res.status, headers: res.headers, body: undefined, bodyText };
    try {
      return { kind: 'response', status: res.status, headers: res.headers, body: JSON.parse(bodyText), bodyText };
    } catch {
      // A 2xx that is not JSON is a cut or garbled body; a 5xx gateway page is just an error status.
      const isOk = res.status >= 200 && res.status < 300;
      const html = /text\/html/i.test(res.headers.get('content-type') ?? '') || /^\s*</.test(bodyText);
      if (isOk && html) return { kind: 'html', status: res.status };
      if (isOk) return { kind: 'failure', reason: 'a body that is not valid JSON (truncated?)', status: res.status, headers: res.headers };
      return { kind: 'response', status: res.status, headers: res.headers, body: undefined, bodyText };
    }
  }
}

/** One download attempt: a body to stream, or why there is none. */
export type Download =
  | { kind: 'body'; body: Transform; headers: Response['headers'] }
  | { kind: 'status'; status: number; headers: Response['headers']; excerpt: string }
  | { kind: 'downgrade'; location: string }
  | { kind: 'failure'; reason: string };

/**
 * GET a pre-signed URL (a usage export's part on cloud storage) with NO credentials: no token, no
 * Authorization, whatever its host; the signature in the query is the authorisation. Redirects are
 * followed by hand, never from https down to http. The body is left unread for the caller to
 * stream; `timeoutMs` bounds the wait for the headers and then each silence of the body.
 */
export async function openDownload(url: URL, timeoutMs: number, stop?: AbortSignal): Promise<Download> {
  let target = url;
  for (let hop = 0; ; hop++) {
    if (stop?.aborted) return { kind: 'failure', reason: 'stopped' };
    const abort = new AbortController();
    let timer = setTimeout(() => abort.abort(), timeoutMs);
    const unhook = onStop(stop, () => abort.abort());
    let res: Response;
    try {
      // compress: false: the part is a .csv.gz served as bytes; the caller gunzips what is gzipped.
      res = await fetch(target, { headers: { 'User-Agent': 'source-circleci' }, redirect: 'manual', compress: false, signal: abort.signal, agent: (u: URL) => (u.protocol === 'https:' ? agents.https : agents.http) });
    } catch (e) {
      clearTimeout(timer);
      unhook();
      const err = e as Error & { code?: string; type?: string };
      return { kind: 'failure', reason: stop?.aborted ? 'stopped' : abort.signal.aborted ? `no answer within ${timeoutMs} ms` : err.code ?? err.type ?? err.name };
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && hop < MAX_REDIRECTS) {
      clearTimeout(timer);
      unhook();
      res.body?.resume();
      const next = new URL(location, target);
      if (target.protocol === 'https:' && next.protocol !== 'https:') return { kind: 'downgrade', location: next.origin };
      target = next;
      continue;
    }
    if (res.status < 200 || res.status >= 300 || !res.body) {
      clearTimeout(timer);
      unhook();
      const text = await res.text().catch(() => '');
      // Storage errors (S3's XML) may echo the signed request: only their error code is quoted.
      const code = /<Code>([A-Za-z0-9]{1,64})<\/Code>/.exec(text)?.[1] ?? '';
      return { kind: 'status', status: res.status, headers: res.headers, excerpt: code };
    }
    // From here the timer watches silences of the body, not the whole download (100 MB takes a
    // while): re-armed by each chunk as the reader pulls it, so backpressure is kept.
    const watched = new Transform({
      transform(chunk, _encoding, done) {
        clearTimeout(timer);
        timer = setTimeout(() => abort.abort(), timeoutMs);
        done(null, chunk);
      },
    });
    res.body.once('error', (e) => watched.destroy(stop?.aborted ? new Error('stopped') : abort.signal.aborted ? new Error(`no data within ${timeoutMs} ms`) : e));
    res.body.pipe(watched);
    watched.once('close', () => {
      clearTimeout(timer);
      unhook();
      (res.body as unknown as { destroy(): void } | null)?.destroy();
    });
    return { kind: 'body', body: watched, headers: res.headers };
  }
}

export function closeAgents(): void {
  agents.http.destroy();
  agents.https.destroy();
}

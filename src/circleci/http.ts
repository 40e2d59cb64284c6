import http from 'node:http';
import https from 'node:https';
import fetch, { type Response } from 'node-fetch';
import { onStop } from './stop.js';

/** One HTTP GET attempt and what came of it. The only module that speaks HTTP. */
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
export async function getJson(url: URL, token: string, tokenOrigin: string, timeoutMs: number, stop?: AbortSignal): Promise<Attempt> {
  let target = url;
  for (let hop = 0; ; hop++) {
    // A listener added to an already aborted signal never fires: check first.
    if (stop?.aborted) return { kind: 'failure', reason: 'stopped' };
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'source-circleci' };
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

export function closeAgents(): void {
  agents.http.destroy();
  agents.https.destroy();
}

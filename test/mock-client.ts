/**
 * How the mock's own tests talk to it: real HTTP on loopback with the mock's test token, a
 * response read once (status, JSON body if any, text, headers), and a list followed to its end.
 */
import type { MockServer } from '../mock/server.js';

export const MOCK_TOKEN = 'mock-test-token-0123456789';

export interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
  headers: Headers;
}

export async function call(server: MockServer, path: string, opts: { token?: string | null; headers?: Record<string, string>; method?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== null && !opts.headers) headers['Circle-Token'] = opts.token ?? MOCK_TOKEN;
  return answerOf(await fetch(server.baseUrl + path, { method: opts.method ?? 'GET', headers }));
}

/** A response as the tests read it: status, body parsed if it is JSON, text and headers. */
export async function answerOf(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text, headers: res.headers };
}

/** Follows next_page_token to the end; fails on anything but 200. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function allPages<T = any>(server: MockServer, path: string, query: Record<string, string> = {}): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let token: string | null | undefined;
  let pages = 0;
  do {
    const q = new URLSearchParams({ ...query, ...(token ? { 'page-token': token } : {}) }).toString();
    const r = await call(server, q ? `${path}?${q}` : path);
    expect(r.status).toBe(200);
    items.push(...r.body.items);
    token = r.body.next_page_token;
    pages++;
  } while (token);
  return { items, pages };
}

import { redact } from '../redact.js';

/**
 * What an error message may quote of a server's reply: CircleCI's JSON `message` (or `error`),
 * else the start of a plain-text body, on one line and at most MAX_EXCERPT characters. A web page
 * (a proxy's or load balancer's 502, a login portal) is named, not quoted; so is a reply that
 * quotes headers. Whatever could be the token is masked (the token itself by redact, anything
 * token-shaped here), because a proxy may echo a request back.
 */
export const MAX_EXCERPT = 200;

const HTML = /<\s*(!doctype|html|head|body|title|div|p|h1|h2|center|pre|script|style|table)\b/i;
/** A long run of letters and digits (with a digit): the shape of a token, a key or a session id. */
const TOKEN_SHAPED = /\b(?=[A-Za-z0-9_]*\d)[A-Za-z0-9_]{24,}\b/g;
const HEADER_ECHO = /\b(circle-token|authorization|cookie|set-cookie)\s*:/i;

export function serverExcerpt(body: unknown, bodyText: string, contentType: string | null): string {
  const fields = typeof body === 'object' && body !== null ? (body as { message?: unknown; error?: unknown }) : undefined;
  const fromJson = typeof fields?.message === 'string' ? fields.message : typeof fields?.error === 'string' ? fields.error : undefined;
  // A JSON body without a message says nothing a person can use; its fields are internal.
  if (fields && fromJson === undefined) return '';
  const text = fromJson ?? bodyText;
  if (HTML.test(text) || (fromJson === undefined && /text\/html/i.test(contentType ?? ''))) return 'an HTML page';
  if (HEADER_ECHO.test(text)) return 'a reply that quotes request headers';
  const line = redact(text)
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(TOKEN_SHAPED, '****');
  return line.length > MAX_EXCERPT ? `${line.slice(0, MAX_EXCERPT - 1).trimEnd()}…` : line;
}

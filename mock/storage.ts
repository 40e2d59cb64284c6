/**
 * The mock's "cloud storage" host: a second loopback HTTP server serving the usage export's parts
 * at pre-signed-looking URLs (GET /usage/<job>/<part>.csv.gz?X-Amz-...&X-Amz-Signature=...).
 *
 * Like a pre-signed S3 URL it needs no token; a changed path or a missing or wrong signature
 * answers 403 with an S3-style XML body. It records every request with its headers (storageLog)
 * so tests can prove a client never sends its CircleCI token here. Parts are gzipped CSV files
 * served as they are (Content-Type application/gzip, no Content-Encoding).
 */
import http from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { createHmac } from 'node:crypto';

export interface StorageLogEntry {
  method: string;
  /** Path and query as sent. */
  path: string;
  status: number;
  /** The request headers (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
}

/** A part: gzipped bytes in memory, or a gzipped file on disk (streamed). */
export type StoredPart = { data: Buffer } | { file: string };

export interface StorageServer {
  port: number;
  log: StorageLogEntry[];
  /** Puts an export's parts on the host. */
  put(jobId: string, parts: StoredPart[]): void;
  /** The pre-signed URL of a part, on the host name the client used to reach the API. */
  url(hostname: string, jobId: string, part: number, atMs: number): string;
  /** The first n part downloads (from now) answer 503. */
  setFailFirst(n: number): void;
  close(): Promise<void>;
}

const XML_403 =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>';
const XML_404 = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>';

export async function startStorage(host: string, secret: string, failFirst = 0): Promise<StorageServer> {
  const parts = new Map<string, StoredPart>();
  const log: StorageLogEntry[] = [];
  let failLeft = Math.max(0, failFirst);
  const sign = (path: string, query: string): string => createHmac('sha256', secret).update(`${path}?${query}`).digest('hex');

  const server = http.createServer((req, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://storage.invalid');
    const reply = (status: number, body: string, type = 'application/xml'): void => {
      log.push({ method: req.method ?? '', path: req.url ?? '', status, headers: { ...req.headers } });
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    const given = url.searchParams.get('X-Amz-Signature');
    const unsigned = new URLSearchParams(url.searchParams);
    unsigned.delete('X-Amz-Signature');
    if (req.method !== 'GET' || !given || given !== sign(url.pathname, unsigned.toString())) return reply(403, XML_403);
    const part = parts.get(url.pathname);
    if (!part) return reply(404, XML_404);
    if (failLeft > 0) {
      failLeft--;
      return reply(503, '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
    }
    log.push({ method: req.method, path: req.url ?? '', status: 200, headers: { ...req.headers } });
    if ('data' in part) {
      res.writeHead(200, { 'Content-Type': 'application/gzip', 'Content-Length': part.data.length });
      res.end(part.data);
    } else {
      res.writeHead(200, { 'Content-Type': 'application/gzip', 'Content-Length': statSync(part.file).size });
      createReadStream(part.file).pipe(res);
    }
  });
  const sockets = new Set<Socket>();
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    log,
    put(jobId, list) {
      list.forEach((p, i) => parts.set(`/usage/${jobId}/${i}.csv.gz`, p));
    },
    url(hostname, jobId, part, atMs) {
      const path = `/usage/${jobId}/${part}.csv.gz`;
      const date = new Date(atMs).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
      const query = new URLSearchParams({
        'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
        'X-Amz-Credential': `AKIAMOCKUSAGEEXPORT/${date.slice(0, 8)}/us-east-1/s3/aws4_request`,
        'X-Amz-Date': date,
        'X-Amz-Expires': '3600',
        'X-Amz-SignedHeaders': 'host',
      }).toString();
      const h = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
      return `http://${h}:${port}${path}?${query}&X-Amz-Signature=${sign(path, query)}`;
    },
    setFailFirst(n) {
      failLeft = Math.max(0, n);
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

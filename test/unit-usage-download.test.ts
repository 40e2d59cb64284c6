/**
 * A usage export part downloaded in-process from a loopback server: a body cut half-way is
 * retried, and the rows already read are not read twice; no credential is sent; plain http to
 * another host is refused.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { partRows } from '../src/circleci/usage-export.js';
import { DEFAULT_RETRY_POLICY } from '../src/circleci/retry.js';

const POLICY = { ...DEFAULT_RETRY_POLICY, scale: 0.001, timeoutMs: 5_000 };
const ROWS = Array.from({ length: 400 }, (_, i) => [`job-${i}`, i % 7 === 0 ? '"checkout ""shallow"", depth=1\nsparse"' : `build-${i}`, String(i)]);
const CSV = 'JOB_ID,JOB_NAME,JOB_RUN_NUMBER\n' + ROWS.map((r) => r.join(',')).join('\n') + '\n';

let server: http.Server;
let url: string;
const seen: http.IncomingHttpHeaders[] = [];
let cutFirst = true;

beforeAll(async () => {
  const body = gzipSync(CSV);
  server = http.createServer((req, res) => {
    if (req.url?.startsWith('/expired')) {
      // S3's answer to an expired link echoes the signed request: it must not be quoted.
      res.writeHead(403, { 'Content-Type': 'application/xml' });
      res.end('<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>3600</X-Amz-Expires><StringToSign>AWS4-HMAC-SHA256 secret-ish</StringToSign></Error>');
      return;
    }
    seen.push(req.headers);
    res.writeHead(200, { 'Content-Type': 'application/gzip', 'Content-Length': body.length });
    if (cutFirst) {
      // Half the part, then the connection drops.
      cutFirst = false;
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/usage/job/0.csv.gz?X-Amz-Signature=abc`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('a body cut half-way is retried; every row comes once, in order, with quoted commas, quotes and newlines; no credential is sent', async () => {
  const retries: string[] = [];
  const got: string[][] = [];
  for await (const row of partRows(url, { policy: POLICY, allowInsecureHttp: false, onRetry: (reason) => retries.push(reason) })) {
    expect(row.columns).toEqual(['job_id', 'job_name', 'job_run_number']);
    got.push(row.values);
  }
  expect(retries).toHaveLength(1);
  // The reason is logged: it names the failure, never the signed URL.
  expect(retries[0]).not.toMatch(/Signature/);
  expect(seen).toHaveLength(2);
  expect(got.length).toBe(ROWS.length);
  expect(got.map((r) => r[0])).toEqual(ROWS.map((r) => r[0]));
  expect(got[0][1]).toBe('checkout "shallow", depth=1\nsparse');
  for (const h of seen) expect(Object.keys(h).filter((k) => /token|authorization|cookie/i.test(k))).toEqual([]);
});

test('plain http to a host other than this machine is refused, naming allow_insecure_http', async () => {
  const rows = partRows('http://storage.example.com/usage/0.csv.gz?sig=1', { policy: POLICY, allowInsecureHttp: false });
  await expect(rows.next()).rejects.toThrow(/not https: not downloaded.*allow_insecure_http/);
});

test('an expired link (403) is not retried: the message names the part by host and path, quotes only the error code, and says the next sync gets fresh links', async () => {
  const expired = url.replace('/usage/job/0.csv.gz', '/expired/0.csv.gz');
  const rows = partRows(expired, { policy: POLICY, allowInsecureHttp: false });
  const error = await rows.next().then(() => undefined, (e: Error) => e);
  expect(error?.message).toMatch(/^Downloading a usage export part \(127\.0\.0\.1:\d+\/expired\/0\.csv\.gz\) answered HTTP 403 \(AccessDenied\)\. The link may have expired: the next sync/);
  expect(error?.message).not.toMatch(/Signature|StringToSign|X-Amz/);
});

/**
 * The mock's Usage Export API and storage host (mock/usageRoutes.ts, storage.ts, usageCsv.ts):
 * real HTTP on 127.0.0.1 with the global fetch; CSV parts parsed with csv-parse.
 */
import http from 'node:http';
import { mkdtempSync, rmSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, createGunzip } from 'node:zlib';
import { parse as parseSync } from 'csv-parse/sync';
import { parse } from 'csv-parse';
import { startMockServer, type MockOptions, type MockServer } from '../mock/server.js';
import { World, ODD_JOB_NAME } from '../mock/world.js';
import { USAGE_COLUMNS, USAGE_COLUMN_TYPES, usageRows, writeUsageExport, type UsageRow } from '../mock/usageCsv.js';

const TOKEN = 'mock-usage-token-0123456789';
const DAY = 86_400_000;
const NOW = new Date('2026-03-10T15:00:00Z');
const TODAY = Date.parse('2026-03-10T00:00:00Z');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const START = '2026-02-28T00:00:00Z';
const END = '2026-03-10T12:00:00Z';

const world = new World({ seed: 3, now: NOW, historyDays: 12, pipelinesPerDay: 4 });
const [acme, bbAcme] = world.organizations();
const servers: MockServer[] = [];

async function mockWith(opts: Partial<MockOptions> = {}): Promise<MockServer> {
  const s = await startMockServer({ world, token: TOKEN, ...opts });
  servers.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}
async function call(s: MockServer, path: string, opts: { method?: string; body?: unknown; token?: string | null } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token !== null) headers['Circle-Token'] = opts.token ?? TOKEN;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(s.baseUrl + path, {
    method: opts.method ?? 'GET',
    headers,
    body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, headers: res.headers };
}
const create = (s: MockServer, org: string, body: unknown, token?: string | null) =>
  call(s, `/organizations/${org}/usage_export_job`, { method: 'POST', body, token });
const poll = (s: MockServer, org: string, id: string) => call(s, `/organizations/${org}/usage_export_job/${id}`);

/** Polls until the job leaves created/processing (the mock moves on each poll; bounded). */
async function finish(s: MockServer, org: string, id: string): Promise<Answer> {
  for (let i = 0; i < 20; i++) {
    const r = await poll(s, org, id);
    if (r.status !== 200 || (r.body.state !== 'created' && r.body.state !== 'processing')) return r;
  }
  throw new Error('export never finished');
}

/** Downloads a part with no token, gunzips it: the CSV text. */
async function download(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return gunzipSync(Buffer.from(await res.arrayBuffer())).toString('utf8');
}

/** A CSV cell as the typed row holds it, read by the documented column types (not the mock's code). */
function typed(col: (typeof USAGE_COLUMNS)[number], cell: string): string | number | boolean | null {
  if (cell === '') return null;
  const t = USAGE_COLUMN_TYPES[col];
  if (t === 'number') return Number(cell);
  if (t === 'boolean') {
    expect(['Y', 'N']).toContain(cell);
    return cell === 'Y';
  }
  return cell;
}
function rowsOf(csv: string): UsageRow[] {
  const records: string[][] = parseSync(csv, { relax_column_count: false });
  expect(records[0]).toEqual(USAGE_COLUMNS.map((c) => c.toUpperCase()));
  return records.slice(1).map((r) => Object.fromEntries(USAGE_COLUMNS.map((c, i) => [c, typed(c, r[i])])) as UsageRow);
}

describe('create and poll', () => {
  test('the v2 project payload carries the organization id the usage routes take', async () => {
    const s = await mockWith();
    const r = await call(s, '/project/gh/acme/api');
    expect(r.status).toBe(200);
    expect(r.body.organization_id).toBe(acme.id);
  });

  test('created -> processing -> completed; the parts hold the window\'s job runs, joined to the world\'s jobs', async () => {
    const s = await mockWith();
    const c = await create(s, acme.id, { start: START, end: END });
    expect(c.status).toBe(201);
    expect(c.body).toEqual({ usage_export_job_id: expect.stringMatching(UUID), state: 'created', start: START, end: END, download_urls: [] });
    const id = c.body.usage_export_job_id;

    const p1 = await poll(s, acme.id, id);
    expect(p1.status).toBe(200);
    expect(p1.body).toEqual({ usage_export_job_id: id, state: 'processing', start: START, end: END, download_urls: [] });
    const p2 = await poll(s, acme.id, id);
    expect(p2.body.state).toBe('completed');
    expect(p2.body.error_reason).toBeUndefined();
    expect(p2.body.download_urls).toHaveLength(1);
    const url = new URL(p2.body.download_urls[0]);
    expect(`${url.protocol}//${url.host}`).toBe(s.storageUrl);
    expect(url.pathname).toBe(`/usage/${id}/0.csv.gz`);
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);

    const csv = await download(p2.body.download_urls[0]);
    const rows = rowsOf(csv);
    // The same rows the ground truth gives, in the same order.
    expect(rows).toEqual(usageRows(world, acme.id, new Date(START), new Date(END)));

    // Independently of usageRows: exactly the numbered build jobs of gh/acme/api whose run started
    // in the window and stopped before today (UTC), as job details show them.
    const truth = world.groundTruth(new Date(Date.parse(START) - 6 * DAY), { tests: false });
    const expected = truth.job_details
      .filter((d) => d._project_slug === 'gh/acme/api' && d.started_at !== null && d.stopped_at !== null)
      .filter((d) => Date.parse(d.started_at!) >= Date.parse(START) && Date.parse(d.started_at!) < Date.parse(END) && Date.parse(d.stopped_at!) < TODAY)
      .map((d) => d.number)
      .sort((a, b) => a - b);
    expect(expected.length).toBeGreaterThan(20);
    expect(rows.map((r) => r.job_run_number as number).sort((a, b) => a - b)).toEqual(expected);

    // Rows join to jobs: the job id, name, number and workflow of the run.
    const jobs = new Map(truth.jobs.map((j) => [`${j._workflow_id} ${j.id}`, j]));
    for (const r of rows) {
      const j = jobs.get(`${r.workflow_id} ${r.job_id}`);
      expect(j).toBeDefined();
      expect([r.job_name, r.job_run_number, r.pipeline_id, r.project_name, r.organization_id]).toEqual([j!.name, j!.job_number, j!._pipeline_id, 'api', acme.id]);
      expect(r.job_run_seconds).toBe(Math.round((Date.parse(r.job_run_stopped_at as string) - Date.parse(r.job_run_started_at as string)) / 1000));
      expect(typeof r.total_credits).toBe('number');
      expect(r.is_unregistered_user === true || r.is_unregistered_user === false).toBe(true);
    }
    // A job run appears once, even where a rerun from failed carried it into a second workflow.
    expect(new Set(rows.map((r) => r.job_id)).size).toBe(rows.length);
    // Some cells are empty (absent values).
    expect(rows.every((r) => r.lease_credits === null)).toBe(true);

    // CSV-hard content: a name with a comma, a quote and a newline, quoted per RFC 4180.
    expect(rows.some((r) => r.job_name === ODD_JOB_NAME)).toBe(true);
    expect(csv).toContain('"checkout ""shallow"", depth=1\nsparse"');
    // A parser that splits lines and commas gets a different number of cells.
    expect(csv.split('\n').some((line) => line !== '' && line.split(',').length !== USAGE_COLUMNS.length)).toBe(true);
  });

  test('shared_org_ids add the shared organizations\' rows', async () => {
    const s = await mockWith({ usage: { readyAfterPolls: 1 } });
    const c = await create(s, acme.id, { start: START, end: END, shared_org_ids: [bbAcme.id] });
    const done = await finish(s, acme.id, c.body.usage_export_job_id);
    const rows = rowsOf(await download(done.body.download_urls[0]));
    expect(new Set(rows.map((r) => r.organization_id))).toEqual(new Set([acme.id, bbAcme.id]));
    expect(rows).toEqual(usageRows(world, acme.id, new Date(START), new Date(END), [bbAcme.id]));
  });

  test('rowsPerPart splits the export into several gzipped parts, each with the header', async () => {
    const s = await mockWith({ usage: { rowsPerPart: 7, readyAfterPolls: 1 } });
    const c = await create(s, acme.id, { start: START, end: END });
    const done = await finish(s, acme.id, c.body.usage_export_job_id);
    expect(done.body.state).toBe('completed');
    const all = usageRows(world, acme.id, new Date(START), new Date(END));
    const urls: string[] = done.body.download_urls;
    expect(urls).toHaveLength(Math.ceil(all.length / 7));
    const parts = await Promise.all(urls.map(download));
    for (const p of parts) expect(p.startsWith('ORGANIZATION_ID,ORGANIZATION_NAME,')).toBe(true);
    expect(parts.flatMap(rowsOf)).toEqual(all);
  });

  test('readyAfterPolls and readyAfterMs hold the job pending; setUsageOptions lets it complete', async () => {
    const s = await mockWith({ usage: { readyAfterPolls: 3 } });
    const id = (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id;
    expect((await poll(s, acme.id, id)).body.state).toBe('created');
    expect((await poll(s, acme.id, id)).body.state).toBe('processing');
    expect((await poll(s, acme.id, id)).body.state).toBe('completed');

    s.setUsageOptions({ readyAfterPolls: 1, readyAfterMs: 3_600_000 });
    const id2 = (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id;
    for (let i = 0; i < 3; i++) expect((await poll(s, acme.id, id2)).body).toMatchObject({ state: 'processing', download_urls: [] });
    s.setUsageOptions({ readyAfterMs: 0 });
    expect((await poll(s, acme.id, id2)).body.state).toBe('completed');
    expect(s.usageJobs().map((j) => [j.id, j.state])).toEqual([
      [id, 'completed'],
      [id2, 'completed'],
    ]);
  });

  test('failFirst: the first jobs of each organization fail with an error_reason, later ones complete', async () => {
    const s = await mockWith({ usage: { failFirst: 1, readyAfterPolls: 1 } });
    const a1 = await finish(s, acme.id, (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id);
    expect(a1.body).toMatchObject({ state: 'failed', download_urls: [], error_reason: expect.stringMatching(/\S/) });
    const a2 = await finish(s, acme.id, (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id);
    expect(a2.body.state).toBe('completed');
    const b1 = await finish(s, bbAcme.id, (await create(s, bbAcme.id, { start: START, end: END })).body.usage_export_job_id);
    expect(b1.body.state).toBe('failed');
  });
});

describe('errors', () => {
  let s: MockServer;
  beforeAll(async () => {
    s = await mockWith({ usage: { unavailableOrgs: [bbAcme.id] } });
  });

  test.each([
    ['a date without a time', { start: '2026-03-01', end: END }],
    ['not a date', { start: 'yesterday', end: END }],
    ['a missing end', { start: START }],
    ['start equal to end', { start: START, end: START }],
    ['start after end', { start: END, end: START }],
    ['a window of 31 days and a second', { start: '2026-02-01T00:00:00Z', end: '2026-03-04T00:00:01Z' }],
    ['a start more than a year ago', { start: '2025-03-10T14:59:59Z', end: '2025-03-20T00:00:00Z' }],
    ['an end in the future', { start: '2026-03-09T00:00:00Z', end: '2026-03-10T15:00:01Z' }],
    ['shared_org_ids that are not a list of ids', { start: START, end: END, shared_org_ids: 'x' }],
  ])('400 for %s', async (_, body) => {
    const r = await create(s, acme.id, body);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/\S/);
  });

  test('400 for a body that is not JSON; the edges of the rules are accepted', async () => {
    expect((await create(s, acme.id, '{start:')).status).toBe(400);
    expect((await create(s, acme.id, { start: '2026-02-01T00:00:00Z', end: '2026-03-04T00:00:00Z' })).status).toBe(201);
    expect((await create(s, acme.id, { start: '2025-03-10T15:00:00Z', end: '2025-03-20T00:00:00+02:00' })).status).toBe(201);
    expect((await create(s, acme.id, { start: '2026-03-09T00:00:00.000Z', end: '2026-03-10T15:00:00Z' })).status).toBe(201);
  });

  test('404 for an unknown organization, an unavailable one, an unknown job, another organization\'s job', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const r of [await create(s, unknown, { start: START, end: END }), await create(s, bbAcme.id, { start: START, end: END }), await poll(s, acme.id, unknown)]) {
      expect(r.status).toBe(404);
      expect(r.body.message).toMatch(/\S/);
    }
    const id = (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id;
    const other = world.organizations()[2].id;
    expect((await poll(s, other, id)).status).toBe(404);
    expect((await poll(s, acme.id, id)).status).toBe(200);
  });

  test('CircleCI Server (server: true) has no usage export: 404', async () => {
    const onServer = await mockWith({ server: true });
    const r = await create(onServer, acme.id, { start: START, end: END });
    expect(r.status).toBe(404);
    expect(r.body.message).toMatch(/\S/);
  });

  test('401 without a token or with a wrong one; GET on the create path is 405', async () => {
    for (const token of [null, 'wrong-token']) {
      const r = await create(s, acme.id, { start: START, end: END }, token);
      expect(r.status).toBe(401);
    }
    expect((await call(s, `/organizations/${acme.id}/usage_export_job`)).status).toBe(405);
  });
});

test('create rate limit per organization: 429 with Retry-After; bad requests take no slot', async () => {
  const s = await mockWith({ usage: { createLimit: { count: 2, windowMs: 60_000 } } });
  expect((await create(s, acme.id, { start: END, end: START })).status).toBe(400);
  expect((await create(s, acme.id, { start: START, end: END })).status).toBe(201);
  expect((await create(s, acme.id, { start: START, end: END })).status).toBe(201);
  const r = await create(s, acme.id, { start: START, end: END });
  expect(r.status).toBe(429);
  expect(r.body).toEqual({ message: 'Rate limit exceeded.' });
  const retry = Number(r.headers.get('retry-after'));
  expect(retry).toBeGreaterThanOrEqual(1);
  expect(retry).toBeLessThanOrEqual(60);
  // Another organization has its own limit.
  expect((await create(s, world.organizations()[2].id, { start: START, end: END })).status).toBe(201);
});

describe('storage host', () => {
  test('records the headers of every download; a changed signature is 403; a token sent there is seen', async () => {
    const s = await mockWith({ usage: { readyAfterPolls: 1 } });
    const done = await finish(s, acme.id, (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id);
    const url: string = done.body.download_urls[0];
    await download(url);
    expect(s.storageLog).toHaveLength(1);
    expect(s.storageLog[0]).toMatchObject({ method: 'GET', status: 200, path: url.slice(s.storageUrl.length) });
    expect(s.storageLog[0].headers.authorization).toBeUndefined();
    expect(s.storageLog[0].headers['circle-token']).toBeUndefined();

    const tampered = url.replace('/0.csv.gz', '/1.csv.gz');
    expect((await fetch(tampered)).status).toBe(403);
    await (await fetch(url, { headers: { 'Circle-Token': TOKEN, Authorization: `Bearer ${TOKEN}` } })).arrayBuffer();
    expect(s.storageLog[2].headers).toMatchObject({ 'circle-token': TOKEN, authorization: `Bearer ${TOKEN}` });
  });

  test('storageFailFirst: the first part downloads answer 503, then the part', async () => {
    const s = await mockWith({ usage: { readyAfterPolls: 1, storageFailFirst: 2 } });
    const done = await finish(s, acme.id, (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id);
    const url: string = done.body.download_urls[0];
    expect((await fetch(url)).status).toBe(503);
    expect((await fetch(url)).status).toBe(503);
    expect(rowsOf(await download(url)).length).toBeGreaterThan(0);
  });

  test('download URLs name the host the client used for the API', async () => {
    const s = await mockWith({ usage: { readyAfterPolls: 1 } });
    const id = (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id;
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: s.port, path: `/api/v2/organizations/${acme.id}/usage_export_job/${id}`, headers: { Host: `localhost:${s.port}`, 'Circle-Token': TOKEN } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const storagePort = new URL(s.storageUrl).port;
    expect(JSON.parse(body).download_urls[0]).toMatch(new RegExp(`^http://localhost:${storagePort}/usage/${id}/0\\.csv\\.gz\\?`));
  });
});

test('writeUsageExport streams a big gzipped export that the mock serves as the single part', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mock-usage-'));
  try {
    const file = join(dir, 'export.csv.gz');
    const { rows, bytes } = await writeUsageExport(file, 2_000_000);
    expect(bytes).toBeGreaterThanOrEqual(2_000_000);
    expect(bytes).toBeLessThan(2_010_000);
    // Streamed parse of the file: every record has the 48 cells; the count matches.
    let count = 0;
    let hard = 0;
    const parser = createReadStream(file).pipe(createGunzip()).pipe(parse({ columns: true }));
    for await (const rec of parser as AsyncIterable<Record<string, string>>) {
      count++;
      expect(Object.keys(rec)).toHaveLength(USAGE_COLUMNS.length);
      if (/[",\n]/.test(rec.JOB_NAME) || /[",\n]/.test(rec.WORKFLOW_NAME)) hard++;
    }
    expect(count).toBe(rows);
    expect(hard).toBeGreaterThan(0);

    const s = await mockWith({ usage: { readyAfterPolls: 1, exportFile: file } });
    const done = await finish(s, acme.id, (await create(s, acme.id, { start: START, end: END })).body.usage_export_job_id);
    expect(done.body.download_urls).toHaveLength(1);
    expect(rowsOf(await download(done.body.download_urls[0]))).toHaveLength(rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The mock CircleCI API v2 (mock/): faithful to the contract in the reference (auth rules,
 * slugs, pagination, data shapes), deterministic, and evolving as its clock moves. Real HTTP over
 * 127.0.0.1 with the global fetch.
 */
import { startMockServer, type FaultOptions, type MockOptions, type MockServer } from '../mock/server.js';
import { World, serviceSlugs, type JobDetailsRecord, type TestItem, type TestRecord, type WorkflowJobItem } from '../mock/world.js';
import type { Job, Pipeline, Workflow } from '../src/types/records.js';
import { MOCK_TOKEN, allPages, answerOf, call, type Answer } from './mock-client.js';

const TOKEN = MOCK_TOKEN;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = new Date('2026-03-01T12:00:00Z');
const MS_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SEC_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const APP = 'circleci/8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f/0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5';


const slugPath = (slug: string): string => slug.split('/').map(encodeURIComponent).join('/');
const byId = <T extends { id: string }>(xs: T[]): T[] => [...xs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
const jobKey = (j: Job): string => `${j.id}/${j._workflow_id}`;

let world: World;
let mock: MockServer;

beforeAll(async () => {
  world = new World({ seed: 11, now: T0, historyDays: 20, pipelinesPerDay: 6 });
  mock = await startMockServer({ world, token: TOKEN });
});
afterAll(async () => {
  await mock.close();
});

async function withServer<T>(opts: Partial<MockOptions> & { world?: World }, fn: (s: MockServer) => Promise<T>): Promise<T> {
  const s = await startMockServer({ world: opts.world ?? world, token: TOKEN, ...opts });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

describe('auth', () => {
  test('GET /me: 401 without or with a wrong token; Circle-Token, Basic token: and Basic token work', async () => {
    for (const r of [await call(mock, '/me', { token: null }), await call(mock, '/me', { token: 'nope' })]) {
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ message: 'You must log in first.' });
    }
    const ok = await call(mock, '/me');
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ id: expect.stringMatching(UUID), login: expect.any(String), name: expect.any(String) });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    expect((await call(mock, '/me', { headers: { Authorization: `Basic ${b64(`${TOKEN}:`)}` } })).status).toBe(200);
    expect((await call(mock, '/me', { headers: { Authorization: `Basic ${b64(TOKEN)}` } })).status).toBe(200);
    // The raw token in Basic, without base64, is not a credential.
    expect((await call(mock, '/me', { headers: { Authorization: `Basic ${TOKEN}` } })).status).toBe(401);
  });

  test('?circle-token= is rejected with the deprecation message', async () => {
    const r = await call(mock, `/me?circle-token=${TOKEN}`, { token: null });
    expect(r.status).toBe(401);
    expect(r.body.message).toMatch(/query parameter authentication has been deprecated/);
  });

  test('project routes answer 404 Project not found without a valid token, and for unknown projects', async () => {
    const paths = ['/project/gh/acme/api', '/project/gh/acme/api/pipeline', '/project/gh/acme/api/pipeline/5', '/project/gh/acme/api/job/5'];
    for (const path of paths) {
      for (const token of [null, 'wrong-token']) {
        const r = await call(mock, path, { token });
        expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Project not found' } });
      }
    }
    for (const path of ['/project/gh/acme/nope', '/project/gh/acme/nope/pipeline', '/project/bb/other/api/pipeline/1']) {
      const r = await call(mock, path);
      expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Project not found' } });
    }
  });

  test('id routes answer 404 Not Found without a valid token and for unknown ids', async () => {
    const pipeline = world.listPipelines('gh/acme/api')[5];
    const workflow = world.workflowsOf(pipeline.id)![0];
    const paths = [`/pipeline/${pipeline.id}`, `/pipeline/${pipeline.id}/workflow`, `/workflow/${workflow.id}`, `/workflow/${workflow.id}/job`];
    for (const path of paths) {
      expect((await call(mock, path)).status).toBe(200);
      for (const token of [null, 'wrong-token']) {
        const r = await call(mock, path, { token });
        expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Not Found' } });
      }
    }
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const path of [`/pipeline/${unknown}`, `/pipeline/${unknown}/workflow`, `/workflow/${unknown}`, `/workflow/${unknown}/job`]) {
      expect((await call(mock, path)).body).toEqual({ message: 'Not Found' });
    }
  });

  test('unknown paths are 404 Not Found; other methods 405', async () => {
    for (const path of ['/nope', '/project/gh/acme', '/project/gh/acme/api/extra', '/pipeline', '/../me', '/workflow/x/job/y']) {
      const r = await call(mock, path);
      expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Not Found' } });
    }
    const r = await call(mock, '/me', { method: 'POST' });
    expect(r.status).toBe(405);
  });
});

describe('slugs', () => {
  test('long forms and %2F-escaped slugs are accepted; payloads always carry the short form', async () => {
    const short = await call(mock, '/project/gh/acme/api');
    expect(short.status).toBe(200);
    expect(short.body).toMatchObject({ slug: 'gh/acme/api', organization_slug: 'gh/acme', vcs_info: { provider: 'GitHub' } });
    for (const path of ['/project/github/acme/api', '/project/gh%2Facme%2Fapi', '/project/github%2Facme%2Fapi', '/project/GitHub/acme/api']) {
      const r = await call(mock, path);
      expect({ path, body: r.body }).toEqual({ path, body: short.body });
    }
    const bb = await call(mock, '/project/bitbucket/acme/web/pipeline');
    expect(bb.status).toBe(200);
    expect(new Set(bb.body.items.map((p: Pipeline) => p.project_slug))).toEqual(new Set(['bb/acme/web']));
    const viaAlias = await call(mock, '/project/github%2Facme%2Fapi/pipeline');
    expect(viaAlias.body).toEqual((await call(mock, '/project/gh/acme/api/pipeline')).body);
  });

  test('circleci/<org-id>/<project-id> projects work (GitHub App style pipelines)', async () => {
    const r = await call(mock, `/project/${slugPath(APP)}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ slug: APP, id: APP.split('/')[2], organization_id: APP.split('/')[1] });
    const list = await call(mock, `/project/${encodeURIComponent(APP)}/pipeline`);
    expect(list.body.items.length).toBe(20);
    expect(list.body.items.every((p: Pipeline) => p.project_slug === APP)).toBe(true);
    expect(list.body.items.some((p: Pipeline) => typeof (p.trigger_parameters as { github_app?: unknown })?.github_app === 'object')).toBe(true);
  });
});

describe('pipeline lists', () => {
  test('newest first, 20 per page; following every token yields exactly the world\'s pipelines', async () => {
    for (const slug of world.projectSlugs()) {
      const first = await call(mock, `/project/${slugPath(slug)}/pipeline`);
      expect(first.body.items).toHaveLength(20);
      expect(typeof first.body.next_page_token).toBe('string');
      const { items, pages } = await allPages<Pipeline>(mock, `/project/${slugPath(slug)}/pipeline`);
      const expected = world.listPipelines(slug);
      expect(items.map((p) => p.id)).toEqual(expected.map((p) => p.id));
      expect(new Set(items.map((p) => p.id)).size).toBe(items.length);
      expect(pages).toBe(Math.ceil(expected.length / 20));
      for (let i = 1; i < items.length; i++) {
        expect(items[i].number!).toBeLessThan(items[i - 1].number!);
        expect(items[i].created_at! < items[i - 1].created_at!).toBe(true);
      }
      for (const p of items) {
        expect(p.id).toMatch(UUID);
        expect(p.created_at).toMatch(MS_ISO);
        expect(p.updated_at).toMatch(MS_ISO);
        expect(p.updated_at! >= p.created_at!).toBe(true);
        expect(p.project_slug).toBe(slug);
      }
    }
  });

  test('the last page has next_page_token null, or no key with omitLastPageToken', async () => {
    const n = world.listPipelines('gh/acme/api').length;
    const { items } = await allPages<Pipeline>(mock, '/project/gh/acme/api/pipeline');
    expect(items.length).toBe(n);
    // Walk again, keeping the last page body.
    const walk = async (s: MockServer): Promise<Record<string, unknown>> => {
      let body: Record<string, unknown> = {};
      let token: string | undefined;
      do {
        body = (await call(s, `/project/gh/acme/api/pipeline${token ? `?page-token=${token}` : ''}`)).body;
        token = body.next_page_token as string | undefined;
      } while (token);
      return body;
    };
    const last = await walk(mock);
    expect('next_page_token' in last).toBe(true);
    expect(last.next_page_token).toBeNull();
    await withServer({ omitLastPageToken: true }, async (s) => {
      const lastOmitted = await walk(s);
      expect('next_page_token' in lastOmitted).toBe(false);
      expect((lastOmitted.items as unknown[]).length).toBeGreaterThan(0);
    });
  });

  test('a garbled, forged or cross-route token is 404 Not Found', async () => {
    const first = await call(mock, '/project/gh/acme/api/pipeline');
    const token: string = first.body.next_page_token;
    const branchFirst = await call(mock, '/project/gh/acme/api/pipeline?branch=main');
    const branchToken: string = branchFirst.body.next_page_token;
    expect(typeof branchToken).toBe('string');
    const [payload] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), n: 3 })).toString('base64url') + '.' + token.split('.')[1];
    const pipelineId = first.body.items[0].id;
    const cases = [
      `/project/gh/acme/api/pipeline?page-token=garbage`,
      `/project/gh/acme/api/pipeline?page-token=${token.slice(0, -2)}`,
      `/project/gh/acme/api/pipeline?page-token=${forged}`,
      `/project/bb/acme/web/pipeline?page-token=${token}`, // another project
      `/project/gh/acme/api/pipeline?branch=main&page-token=${token}`, // another branch
      `/project/gh/acme/api/pipeline?page-token=${branchToken}`, // branch token without the branch
      `/pipeline/${pipelineId}/workflow?page-token=${token}`, // another route
    ];
    for (const path of cases) {
      const r = await call(mock, path);
      expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Not Found' } });
    }
    // The same token on an alias of the same slug is fine.
    expect((await call(mock, `/project/github/acme/api/pipeline?page-token=${token}`)).status).toBe(200);
  });

  test('the branch filter returns only that branch, paged with its own tokens', async () => {
    const { items } = await allPages<Pipeline>(mock, '/project/gh/acme/api/pipeline', { branch: 'main' });
    expect(items.length).toBeGreaterThan(20);
    const branchOf = (p: Pipeline): unknown => p.vcs?.branch ?? (p.trigger_parameters as { git?: { branch?: string } } | undefined)?.git?.branch;
    expect(items.every((p) => branchOf(p) === 'main')).toBe(true);
    expect(items.map((p) => p.id)).toEqual(world.listPipelines('gh/acme/api', 'main').map((p) => p.id));
    expect((await call(mock, '/project/gh/acme/api/pipeline?branch=no-such-branch')).body).toEqual({ items: [], next_page_token: null });
  });

  test('paging while new pipelines arrive neither skips nor repeats', async () => {
    const w = new World({ seed: 5, now: T0, historyDays: 10, pipelinesPerDay: 12 });
    await withServer({ world: w }, async (s) => {
      const before = w.listPipelines('gh/acme/api').map((p) => p.id);
      const first = await call(s, '/project/gh/acme/api/pipeline');
      w.advance(2 * DAY);
      expect(w.listPipelines('gh/acme/api').length).toBeGreaterThan(before.length);
      const seen: string[] = first.body.items.map((p: Pipeline) => p.id);
      let token: string | null = first.body.next_page_token;
      while (token) {
        const r = await call(s, `/project/gh/acme/api/pipeline?page-token=${token}`);
        seen.push(...r.body.items.map((p: Pipeline) => p.id));
        token = r.body.next_page_token;
      }
      expect(seen).toEqual(before);
      // A fresh walk sees the new ones on top.
      const fresh = await allPages<Pipeline>(s, '/project/gh/acme/api/pipeline');
      expect(fresh.items.map((p) => p.id)).toEqual(w.listPipelines('gh/acme/api').map((p) => p.id));
    });
  });

  test('a pipeline by number and by id equals its list item', async () => {
    const p = world.listPipelines('bb/acme/web')[7];
    expect((await call(mock, `/project/bb/acme/web/pipeline/${p.number}`)).body).toEqual(p);
    expect((await call(mock, `/pipeline/${p.id}`)).body).toEqual(p);
    expect((await call(mock, '/project/bb/acme/web/pipeline/999999')).status).toBe(404);
  });
});

describe('workflows and jobs', () => {
  const truth = () => world.groundTruth(new Date(0));

  test('jobs paginate with jobPageSize (5); every page of every workflow equals the world', async () => {
    const t = truth();
    const counts = new Map<string, number>();
    for (const j of t.jobs) counts.set(j._workflow_id, (counts.get(j._workflow_id) ?? 0) + 1);
    const big = [...counts].filter(([, n]) => n > 5).map(([id]) => id);
    expect(big.length).toBeGreaterThan(0);
    for (const id of big.slice(0, 5)) {
      const { items, pages } = await allPages<WorkflowJobItem>(mock, `/workflow/${id}/job`);
      expect(pages).toBe(2);
      expect(items).toEqual(world.jobsOf(id));
    }
    await withServer({ jobPageSize: 2 }, async (s) => {
      const { items, pages } = await allPages<WorkflowJobItem>(s, `/workflow/${big[0]}/job`);
      expect(pages).toBe(Math.ceil(counts.get(big[0])! / 2));
      expect(items).toEqual(world.jobsOf(big[0]));
    });
    // A job page token is bound to its workflow.
    const firstPage = await call(mock, `/workflow/${big[0]}/job`);
    expect((await call(mock, `/workflow/${big[1]}/job?page-token=${firstPage.body.next_page_token}`)).status).toBe(404);
  });

  test('blocked jobs have no job_number and started_at null; approval jobs look like the real ones', async () => {
    const t = truth();
    const blocked = t.jobs.filter((j) => j.status === 'blocked');
    expect(blocked.length).toBeGreaterThan(0);
    for (const j of blocked) {
      expect('job_number' in j).toBe(false);
      expect(j.started_at).toBeNull();
      expect(j.stopped_at).toBeNull();
    }
    const approvals = t.jobs.filter((j) => j.type === 'approval');
    expect(approvals.length).toBeGreaterThan(0);
    for (const j of approvals) expect(j.approval_request_id).toBe(j.id);
    const approved = approvals.filter((j) => j.status === 'success');
    expect(approved.length).toBeGreaterThan(0);
    for (const j of approved) {
      expect(j.approved_by).toMatch(UUID);
      expect(typeof j.job_number).toBe('number');
      expect(j.started_at).toMatch(SEC_ISO);
    }
    for (const j of t.jobs) {
      if (j.started_at) expect(j.started_at).toMatch(SEC_ISO);
      if (j.stopped_at) expect(j.stopped_at).toMatch(SEC_ISO);
      expect(j.id).toMatch(UUID);
      expect(j.type === 'build' || j.type === 'approval').toBe(true);
    }
    const withDeps = t.jobs.filter((j) => (j.dependencies ?? []).length > 0);
    expect(withDeps.some((j) => j.requires && Object.keys(j.requires).length === j.dependencies!.length)).toBe(true);
  });

  test('job details: 200 for build jobs with a number, 404 for approval jobs and unknown numbers', async () => {
    const t = truth();
    const build = t.jobs.find((j) => j.type === 'build' && typeof j.job_number === 'number' && j.status === 'success' && j.project_slug === 'gh/acme/api')!;
    const d = await call(mock, `/project/gh/acme/api/job/${build.job_number}`);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ number: build.job_number, name: build.name, status: 'success', pipeline: { id: build._pipeline_id } });
    const approval = t.jobs.find((j) => j.type === 'approval' && typeof j.job_number === 'number')!;
    const a = await call(mock, `/project/${slugPath(approval.project_slug!)}/job/${approval.job_number}`);
    expect(a.status).toBe(404);
    expect((await call(mock, '/project/gh/acme/api/job/1')).status).toBe(404);
    expect((await call(mock, '/project/gh/acme/api/job/999999999')).status).toBe(404);
  });

  test('the data has the documented variety', () => {
    const t = truth();
    const wfsOf = new Map<string, Workflow[]>();
    for (const w of t.workflows) wfsOf.set(w.pipeline_id!, [...(wfsOf.get(w.pipeline_id!) ?? []), w]);
    const errored = t.pipelines.filter((p) => p.state === 'errored');
    expect(errored.length).toBeGreaterThan(0);
    for (const p of errored) {
      expect(p.errors![0].type).toMatch(/^config/);
      expect(wfsOf.get(p.id)).toBeUndefined();
    }
    expect(t.pipelines.filter((p) => p.state === 'created').every((p) => Array.isArray(p.errors) && p.errors.length === 0)).toBe(true);
    const noVcs = t.pipelines.filter((p) => !('vcs' in p));
    expect(noVcs.length).toBeGreaterThan(0);
    expect(noVcs.every((p) => typeof (p.trigger_parameters as { git?: { checkout_sha?: string } }).git?.checkout_sha === 'string')).toBe(true);
    const tagged = t.pipelines.filter((p) => p.vcs?.tag);
    expect(tagged.length).toBeGreaterThan(0);
    expect(tagged.every((p) => !('branch' in p.vcs!))).toBe(true);
    expect(t.pipelines.some((p) => p.vcs?.commit && p.vcs.commit.body === null)).toBe(true);
    expect(t.pipelines.some((p) => p.vcs?.review_id && p.vcs.review_url)).toBe(true);
    expect(new Set(t.pipelines.map((p) => p.trigger!.type))).toEqual(new Set(['webhook', 'api', 'scheduled_pipeline', 'explicit']));
    expect(t.pipelines.some((p) => p.trigger!.actor!.login === 'renovate[bot]' && p.trigger!.actor!.avatar_url === null)).toBe(true);
    expect(t.workflows.some((w) => w.tag === 'setup')).toBe(true);
    expect(t.workflows.some((w) => w.status === 'canceled' && typeof w.canceled_by === 'string')).toBe(true);
    for (const w of t.workflows) {
      expect(w.created_at).toMatch(SEC_ISO);
      const terminal = ['success', 'failed', 'error', 'canceled', 'not_run', 'unauthorized'].includes(w.status!);
      if (terminal) expect(w.stopped_at).toMatch(SEC_ISO);
      else expect(w.stopped_at).toBeNull();
    }
    // Numbers grow with created_at within a project.
    for (const slug of world.projectSlugs()) {
      const ps = t.pipelines.filter((p) => p.project_slug === slug).sort((a, b) => a.number! - b.number!);
      for (let i = 1; i < ps.length; i++) expect(ps[i].created_at! > ps[i - 1].created_at!).toBe(true);
    }
    // A fresh world has something in flight near "now".
    expect(t.workflows.some((w) => w.stopped_at === null)).toBe(true);
    expect(t.pipelines.some((p) => p.state === 'setup-pending')).toBe(true);
  });
});

describe('ground truth', () => {
  test('equals what paging the API returns for pipelines since startDate, their workflows and jobs', async () => {
    const startDate = new Date(T0.getTime() - 7 * DAY);
    const got = { pipelines: [] as Pipeline[], workflows: [] as Workflow[], jobs: [] as Job[] };
    for (const slug of world.projectSlugs()) {
      let token: string | null = null;
      let done = false;
      do {
        const r = await call(mock, `/project/${slugPath(slug)}/pipeline${token ? `?page-token=${token}` : ''}`);
        for (const p of r.body.items as Pipeline[]) {
          if (Date.parse(p.created_at!) < startDate.getTime()) done = true;
          else got.pipelines.push(p);
        }
        token = r.body.next_page_token;
      } while (token && !done);
    }
    for (const p of got.pipelines) {
      const { items: wfs } = await allPages<Workflow>(mock, `/pipeline/${p.id}/workflow`);
      got.workflows.push(...wfs);
      for (const w of wfs) {
        const { items } = await allPages<WorkflowJobItem>(mock, `/workflow/${w.id}/job`);
        got.jobs.push(...items.map((j) => ({ ...j, _pipeline_id: p.id, _workflow_id: w.id, _workflow_created_at: w.created_at })));
      }
    }
    const truth = world.groundTruth(startDate);
    expect(truth.pipelines.length).toBeGreaterThan(50);
    expect(byId(got.pipelines)).toEqual(byId(truth.pipelines));
    expect(byId(got.workflows)).toEqual(byId(truth.workflows));
    const sortJobs = (js: Job[]): Job[] => [...js].sort((a, b) => (jobKey(a) < jobKey(b) ? -1 : 1));
    expect(sortJobs(got.jobs)).toEqual(sortJobs(truth.jobs));
    expect(new Set(truth.jobs.map(jobKey)).size).toBe(truth.jobs.length);
  });

  test('determinism: the same seed and clock give the same world; another seed another', () => {
    const a = new World({ seed: 99, now: T0 });
    const b = new World({ seed: 99, now: T0 });
    expect(b.groundTruth(new Date(0))).toEqual(a.groundTruth(new Date(0)));
    // Advancing in steps or at once ends in the same world.
    a.advance(5 * HOUR);
    a.advance(19 * HOUR);
    b.advance(DAY);
    expect(b.groundTruth(new Date(0))).toEqual(a.groundTruth(new Date(0)));
    const c = new World({ seed: 100, now: T0 });
    expect(c.listPipelines('gh/acme/api')[0].id).not.toBe(new World({ seed: 99, now: T0 }).listPipelines('gh/acme/api')[0].id);
  });
});

describe('tests endpoint', () => {
  const TEST_KEYS = ['message', 'source', 'run_time', 'file', 'result', 'name', 'classname'];
  const strip = (t: TestRecord): TestItem => ({ message: t.message, source: t.source, run_time: t.run_time, file: t.file, result: t.result, name: t.name, classname: t.classname });
  const testsPath = (slug: string, n: number): string => `/project/${slugPath(slug)}/${n}/tests`;
  /** Ground-truth test rows by "slug number", in list order. */
  const rowsByJob = (rows: TestRecord[]): Map<string, TestRecord[]> => {
    const out = new Map<string, TestRecord[]>();
    for (const t of rows) {
      const k = `${t._project_slug} ${t._job_number}`;
      out.set(k, [...(out.get(k) ?? []), t]);
    }
    return out;
  };

  test('pages of 20 (testPageSize) with opaque tokens yield the job\'s results; the last page token is null or omitted', async () => {
    const t = world.groundTruth(new Date(0));
    const byJob = rowsByJob(t.tests);
    const long = [...byJob].filter(([, rows]) => rows.length > 20).sort((a, b) => b[1].length - a[1].length);
    expect(long.length).toBeGreaterThanOrEqual(3);
    // The longest needs 3 pages.
    expect(long[0][1].length).toBeGreaterThan(40);
    for (const [, rows] of long.slice(0, 4)) {
      const { _project_slug: slug, _job_number: n } = rows[0];
      const { items, pages } = await allPages<TestItem>(mock, testsPath(slug, n));
      expect(pages).toBe(Math.ceil(rows.length / 20));
      expect(items).toEqual(rows.map(strip));
      expect(items).toEqual(world.jobTests(slug, n));
      for (const it of items) expect(Object.keys(it)).toEqual(TEST_KEYS);
    }
    const [, rows] = long[0];
    const slug = rows[0]._project_slug;
    const n = rows[0]._job_number;
    await withServer({ testPageSize: 7, omitLastPageToken: true }, async (s) => {
      const { items, pages } = await allPages<TestItem>(s, testsPath(slug, n));
      expect(pages).toBe(Math.ceil(rows.length / 7));
      expect(items).toEqual(rows.map(strip));
      const first = await call(s, testsPath(slug, n));
      expect(first.body.items).toHaveLength(7);
      let body = first.body;
      while (body.next_page_token) body = (await call(s, `${testsPath(slug, n)}?page-token=${body.next_page_token}`)).body;
      expect('next_page_token' in body).toBe(false);
      expect(s.counters.byRoute).toMatchObject({ tests: pages + 1 + (pages - 1), jobs: 0, pipelines: 0, other: 0 });
    });
    const last = await call(mock, `${testsPath(slug, n)}?page-token=${(await call(mock, `${testsPath(slug, n)}?page-token=${(await call(mock, testsPath(slug, n))).body.next_page_token}`)).body.next_page_token}`);
    expect(last.body.next_page_token).toBeNull();
  });

  test('a garbled, forged, other-job or other-route token is 404 Not Found', async () => {
    const t = world.groundTruth(new Date(0));
    const long = [...rowsByJob(t.tests)].filter(([, rows]) => rows.length > 20).map(([, rows]) => rows[0]);
    const [a, b] = long;
    const tok: string = (await call(mock, testsPath(a._project_slug, a._job_number))).body.next_page_token;
    expect(typeof tok).toBe('string');
    const [payload, sig] = tok.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), o: 1 })).toString('base64url') + '.' + sig;
    const wf = t.workflows.find((w) => t.jobs.filter((j) => j._workflow_id === w.id).length > 5)!;
    const jobTok: string = (await call(mock, `/workflow/${wf.id}/job`)).body.next_page_token;
    const cases = [
      `${testsPath(a._project_slug, a._job_number)}?page-token=garbage`,
      `${testsPath(a._project_slug, a._job_number)}?page-token=${forged}`,
      `${testsPath(a._project_slug, a._job_number)}?page-token=${jobTok}`,
      `${testsPath(b._project_slug, b._job_number)}?page-token=${tok}`,
      `/workflow/${wf.id}/job?page-token=${tok}`,
    ];
    for (const path of cases) {
      const r = await call(mock, path);
      expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Not Found' } });
    }
    expect((await call(mock, `${testsPath(a._project_slug, a._job_number)}?page-token=${tok}`)).status).toBe(200);
  });

  test('404 Project not found without a valid token or for an unknown project; 404 Not Found for approval, unknown and unnumbered jobs', async () => {
    const t = world.groundTruth(new Date(0));
    const job = t.job_details.find((d) => d.status === 'success')!;
    const path = testsPath(job._project_slug, job.number);
    expect((await call(mock, path)).status).toBe(200);
    for (const token of [null, 'wrong-token']) {
      const r = await call(mock, path, { token });
      expect({ token, status: r.status, body: r.body }).toEqual({ token, status: 404, body: { message: 'Project not found' } });
    }
    expect((await call(mock, `/project/gh/acme/nope/${job.number}/tests`)).body).toEqual({ message: 'Project not found' });
    const approval = t.jobs.find((j) => j.type === 'approval' && typeof j.job_number === 'number')!;
    for (const p of [testsPath(approval.project_slug!, approval.job_number!), testsPath('gh/acme/api', 1), testsPath('gh/acme/api', 999_999_999)]) {
      const r = await call(mock, p);
      expect({ p, status: r.status, body: r.body }).toEqual({ p, status: 404, body: { message: 'Not Found' } });
    }
    // A job that has no number yet: the same world two days on shows the number it will get.
    const w = new World({ seed: 11, now: T0, historyDays: 20, pipelinesPerDay: 6 });
    const blocked = w.groundTruth(new Date(T0.getTime() - DAY)).jobs.filter((j) => j.status === 'blocked' && j.type === 'build');
    expect(blocked.length).toBeGreaterThan(0);
    const later = new World({ seed: 11, now: T0, historyDays: 20, pipelinesPerDay: 6 });
    later.advance(2 * DAY);
    const numbered = blocked.flatMap((j) => {
      const now = later.jobsOf(j._workflow_id)!.find((x) => x.id === j.id)!;
      return typeof now.job_number === 'number' ? [{ slug: j.project_slug!, n: now.job_number }] : [];
    });
    expect(numbered.length).toBeGreaterThan(0);
    await withServer({ world: w }, async (s) => {
      for (const { slug, n } of numbered) {
        const r = await call(s, testsPath(slug, n));
        expect({ n, status: r.status, body: r.body }).toEqual({ n, status: 404, body: { message: 'Not Found' } });
      }
    });
  });

  test('a queued or running job answers 200 with no items; once ended its results appear and never change', async () => {
    const w = new World({ seed: 11, now: T0, historyDays: 20, pipelinesPerDay: 6 });
    // Jobs that will have results (the same world later), caught while they run.
    const later = new World({ seed: 11, now: T0, historyDays: 20, pipelinesPerDay: 6 });
    later.advance(3 * DAY);
    const willHave = new Set(later.groundTruth(new Date(T0.getTime() - DAY)).tests.map((x) => `${x._project_slug} ${x._job_number}`));
    let running: Job[] = [];
    for (let i = 0; i < 200 && running.length === 0; i++) {
      if (i > 0) w.advance(10 * 60_000);
      running = w
        .groundTruth(new Date(w.now().getTime() - DAY), { tests: false })
        .jobs.filter((j) => (j.status === 'running' || j.status === 'queued') && willHave.has(`${j.project_slug} ${j.job_number}`));
    }
    expect(running.length).toBeGreaterThan(0);
    await withServer({ world: w }, async (s) => {
      for (const j of running) {
        const r = await call(s, testsPath(j.project_slug!, j.job_number!));
        expect(r.status).toBe(200);
        expect(r.body).toEqual({ items: [], next_page_token: null });
      }
      w.advance(2 * DAY);
      const after = running.map((j) => w.jobTests(j.project_slug!, j.job_number!));
      expect(after.every((items) => items!.length > 0)).toBe(true);
      for (const [i, j] of running.entries()) expect((await allPages<TestItem>(s, testsPath(j.project_slug!, j.job_number!))).items).toEqual(after[i]);
      w.advance(30 * DAY);
      expect(running.map((j) => w.jobTests(j.project_slug!, j.job_number!))).toEqual(after);
    });
  });

  test('retention: results of jobs of pipelines older than retentionDays are 404 Not Found', async () => {
    const t = world.groundTruth(new Date(0));
    const created = new Map(t.pipelines.map((p) => [p.id, Date.parse(p.created_at!)]));
    const old = t.job_details.find((d) => created.get(d.pipeline.id)! < T0.getTime() - 6 * DAY && (world.jobTests(d._project_slug, d.number) ?? []).length > 0)!;
    const recent = t.job_details.find((d) => created.get(d.pipeline.id)! > T0.getTime() - 3 * DAY && d.status === 'success')!;
    expect((await call(mock, testsPath(old._project_slug, old.number))).status).toBe(200);
    await withServer({ retentionDays: 5 }, async (s) => {
      expect((await call(s, testsPath(old._project_slug, old.number))).body).toEqual({ message: 'Not Found' });
      expect((await call(s, testsPath(recent._project_slug, recent.number))).status).toBe(200);
    });
    const kept = world.groundTruth(new Date(0), { retentionDays: 5 });
    expect(kept.tests.some((x) => x._project_slug === old._project_slug && x._job_number === old.number)).toBe(false);
    expect(kept.job_details.some((d) => d.pipeline.id === old.pipeline.id)).toBe(false);
    expect(kept.job_details.some((d) => d.pipeline.id === recent.pipeline.id)).toBe(true);
  });
});

describe('ground truth: projects, job_details, tests', () => {
  const strip = (t: TestRecord): TestItem => ({ message: t.message, source: t.source, run_time: t.run_time, file: t.file, result: t.result, name: t.name, classname: t.classname });

  test('projects: every project in world order, whatever the start date', () => {
    const expected = world.projectSlugs().map((s) => world.project(s));
    expect(expected).toHaveLength(3);
    expect(world.groundTruth(new Date(0)).projects).toEqual(expected);
    expect(world.groundTruth(new Date('2999-01-01T00:00:00Z')).projects).toEqual(expected);
  });

  test('ground-truth tests equal what paging the endpoint returns, for a handful of finished jobs', async () => {
    const startDate = new Date(T0.getTime() - 7 * DAY);
    const t = world.groundTruth(startDate);
    const rows = new Map<string, TestRecord[]>();
    for (const x of t.tests) rows.set(`${x._project_slug} ${x._job_number}`, [...(rows.get(`${x._project_slug} ${x._job_number}`) ?? []), x]);
    const finished = t.job_details.filter((d) => ['success', 'failed', 'canceled'].includes(d.status));
    // Some with results, some without, over every project.
    const pickOf = (has: boolean): JobDetailsRecord[] => world.projectSlugs().flatMap((s) => finished.filter((d) => d._project_slug === s && rows.has(`${s} ${d.number}`) === has).slice(0, 3));
    const sample = [...pickOf(true), ...pickOf(false)];
    expect(sample.length).toBe(18);
    for (const d of sample) {
      const { items } = await allPages<TestItem>(mock, `/project/${slugPath(d._project_slug)}/${d.number}/tests`);
      const mine = rows.get(`${d._project_slug} ${d.number}`) ?? [];
      expect(items).toEqual(mine.map(strip));
      if (!mine.length) continue;
      // One workflow per job; _occurrence counts identical entries in list order.
      expect(new Set(mine.map((x) => x._workflow_id)).size).toBe(1);
      const seen = new Map<string, number>();
      for (const x of mine) {
        const k = `${x.classname}\n${x.name}\n${x.file}`;
        expect(x._occurrence).toBe(seen.get(k) ?? 0);
        seen.set(k, x._occurrence + 1);
      }
    }
    // Nothing from pipelines before the start date.
    const pipelineIds = new Set(t.pipelines.map((p) => p.id));
    expect(t.job_details.every((d) => pipelineIds.has(d.pipeline.id))).toBe(true);
    const workflowIds = new Set(t.workflows.map((w) => w.id));
    expect(t.tests.every((x) => workflowIds.has(x._workflow_id))).toBe(true);
    expect(world.groundTruth(new Date(0)).tests.length).toBeGreaterThan(t.tests.length);
  });

  test('a default world has results without a file, identical entries, failures in every failed job, jobs without results, zero and fractional run times', () => {
    const w = new World({ now: T0 });
    const t = w.groundTruth(new Date(0));
    expect(t.tests.some((x) => x.file === null)).toBe(true);
    expect(t.tests.some((x) => x.file !== null)).toBe(true);
    const dups = t.tests.filter((x) => x._occurrence > 0);
    expect(dups.length).toBeGreaterThan(0);
    for (const d of dups) {
      const twin = t.tests.filter((x) => x._project_slug === d._project_slug && x._job_number === d._job_number && x.classname === d.classname && x.name === d.name && x.file === d.file);
      expect(twin.map((x) => x._occurrence)).toContain(d._occurrence - 1);
    }
    const withResults = new Set(t.tests.map((x) => `${x._project_slug} ${x._job_number}`));
    const failed = t.job_details.filter((d) => d.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const d of failed) expect(t.tests.some((x) => x._project_slug === d._project_slug && x._job_number === d.number && x.result === 'failure')).toBe(true);
    const succeeded = t.job_details.filter((d) => d.status === 'success');
    expect(succeeded.filter((d) => !withResults.has(`${d._project_slug} ${d.number}`)).length).toBeGreaterThan(succeeded.length / 4);
    expect(succeeded.filter((d) => d.name === 'unit-test' && withResults.has(`${d._project_slug} ${d.number}`)).length).toBeGreaterThan(0);
    expect(t.tests.some((x) => x.run_time === 0)).toBe(true);
    expect(t.tests.some((x) => !Number.isInteger(x.run_time))).toBe(true);
    expect(new Set(t.tests.map((x) => x.result))).toEqual(new Set(['success', 'failure', 'skipped']));
    expect(t.tests.some((x) => x.source === 'unknown')).toBe(true);
    for (const x of t.tests) {
      expect(x.message === null).toBe(x.result !== 'failure');
      expect(x.run_time).toBeGreaterThanOrEqual(0);
    }
    const perJob = new Map<string, number>();
    for (const x of t.tests) perJob.set(`${x._project_slug} ${x._job_number}`, (perJob.get(`${x._project_slug} ${x._job_number}`) ?? 0) + 1);
    expect(Math.max(...perJob.values())).toBeLessThanOrEqual(50);
    expect([...perJob.values()].filter((n) => n > 20).length).toBeGreaterThan(5);
  });

  test('job_details: one entry per (project, job number), equal to the endpoint, _workflow_created_at of latest_workflow', async () => {
    const t = world.groundTruth(new Date(0));
    const keys = t.job_details.map((d) => `${d._project_slug} ${d.number}`);
    expect(new Set(keys).size).toBe(keys.length);
    const numbered = new Set(t.jobs.filter((j) => j.type === 'build' && typeof j.job_number === 'number').map((j) => `${j.project_slug} ${j.job_number}`));
    expect(new Set(keys)).toEqual(numbered);
    const wfCreated = new Map(t.workflows.map((w) => [w.id, w.created_at]));
    for (const d of t.job_details) {
      expect(d._workflow_created_at).toBe(wfCreated.get(d.latest_workflow.id));
      expect(d.project.slug).toBe(d._project_slug);
      // The newest workflow that lists the job.
      const listing = t.jobs.filter((j) => j.project_slug === d._project_slug && j.job_number === d.number).map((j) => j._workflow_created_at);
      expect(listing.every((c) => c! <= d._workflow_created_at)).toBe(true);
      expect(d.web_url.endsWith(`/workflows/${d.latest_workflow.id}/jobs/${d.number}`)).toBe(true);
      const { _project_slug, _workflow_created_at, ...payload } = d;
      expect([_project_slug, _workflow_created_at]).toEqual([d._project_slug, d._workflow_created_at]);
      expect(payload).toEqual(world.jobDetails(d._project_slug, d.number));
    }
    for (const d of t.job_details.filter((x) => x._project_slug === 'bb/acme/web').slice(0, 5)) {
      const r = await call(mock, `/project/bb/acme/web/job/${d.number}`);
      const { _project_slug, _workflow_created_at, ...payload } = d;
      expect([r.body, _project_slug, typeof _workflow_created_at]).toEqual([payload, 'bb/acme/web', 'string']);
    }
  });

  test('job details vary: parallelism with one run per index, executors, messages; duration null until the job stops', () => {
    const w = new World({ now: T0 });
    const d = w.groundTruth(new Date(0)).job_details;
    for (const x of d) {
      expect(x.parallel_runs).toEqual(Array.from({ length: x.parallelism }, (_, index) => ({ index, status: x.status })));
      if (x.stopped_at === null) expect(x.duration).toBeNull();
      else if (x.started_at !== null) expect(x.duration).toBe(Date.parse(x.stopped_at) - Date.parse(x.started_at));
    }
    expect(d.some((x) => x.parallelism > 1)).toBe(true);
    expect(d.filter((x) => x.parallelism > 1).length).toBeLessThan(d.length / 4);
    expect(new Set(d.map((x) => x.executor.type))).toEqual(new Set(['docker', 'machine', 'macos']));
    expect(new Set(d.map((x) => x.executor.resource_class)).size).toBeGreaterThan(3);
    expect(d.some((x) => x.messages.length > 0 && typeof x.messages[0].message === 'string')).toBe(true);
    const running = d.filter((x) => x.status === 'running');
    expect(running.length).toBeGreaterThan(0);
    for (const x of running) expect([x.duration, x.stopped_at, typeof x.started_at]).toEqual([null, null, 'string']);
  });

  test('a job adopted by a rerun from failed is exactly one that started before its workflow was created; its results stay with the workflow it ran in', () => {
    const w = new World({ seed: 21, now: T0, historyDays: 20, pipelinesPerDay: 8 });
    w.advance(5 * DAY);
    const t = w.groundTruth(new Date(0));
    const firstWorkflow = new Map<string, string>();
    for (const j of [...t.jobs].sort((a, b) => (a._workflow_created_at! < b._workflow_created_at! ? -1 : 1))) if (!firstWorkflow.has(j.id)) firstWorkflow.set(j.id, j._workflow_id);
    let copies = 0;
    const ranIn = new Map<string, string>();
    for (const j of t.jobs) {
      if (j.type !== 'build' || typeof j.job_number !== 'number') continue;
      const copy = firstWorkflow.get(j.id) !== j._workflow_id;
      const startedBefore = j.started_at !== null && j.started_at! < j._workflow_created_at!;
      expect({ id: j.id, wf: j._workflow_id, copy }).toEqual({ id: j.id, wf: j._workflow_id, copy: startedBefore });
      if (copy) copies++;
      else ranIn.set(`${j.project_slug} ${j.job_number}`, j._workflow_id);
    }
    expect(copies).toBeGreaterThan(0);
    expect(t.tests.length).toBeGreaterThan(0);
    for (const x of t.tests) expect(x._workflow_id).toBe(ranIn.get(`${x._project_slug} ${x._job_number}`));
    // Copied jobs that have results: their rows appear once, under the original workflow.
    const copiedNumbers = new Set(t.jobs.filter((j) => firstWorkflow.get(j.id) !== j._workflow_id).map((j) => `${j.project_slug} ${j.job_number}`));
    const copiedWithRows = t.tests.filter((x) => copiedNumbers.has(`${x._project_slug} ${x._job_number}`));
    expect(copiedWithRows.length).toBeGreaterThan(0);
    const created = new Map(t.workflows.map((x) => [x.id, x.created_at]));
    for (const x of copiedWithRows) expect(x._workflow_created_at).toBe(created.get(x._workflow_id));
  });

  test('tests: false leaves the test rows out', () => {
    const t = world.groundTruth(new Date(0), { tests: false });
    expect(t.tests).toEqual([]);
    expect(t.job_details.length).toBeGreaterThan(0);
  });
});

describe('advance()', () => {
  test('new pipelines, setup pipelines move on, non-terminal workflows finish, reruns reuse job ids', () => {
    const w = new World({ seed: 21, now: T0, historyDays: 20, pipelinesPerDay: 8 });
    const t0 = w.groundTruth(new Date(0));
    const maxNumber = new Map(w.projectSlugs().map((s) => [s, w.listPipelines(s)[0].number!]));

    // The newest pipeline of the first project is setup-pending, without workflows yet.
    const setupPending = w.listPipelines(w.projectSlugs()[0])[0];
    expect(setupPending.state).toBe('setup-pending');
    expect(w.workflowsOf(setupPending.id)).toEqual([]);
    const running = t0.workflows.filter((x) => x.stopped_at === null);
    expect(running.length).toBeGreaterThan(0);

    w.advance(10 * 60_000);
    const moved = w.pipeline(setupPending.id)!;
    expect(moved.state).toBe('created');
    expect(moved.updated_at! > setupPending.updated_at!).toBe(true);
    expect(w.workflowsOf(setupPending.id)!.some((x) => x.tag === 'setup')).toBe(true);
    expect(w.workflowsOf(setupPending.id)!.length).toBeGreaterThan(1);

    // Within 2 days of their pipelines, every original workflow is terminal.
    w.advance(2 * DAY);
    for (const x of running) {
      const now = w.workflow(x.id)!;
      expect(now.stopped_at).toMatch(SEC_ISO);
      expect(['success', 'failed', 'error', 'canceled']).toContain(now.status);
    }
    // New pipelines arrived, numbered on from the old maximum, created after T0.
    for (const slug of w.projectSlugs()) {
      const ps = w.listPipelines(slug);
      expect(ps[0].number!).toBeGreaterThan(maxNumber.get(slug)!);
      const fresh = ps.filter((p) => p.number! > maxNumber.get(slug)!);
      expect(fresh.map((p) => p.number)).toEqual(fresh.map((_, i) => ps[0].number! - i));
      expect(fresh.every((p) => Date.parse(p.created_at!) > T0.getTime())).toBe(true);
    }

    w.advance(3 * DAY);
    const t1 = w.groundTruth(new Date(0));
    const pipelineCreated = new Map(t1.pipelines.map((p) => [p.id, Date.parse(p.created_at!)]));
    const oldIds = new Set(t0.workflows.map((x) => x.id));
    // Reruns: new workflows in pipelines that existed at T0, created after T0, within 5 days of the pipeline.
    const reruns = t1.workflows.filter((x) => !oldIds.has(x.id) && pipelineCreated.get(x.pipeline_id!)! < T0.getTime() - HOUR);
    expect(reruns.length).toBeGreaterThan(0);
    for (const x of reruns) {
      const created = Date.parse(x.created_at!);
      expect(created).toBeGreaterThan(T0.getTime());
      expect(created - pipelineCreated.get(x.pipeline_id!)!).toBeLessThanOrEqual(5 * DAY);
      expect(t1.workflows.some((o) => o.pipeline_id === x.pipeline_id && o.name === x.name && o.id !== x.id)).toBe(true);
    }
    // Rerun from failed: a job id listed under two workflows of the same pipeline.
    const seen = new Map<string, Job>();
    let shared = 0;
    for (const j of t1.jobs) {
      const other = seen.get(j.id);
      if (other) {
        shared++;
        expect(other._workflow_id).not.toBe(j._workflow_id);
        expect(other._pipeline_id).toBe(j._pipeline_id);
        expect(other.job_number).toBe(j.job_number);
      }
      seen.set(j.id, j);
    }
    expect(shared).toBeGreaterThan(0);
    // Nothing is still moving on pipelines older than 5 days.
    const nowMs = w.now().getTime();
    for (const x of t1.workflows) {
      if (pipelineCreated.get(x.pipeline_id!)! < nowMs - 5 * DAY) expect(x.stopped_at).not.toBeNull();
    }
    expect(() => w.advance(-1)).toThrow();
  });
});

describe('the clock as the API shows it', () => {
  test('Date is the world\'s clock, not this machine\'s, and the request log carries it', async () => {
    const w = new World({ seed: 3, now: T0, historyDays: 2 });
    await withServer({ world: w }, async (s) => {
      const a = await call(s, '/me');
      expect(Date.parse(a.headers.get('date')!)).toBe(T0.getTime());
      w.advance(90 * 60_000);
      const b = await call(s, '/project/gh/acme/api/pipeline');
      expect(Date.parse(b.headers.get('date')!)).toBe(T0.getTime() + 90 * 60_000);
      expect(s.counters.log.map((l) => l.at)).toEqual([T0.getTime(), T0.getTime() + 90 * 60_000]);
    });
  });

  test('with clockRate the clock runs while the mock serves: pipelines arrive between two requests; rate 0 stops it', async () => {
    // A pipeline about every 40 world seconds per project; 100,000 world seconds per wall second.
    const w = new World({ seed: 4, now: T0, historyDays: 1, pipelinesPerDay: 2000 });
    await withServer({ world: w, clockRate: 100_000 }, async (s) => {
      const newest = async () => (await call(s, '/project/gh/acme/api/pipeline')).body.items[0].number as number;
      const first = await newest();
      let later = first;
      // Each request takes some wall time, so the world moves; bounded, no sleeping.
      for (let i = 0; i < 500 && later === first; i++) later = await newest();
      expect(later).toBeGreaterThan(first);
      const dates = s.counters.log.map((l) => l.at);
      expect(dates).toEqual([...dates].sort((x, y) => x - y));
      expect(dates[dates.length - 1]).toBeGreaterThan(T0.getTime());
      s.setClock(0);
      const stopped = w.now().getTime();
      const again = await call(s, '/me');
      await call(s, '/me');
      expect(Date.parse(again.headers.get('date')!)).toBe(Math.floor(stopped / 1000) * 1000);
      expect(w.now().getTime()).toBe(stopped);
    });
  });
});

describe('rate limit and faults', () => {
  test('a small per-token bucket answers 429 with an integer Retry-After, and rate-limit headers throughout', async () => {
    await withServer({ rateLimit: { perMinute: 5 } }, async (s) => {
      const answers: Answer[] = [];
      for (let i = 0; i < 7; i++) answers.push(await call(s, '/me'));
      expect(answers.slice(0, 5).map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
      const limited = answers[answers.length - 1];
      expect(limited.status).toBe(429);
      expect(limited.body).toEqual({ message: 'Rate limit exceeded.' });
      expect(limited.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
      for (const a of answers) {
        for (const h of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) {
          expect(a.headers.get(h)).toMatch(/^[0-9]+$/);
        }
      }
      expect(answers[0].headers.get('ratelimit-limit')).toBe('5');
      expect(answers[0].headers.get('ratelimit-remaining')).toBe('4');
      // The bucket is per token: another credential is not limited by it.
      expect((await call(s, '/me', { token: 'someone-else' })).status).toBe(401);
    });
    await withServer({ rateLimit: { perMinute: 1, omitRetryAfter: true } }, async (s) => {
      await call(s, '/me');
      const limited = await call(s, '/me');
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).toBeNull();
      expect(limited.headers.get('ratelimit-reset')).toMatch(/^[0-9]+$/);
    });
  });

  test('injected faults occur at about the configured rates, and are counted', async () => {
    const faults: FaultOptions = { rate500: 0.1, rate502Html: 0.1, rate503: 0.05, rate429: 0.1, retryAfterMissingShare: 0.5, rateReset: 0.05, rateTruncated: 0.1 };
    await withServer({ faults, seed: 4 }, async (s) => {
      const N = 400;
      const seen: Record<string, number> = {};
      let retryAfter = 0;
      let noRetryAfter = 0;
      for (let i = 0; i < N; i++) {
        let kind: string;
        try {
          const res = await fetch(s.baseUrl + '/me', { headers: { 'Circle-Token': TOKEN } });
          const text = await res.text();
          kind = String(res.status);
          if (res.status === 200) {
            expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
            try {
              JSON.parse(text);
            } catch {
              kind = 'truncated';
            }
          }
          if (res.status === 502) expect(text).toMatch(/<html>/);
          if (res.status === 429) {
            if (res.headers.get('retry-after') === '1') retryAfter++;
            else noRetryAfter++;
          }
        } catch {
          kind = 'reset';
        }
        seen[kind] = (seen[kind] ?? 0) + 1;
      }
      const near = (k: string, rate: number): void => {
        const expected = rate * N;
        const n = seen[k] ?? 0;
        expect({ k, n, near: n >= expected * 0.5 && n <= expected * 1.6 }).toEqual({ k, n, near: true });
      };
      near('500', 0.1);
      near('502', 0.1);
      near('503', 0.05);
      near('429', 0.1);
      near('reset', 0.05);
      near('truncated', 0.1);
      near('200', 0.5);
      expect(retryAfter).toBeGreaterThan(0);
      expect(noRetryAfter).toBeGreaterThan(0);
      // The server counted every request, faulted ones included.
      expect(s.counters.total).toBeGreaterThanOrEqual(N);
      expect(s.counters.byRoute.me).toBe(s.counters.total);
      expect(s.counters.byStatus.reset).toBe(seen.reset);
      expect(s.counters.byStatus['500']).toBe(seen['500']);
      expect(s.counters.log.length).toBe(s.counters.total);
      expect(s.counters.log[0]).toMatchObject({ method: 'GET', path: '/api/v2/me' });
      expect(s.counters.log[0].headers['circle-token']).toBe(TOKEN);

      // Faults can be switched off at run time; counters reset in place.
      s.setFaults(undefined);
      s.resetCounters();
      for (let i = 0; i < 20; i++) expect((await call(s, '/me')).status).toBe(200);
      expect(s.counters).toMatchObject({ total: 20, byStatus: { '200': 20 } });
    });
  });

  test('failPath makes matching requests fail with 500 while the rest work', async () => {
    await withServer({ faults: { failPath: /\/workflow\/[^/]+\/job$/ } }, async (s) => {
      const p = world.listPipelines('gh/acme/api')[3];
      const wf = world.workflowsOf(p.id)![0];
      expect((await call(s, `/pipeline/${p.id}/workflow`)).status).toBe(200);
      for (let i = 0; i < 3; i++) {
        const r = await call(s, `/workflow/${wf.id}/job`);
        expect(r.status).toBe(500);
        expect(r.body).toEqual({ message: 'Internal server error.' });
      }
      expect(s.counters.byRoute).toMatchObject({ workflows: 1, jobs: 3 });
    });
  });

  test('slow responses take at least slowMs', async () => {
    await withServer({ faults: { rateSlow: 0.5, slowMs: 300 } }, async (s) => {
      // Side by side: each call's own time is what counts.
      const times = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const started = performance.now();
          expect((await call(s, '/me')).status).toBe(200);
          return performance.now() - started;
        }),
      );
      expect(times.filter((t) => t >= 300).length).toBeGreaterThanOrEqual(4);
    });
  });
});

describe('retention', () => {
  test('children of pipelines older than retentionDays are 404 while the pipeline still lists', async () => {
    await withServer({ retentionDays: 5 }, async (s) => {
      const ps = world.listPipelines('gh/acme/api');
      const old = ps.find((p) => Date.parse(p.created_at!) < T0.getTime() - 6 * DAY && (world.workflowsOf(p.id) ?? []).length > 0)!;
      const recent = ps.find((p) => Date.parse(p.created_at!) > T0.getTime() - 3 * DAY && (world.workflowsOf(p.id) ?? []).length > 0)!;
      const oldWf = world.workflowsOf(old.id)![0];
      const oldJob = world.jobsOf(oldWf.id)!.find((j) => typeof j.job_number === 'number' && j.type === 'build')!;
      const { items } = await allPages<Pipeline>(s, '/project/gh/acme/api/pipeline');
      expect(items.some((p) => p.id === old.id)).toBe(true);
      expect((await call(s, `/pipeline/${old.id}`)).status).toBe(200);
      for (const path of [`/pipeline/${old.id}/workflow`, `/workflow/${oldWf.id}`, `/workflow/${oldWf.id}/job`, `/project/gh/acme/api/job/${oldJob.job_number}`]) {
        const r = await call(s, path);
        expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 404, body: { message: 'Not Found' } });
      }
      const recentWf = world.workflowsOf(recent.id)![0];
      expect((await call(s, `/pipeline/${recent.id}/workflow`)).status).toBe(200);
      expect((await call(s, `/workflow/${recentWf.id}/job`)).status).toBe(200);
      // The ground truth can leave expired children out too.
      const truth = world.groundTruth(new Date(0), { retentionDays: 5 });
      expect(truth.pipelines.some((p) => p.id === old.id)).toBe(true);
      expect(truth.workflows.some((w) => w.pipeline_id === old.id)).toBe(false);
      expect(truth.workflows.some((w) => w.pipeline_id === recent.id)).toBe(true);
    });
  });
});

describe('scale', () => {
  // How fast it builds and pages is the bench's to measure (npm run bench); here, that it works.
  test('a year of 30 pipelines a day in 3 projects builds, and page 51 holds the right pipelines', async () => {
    const big = new World({ seed: 3, historyDays: 365, pipelinesPerDay: 30 });
    expect(big.size()).toBeGreaterThan(30_000);
    await withServer({ world: big }, async (s) => {
      const first = await call(s, '/project/gh/acme/api/pipeline');
      expect(first.body.items).toHaveLength(20);
      let token: string = first.body.next_page_token;
      let page = first;
      for (let i = 0; i < 50; i++) {
        page = await call(s, `/project/gh/acme/api/pipeline?page-token=${token}`);
        token = page.body.next_page_token;
      }
      const newest = big.listPipelines('gh/acme/api')[0].number as number;
      expect(page.body.items.map((p: Pipeline) => p.number)).toEqual(Array.from({ length: 20 }, (_, i) => newest - 1000 - i));
    });
  });
});


describe('organizations', () => {
  const ORG_APP = '8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f';
  const ORG_PROJECTS = ['gh/acme/web', 'gh/acme/api', 'bb/acme/legacy', `circleci/${ORG_APP}/0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5`, 'gh/other/tool'];

  /** A request to any path of the mock's host (v1.1 and v3 live beside /api/v2). */
  async function callRoot(server: MockServer, path: string, token: string | null = TOKEN): Promise<Answer> {
    const root = server.baseUrl.replace(/\/api\/v2$/, '');
    return answerOf(await fetch(root + path, { headers: token === null ? {} : { 'Circle-Token': token } }));
  }

  /** Follows page.next of GET /api/v3/projects to the end; fails on anything but 200. */
  async function allV3(server: MockServer, query: string): Promise<{ data: { id: string; attributes: { name: string; slug: string }; references: { org: { id: string } } }[]; pages: number }> {
    const data = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await callRoot(server, `/api/v3/projects?${query}${cursor ? `&page[cursor]=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.page.prev).toBeNull();
      data.push(...r.body.data);
      cursor = r.body.page.next;
      pages++;
    } while (cursor !== null);
    return { data, pages };
  }

  const orgWorld = (extra: Partial<ConstructorParameters<typeof World>[0]> = {}): World =>
    new World({ seed: 5, now: T0, historyDays: 10, pipelinesPerDay: 2, projects: ORG_PROJECTS, ...extra });

  test('/me/collaborations: a plain array of the orgs, ids equal to the projects\' organization_id', async () => {
    await withServer({ world: orgWorld() }, async (s) => {
      const r = await call(s, '/me/collaborations');
      expect(r.status).toBe(200);
      expect(Array.isArray(r.body)).toBe(true);
      for (const org of r.body) expect(Object.keys(org)).toEqual(['id', 'vcs_type', 'name', 'slug', 'avatar_url']);
      const bySlug = new Map<string, { id: string; vcs_type: string; name: string }>(r.body.map((o: { slug: string }) => [o.slug, o]));
      expect([...bySlug.keys()].sort()).toEqual(['bb/acme', `circleci/${ORG_APP}`, 'gh/acme', 'gh/other']);
      expect(bySlug.get('gh/acme')?.vcs_type).toBe('github');
      expect(bySlug.get('bb/acme')?.vcs_type).toBe('bitbucket');
      expect(bySlug.get(`circleci/${ORG_APP}`)).toMatchObject({ id: ORG_APP, vcs_type: 'circleci' });
      expect(bySlug.get('gh/acme')?.id).not.toBe(bySlug.get('bb/acme')?.id);
      for (const slug of ORG_PROJECTS) {
        const p = (await call(s, `/project/${slug}`)).body;
        expect(bySlug.get(p.organization_slug)?.id).toBe(p.organization_id);
      }
    });
  });

  test('/me/collaborations spells the key vcs-type with collaborationsKeyStyle', async () => {
    await withServer({ world: orgWorld(), collaborationsKeyStyle: 'vcs-type' }, async (s) => {
      const r = await call(s, '/me/collaborations');
      expect(r.body.find((o: { slug: string }) => o.slug === 'gh/acme')).toEqual(expect.objectContaining({ 'vcs-type': 'github' }));
      expect(r.body.every((o: object) => !('vcs_type' in o))).toBe(true);
    });
  });

  test('/api/v3/orgs?filter[slug]= finds one org in the v3 envelope; no match is empty data, not 404', async () => {
    const w = orgWorld();
    await withServer({ world: w }, async (s) => {
      const api = (await call(s, '/project/gh/acme/api')).body;
      const r = await callRoot(s, '/api/v3/orgs?filter[slug]=gh/acme');
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ data: [{ id: api.organization_id, slug: 'gh/acme', name: 'acme', vcs_type: 'github' }], page: { next: null, prev: null } });
      const none = await callRoot(s, '/api/v3/orgs?filter[slug]=gh/nobody');
      expect(none.status).toBe(200);
      expect(none.body).toEqual({ data: [], page: { next: null, prev: null } });
    });
  });

  test('/api/v3/projects: following every cursor yields exactly the org\'s projects, by name, in v3 shape', async () => {
    const slugs = Array.from({ length: 45 }, (_, i) => `gh/acme/service-${i + 1}`);
    const w = new World({ seed: 2, now: T0, historyDays: 2, pipelinesPerDay: 1, projects: [...slugs, 'gh/other/tool'] });
    await withServer({ world: w }, async (s) => {
      const orgId = (await call(s, '/project/gh/acme/service-1')).body.organization_id;
      const sevens = await allV3(s, `filter[org_id]=${orgId}&page[limit]=7`);
      expect(sevens.pages).toBe(7);
      expect(sevens.data.map((d) => d.attributes.slug)).toEqual([...slugs].sort());
      const defaults = await allV3(s, `filter[org_id]=${orgId}`);
      expect(defaults.pages).toBe(3);
      expect(defaults.data).toEqual(sevens.data);
      const first = sevens.data[0];
      const payload = (await call(s, `/project/${first.attributes.slug}`)).body;
      expect(first).toEqual({ id: payload.id, attributes: { name: payload.name, slug: payload.slug }, references: { org: { id: orgId } } });
    });
    await withServer({ world: w, v3PageSize: 50 }, async (s) => {
      const orgId = w.organizations().find((o) => o.slug === 'gh/acme')?.id;
      expect((await allV3(s, `filter[org_id]=${orgId}`)).pages).toBe(1);
    });
  });

  test('/api/v3/projects?filter[slug]= answers that project or empty data; an unknown org id is 404', async () => {
    await withServer({ world: orgWorld() }, async (s) => {
      const one = await callRoot(s, '/api/v3/projects?filter[slug]=gh/acme/api');
      expect(one.status).toBe(200);
      expect(one.body.data.map((d: { attributes: { slug: string } }) => d.attributes.slug)).toEqual(['gh/acme/api']);
      expect(one.body.page).toEqual({ next: null, prev: null });
      const none = await callRoot(s, '/api/v3/projects?filter[slug]=gh/acme/nope');
      expect(none.body).toEqual({ data: [], page: { next: null, prev: null } });
      const unknownOrg = await callRoot(s, '/api/v3/projects?filter[org_id]=00000000-0000-4000-8000-000000000000');
      expect(unknownOrg.status).toBe(404);
    });
  });

  test('/api/v3/projects: a garbled, forged or cross-query cursor, or a bad page[limit], is 400', async () => {
    const w = orgWorld();
    await withServer({ world: w }, async (s) => {
      const [acme, , , other] = ['gh/acme', 'bb/acme', `circleci/${ORG_APP}`, 'gh/other'].map((slug) => w.organizations().find((o) => o.slug === slug)?.id);
      const r = await callRoot(s, `/api/v3/projects?filter[org_id]=${acme}&page[limit]=1`);
      const cursor: string = r.body.page.next;
      expect(typeof cursor).toBe('string');
      const ok = await callRoot(s, `/api/v3/projects?filter[org_id]=${acme}&page[limit]=1&page[cursor]=${encodeURIComponent(cursor)}`);
      expect(ok.status).toBe(200);
      const [payload, sig] = cursor.split('.');
      const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), a: ['a', 'a'] })).toString('base64url');
      for (const bad of ['garbage', `${payload}.${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`, `${forgedPayload}.${sig}`]) {
        const b = await callRoot(s, `/api/v3/projects?filter[org_id]=${acme}&page[cursor]=${encodeURIComponent(bad)}`);
        expect([b.status, b.body.message]).toEqual([400, 'Invalid page cursor.']);
      }
      const cross = await callRoot(s, `/api/v3/projects?filter[org_id]=${other}&page[cursor]=${encodeURIComponent(cursor)}`);
      expect(cross.status).toBe(400);
      for (const limit of ['0', '-1', 'x', '101']) {
        expect((await callRoot(s, `/api/v3/projects?filter[org_id]=${acme}&page[limit]=${limit}`)).status).toBe(400);
      }
      expect((await callRoot(s, '/api/v3/projects')).status).toBe(400);
    });
  });

  test('/api/v1.1/projects lists followed projects only; v3 lists every project of the org', async () => {
    const w = orgWorld({ unfollowed: ['gh/acme/web'] });
    await withServer({ world: w }, async (s) => {
      const r = await callRoot(s, '/api/v1.1/projects');
      expect(r.status).toBe(200);
      const names = r.body.map((p: { vcs_type: string; username: string; reponame: string }) => `${p.vcs_type}/${p.username}/${p.reponame}`).sort();
      expect(names).toEqual(['bitbucket/acme/legacy', `circleci/${ORG_APP}/0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5`, 'github/acme/api', 'github/other/tool']);
      expect(r.body.find((p: { reponame: string }) => p.reponame === 'api')).toMatchObject({ vcs_url: 'https://github.com/acme/api', followed: true, username: 'acme', vcs_type: 'github' });
      const acme = w.organizations().find((o) => o.slug === 'gh/acme')?.id;
      const v3 = await allV3(s, `filter[org_id]=${acme}`);
      expect(v3.data.map((d) => d.attributes.slug)).toEqual(['gh/acme/api', 'gh/acme/web']);
    });
  });

  test('without a valid token every org route is 401 You must log in first.', async () => {
    await withServer({ world: orgWorld() }, async (s) => {
      for (const path of ['/api/v2/me/collaborations', '/api/v3/orgs?filter[slug]=gh/acme', '/api/v3/projects?filter[slug]=gh/acme/api', '/api/v1.1/projects']) {
        for (const tok of [null, 'wrong-token']) {
          const r = await callRoot(s, path, tok);
          expect([path, r.status, r.body]).toEqual([path, 401, { message: 'You must log in first.' }]);
        }
      }
    });
  });

  test('server mode: every /api/v3 path is 404 Not Found; v1.1 and v2 answer', async () => {
    await withServer({ world: orgWorld(), server: true }, async (s) => {
      for (const path of ['/api/v3/orgs?filter[slug]=gh/acme', '/api/v3/projects?filter[slug]=gh/acme/api', '/api/v3/anything']) {
        for (const tok of [TOKEN, null]) {
          const r = await callRoot(s, path, tok);
          expect([path, r.status, r.body]).toEqual([path, 404, { message: 'Not Found' }]);
        }
      }
      expect((await callRoot(s, '/api/v1.1/projects')).status).toBe(200);
      expect((await call(s, '/me/collaborations')).status).toBe(200);
      expect((await call(s, '/project/gh/acme/api/pipeline')).status).toBe(200);
    });
  });

  test('the org routes are counted in counters.byRoute', async () => {
    await withServer({ world: orgWorld() }, async (s) => {
      await call(s, '/me/collaborations');
      await callRoot(s, '/api/v3/orgs?filter[slug]=gh/acme');
      await callRoot(s, '/api/v3/projects?filter[slug]=gh/acme/api');
      await callRoot(s, '/api/v3/projects?filter[slug]=gh/acme/web');
      await callRoot(s, '/api/v1.1/projects');
      expect(s.counters.byRoute).toMatchObject({ collaborations: 1, v3Orgs: 1, v3Projects: 2, v1Projects: 1, other: 0 });
      expect(s.counters.log.map((e) => e.path)).toContain('/api/v3/orgs?filter[slug]=gh/acme');
    });
  });

  test('a project appears once the clock passes its creation, with history from then on, and vanishes at its archive time', async () => {
    const created = new Date(T0.getTime() + 2 * HOUR);
    const archived = new Date(T0.getTime() + 1 * DAY);
    const recent = new Date(T0.getTime() - 3 * DAY);
    const w = new World({
      seed: 8,
      now: T0,
      historyDays: 10,
      pipelinesPerDay: 24,
      projects: ['gh/acme/api', 'gh/acme/new', 'gh/acme/old', 'gh/acme/recent'],
      projectsCreated: { 'gh/acme/new': created.toISOString(), 'gh/acme/recent': recent.toISOString() },
      archived: { 'gh/acme/old': archived.toISOString() },
    });
    const acme = w.organizations()[0].id;
    await withServer({ world: w }, async (s) => {
      const listed = async (): Promise<{ v3: string[]; v1: string[] }> => ({
        v3: (await allV3(s, `filter[org_id]=${acme}`)).data.map((d) => d.attributes.slug),
        v1: (await callRoot(s, '/api/v1.1/projects')).body.map((p: { reponame: string }) => `gh/acme/${p.reponame}`).sort(),
      });
      // Before its creation: in no list, and its routes are Project not found.
      expect(await listed()).toEqual({ v3: ['gh/acme/api', 'gh/acme/old', 'gh/acme/recent'], v1: ['gh/acme/api', 'gh/acme/old', 'gh/acme/recent'] });
      for (const path of ['/project/gh/acme/new', '/project/gh/acme/new/pipeline']) {
        expect((await call(s, path)).body).toEqual({ message: 'Project not found' });
      }
      expect((await callRoot(s, '/api/v3/projects?filter[slug]=gh/acme/new')).body.data).toEqual([]);
      // A project created three days ago has three days of history, not ten.
      const recentPipelines = (await allPages<Pipeline>(s, '/project/gh/acme/recent/pipeline')).items;
      expect(recentPipelines.length).toBeGreaterThan(20);
      expect(recentPipelines.every((p) => Date.parse(p.created_at as string) >= recent.getTime())).toBe(true);
      expect(w.groundTruth(new Date(0)).projects.map((p) => p.slug).sort()).toEqual(['gh/acme/api', 'gh/acme/old', 'gh/acme/recent']);
      const oldPipeline = (await call(s, '/project/gh/acme/old/pipeline')).body.items[0] as Pipeline;

      // Past its creation: listed everywhere, its pipelines start at its creation.
      w.advance(12 * HOUR);
      expect((await listed()).v3).toEqual(['gh/acme/api', 'gh/acme/new', 'gh/acme/old', 'gh/acme/recent']);
      expect((await listed()).v1).toEqual(['gh/acme/api', 'gh/acme/new', 'gh/acme/old', 'gh/acme/recent']);
      expect((await call(s, '/project/gh/acme/new')).status).toBe(200);
      const fresh = (await allPages<Pipeline>(s, '/project/gh/acme/new/pipeline')).items;
      expect(fresh.length).toBeGreaterThan(0);
      expect(fresh.every((p) => Date.parse(p.created_at as string) >= created.getTime())).toBe(true);

      // Past its archive time: gone from every list and route, and from the ground truth.
      expect((await call(s, `/pipeline/${oldPipeline.id}`)).status).toBe(200);
      w.advance(DAY);
      expect(await listed()).toEqual({ v3: ['gh/acme/api', 'gh/acme/new', 'gh/acme/recent'], v1: ['gh/acme/api', 'gh/acme/new', 'gh/acme/recent'] });
      for (const path of ['/project/gh/acme/old', '/project/gh/acme/old/pipeline']) {
        expect((await call(s, path)).body).toEqual({ message: 'Project not found' });
      }
      expect((await call(s, `/pipeline/${oldPipeline.id}`)).status).toBe(404);
      expect((await call(s, `/pipeline/${oldPipeline.id}/workflow`)).status).toBe(404);
      const truth = w.groundTruth(new Date(0));
      expect(truth.projects.map((p) => p.slug).sort()).toEqual(['gh/acme/api', 'gh/acme/new', 'gh/acme/recent']);
      expect(truth.pipelines.some((p) => p.project_slug === 'gh/acme/old')).toBe(false);
      expect(truth.pipelines.filter((p) => p.project_slug === 'gh/acme/new').length).toBe((await allPages<Pipeline>(s, '/project/gh/acme/new/pipeline')).items.length);
    });
  });

  test('v3 paging while projects appear and vanish between pages neither skips nor repeats the ones there throughout', async () => {
    const names = ['a1', 'a2', 'b1', 'b2', 'c1', 'c2'];
    const w = new World({
      seed: 6,
      now: T0,
      historyDays: 1,
      pipelinesPerDay: 1,
      projects: names.map((n) => `gh/acme/${n}`),
      projectsCreated: { 'gh/acme/b2': new Date(T0.getTime() + HOUR).toISOString() },
      archived: { 'gh/acme/a2': new Date(T0.getTime() + HOUR).toISOString() },
    });
    await withServer({ world: w }, async (s) => {
      const q = `filter[org_id]=${w.organizations()[0].id}&page[limit]=2`;
      const first = await callRoot(s, `/api/v3/projects?${q}`);
      const seen: string[] = first.body.data.map((d: { attributes: { slug: string } }) => d.attributes.slug);
      expect(seen).toEqual(['gh/acme/a1', 'gh/acme/a2']);
      w.advance(2 * HOUR);
      let cursor: string | null = first.body.page.next;
      while (cursor !== null) {
        const r = await callRoot(s, `/api/v3/projects?${q}&page[cursor]=${encodeURIComponent(cursor)}`);
        seen.push(...r.body.data.map((d: { attributes: { slug: string } }) => d.attributes.slug));
        cursor = r.body.page.next;
      }
      expect(seen).toEqual(['gh/acme/a1', 'gh/acme/a2', 'gh/acme/b1', 'gh/acme/b2', 'gh/acme/c1', 'gh/acme/c2']);
    });
  });

  test('lifecycle options naming an unknown project or a bad time fail loudly', () => {
    expect(() => new World({ projects: ['gh/acme/api'], archived: { 'gh/acme/typo': '2026-01-01T00:00:00Z' } })).toThrow(/archived names "gh\/acme\/typo"/);
    expect(() => new World({ projects: ['gh/acme/api'], projectsCreated: { 'gh/acme/api': 'soon' } })).toThrow(/ISO times/);
    expect(() => new World({ projects: ['gh/acme/api'], unfollowed: ['gh/acme/x'] })).toThrow(/unfollowed/);
  });

  test('an org of 500 small projects builds and pages through v3 to exactly its 500 projects', async () => {
    const w = new World({ seed: 4, now: T0, projects: serviceSlugs(500), historyDays: 30, pipelinesPerDay: 0.5 });
    expect(w.projectSlugs()).toHaveLength(500);
    expect(w.projectSlugs()[499]).toBe('gh/acme/service-500');
    await withServer({ world: w }, async (s) => {
      const all = await allV3(s, `filter[org_id]=${w.organizations()[0].id}&page[limit]=100`);
      expect(all.pages).toBe(5);
      expect(new Set(all.data.map((d) => d.attributes.slug)).size).toBe(500);
    });
  });
});

/**
 * Reliability, part 5 (issue #6): odd payloads. fast-check generates small CircleCI accounts whose
 * payloads are valid by the API's contract but odd: nulls, missing optional fields, unknown
 * fields (top level and nested), unicode, very long strings, page tokens that need escaping, empty
 * pages that still carry a next token, last pages with a null, empty or missing token, a job id
 * listed under two workflows. A loopback server serves each account; the real CLI reads it.
 * No sync may crash, every record must validate against its schema, and the records must be
 * exactly the account's, projected onto the schemas.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { AIRBYTE_CLI, ALL_FULL, ALL_INCREMENTAL, ROOT, TEST_TOKEN, byKey, keyOf, recordsOf, runCli, tempFiles, type Message } from './helpers.js';
import { invalidMessages } from './validate.js';

const DAY = 86_400_000;
const NOW = Date.now();
const START = new Date(NOW - 60 * DAY);
const STREAMS = ['pipelines', 'workflows', 'jobs'] as const;
type Json = Record<string, unknown>;
type Schema = { properties?: Record<string, Schema>; items?: Schema };
const SCHEMAS: Record<string, Schema> = Object.fromEntries(STREAMS.map((s) => [s, JSON.parse(readFileSync(`${ROOT}/schemas/${s}.json`, 'utf8'))]));

/** What a record must be: the API item with every field the schema does not declare left out, at every level. */
function projectOnto(schema: Schema, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return schema.items ? value.map((v) => projectOnto(schema.items!, v)) : value;
  if (!schema.properties) return value;
  const out: Json = {};
  for (const [k, sub] of Object.entries(schema.properties)) if ((value as Json)[k] !== undefined) out[k] = projectOnto(sub, (value as Json)[k]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const ODD_STRINGS = ['', ' ', '😀👩‍👩‍👧‍👦', 'مرحبا بالعالم', 'Z̸̢͓a̴l̸g̷o̵', '\u0000\u001f\u007f', '\u2028\u2029', 'a\ud800b', '"\\/<>&\'', '\r\n\t'];
const oddString = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom(...ODD_STRINGS) },
  // Very long strings (a commit body, a config error): up to ~200 kB.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', 'é', '🚀', 'ab\n'), fc.integer({ min: 1_000, max: 50_000 })).map(([s, n]) => s.repeat(n)) },
);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null });
/** An optional field: absent, null, or a value. */
const optional = <T>(arb: fc.Arbitrary<T>) => fc.oneof(fc.constant(undefined), fc.constant(null), arb);
const unknownFields = (declared: Schema) =>
  fc.dictionary(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }).filter((k) => !(k in (declared.properties ?? {})) && k !== '__proto__'),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: 3 },
  );
const withUnknown = (schema: Schema, arb: fc.Arbitrary<Json>) =>
  fc.tuple(arb, fc.option(unknownFields(schema), { nil: undefined })).map(([obj, extra]) => clean({ ...(extra ?? {}), ...obj }));
/** Drops keys whose value is undefined (an absent optional field). */
const clean = (o: Json): Json => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

const iso = (ms: number) => new Date(ms).toISOString();
const isoSec = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
const timeAfter = (ms: number, span: number) => fc.integer({ min: 0, max: span }).map((d) => ms + d);

const pipelineSchema = SCHEMAS.pipelines;
const vcsSchema = pipelineSchema.properties!.vcs;
const triggerSchema = pipelineSchema.properties!.trigger;

const vcsArb = withUnknown(vcsSchema, fc.record({
  provider_name: maybe(fc.constantFrom('GitHub', 'Bitbucket')),
  origin_repository_url: oddString,
  target_repository_url: oddString,
  revision: fc.stringMatching(/^[0-9a-f]{40}$/),
  branch: optional(oddString),
  tag: optional(oddString),
  review_id: optional(oddString),
  review_url: optional(oddString),
  commit: optional(withUnknown(vcsSchema.properties!.commit, fc.record({ subject: maybe(oddString), body: maybe(oddString) }))),
}).map(clean));

const pipelineArb = (createdMs: number, number: number, slug: string) =>
  withUnknown(pipelineSchema, fc.record({
    id: fc.uuid(),
    errors: fc.array(withUnknown(pipelineSchema.properties!.errors.items!, fc.record({ type: fc.constantFrom('config', 'config-fetch', 'timeout', 'permission', 'other', 'trigger-rule', 'plan'), message: oddString })), { maxLength: 2 }),
    project_slug: fc.constant(slug),
    number: fc.constant(number),
    state: fc.constantFrom('created', 'errored', 'setup-pending', 'setup', 'pending'),
    created_at: fc.constant(iso(createdMs)),
    updated_at: fc.oneof(fc.constant(undefined), timeAfter(createdMs, 3 * DAY).map((t) => iso(Math.min(t, NOW)))),
    trigger: withUnknown(triggerSchema, fc.record({
      type: fc.oneof(fc.constantFrom('scheduled_pipeline', 'explicit', 'api', 'webhook'), oddString),
      received_at: fc.constant(iso(createdMs)),
      actor: withUnknown(triggerSchema.properties!.actor, fc.record({ login: oddString, avatar_url: maybe(oddString) })),
    })),
    trigger_parameters: fc.oneof(fc.constant(undefined), fc.dictionary(oddString.filter((k) => k !== '__proto__'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 })),
    vcs: fc.oneof(fc.constant(undefined), fc.constant(null), vcsArb),
  }).map(clean));

const WF_STATUS = ['success', 'running', 'not_run', 'failed', 'error', 'failing', 'on_hold', 'canceled', 'unauthorized'];
const workflowArb = (pipeline: Json, createdMs: number) =>
  withUnknown(SCHEMAS.workflows, fc.record({
    id: fc.uuid(),
    pipeline_id: fc.constant(pipeline.id),
    pipeline_number: fc.constant(pipeline.number),
    name: oddString,
    project_slug: fc.constant(pipeline.project_slug),
    status: fc.constantFrom(...WF_STATUS),
    started_by: fc.uuid(),
    canceled_by: optional(fc.uuid()),
    errored_by: optional(fc.uuid()),
    tag: optional(fc.constant('setup')),
    created_at: fc.constant(isoSec(createdMs)),
    stopped_at: maybe(timeAfter(createdMs, DAY).map((t) => isoSec(Math.min(t, NOW)))),
    auto_rerun_number: optional(fc.nat(3)),
    max_auto_reruns: optional(fc.nat(5)),
  }).map(clean));

const JOB_STATUS = ['success', 'running', 'not_run', 'failed', 'retried', 'queued', 'not_running', 'infrastructure_fail', 'timedout', 'on_hold', 'terminated-unknown', 'blocked', 'canceled', 'unauthorized'];
const jobArb = (slug: unknown, createdMs: number) =>
  withUnknown(SCHEMAS.jobs, fc.record({
    dependencies: fc.array(fc.uuid(), { maxLength: 3 }),
    job_number: fc.oneof(fc.constant(undefined), fc.nat(1_000_000)),
    id: fc.uuid(),
    started_at: optional(timeAfter(createdMs, DAY).map((t) => isoSec(Math.min(t, NOW)))),
    name: oddString,
    approved_by: optional(fc.uuid()),
    project_slug: fc.constant(slug),
    status: fc.constantFrom(...JOB_STATUS),
    type: fc.constantFrom('build', 'approval'),
    requires: fc.oneof(fc.constant(undefined), fc.dictionary(fc.uuid(), fc.subarray(['success', 'failed', 'canceled']), { maxKeys: 2 })),
    stopped_at: optional(timeAfter(createdMs, DAY).map((t) => isoSec(Math.min(t, NOW)))),
    approval_request_id: optional(fc.uuid()),
    canceled_by: optional(fc.uuid()),
  }).map(clean));

/** How a list is cut into pages: sizes, empty pages carrying a next token, and how the last page ends. */
const pagingArb = fc.record({
  size: fc.integer({ min: 1, max: 4 }),
  /** Positions (page indexes) before which an empty page is inserted. */
  empties: fc.array(fc.nat(6), { maxLength: 3 }),
  last: fc.constantFrom<'null' | 'missing' | 'empty'>('null', 'missing', 'empty'),
  /** Tokens that need escaping in a query string. */
  tokenStyle: fc.constantFrom('plain', 'a b/c?d&e=f+%25#', 'é✓=', '=='),
});
type Paging = { size: number; empties: number[]; last: 'null' | 'missing' | 'empty'; tokenStyle: string };

interface Account {
  slugs: string[];
  /** Per slug, every pipeline newest first (some older than start_date, at the end). */
  pipelines: Map<string, Json[]>;
  workflows: Map<string, Json[]>;
  jobs: Map<string, Json[]>;
  paging: Paging;
  incremental: boolean;
}

const SLUGS = ['gh/acme/api', 'bb/Acme-Org/web.site', 'circleci/8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f/0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5'];

const accountArb: fc.Arbitrary<Account> = fc
  .record({
    slugs: fc.shuffledSubarray(SLUGS, { minLength: 1, maxLength: 2 }),
    perProject: fc.array(fc.record({
      count: fc.integer({ min: 0, max: 7 }),
      old: fc.integer({ min: 0, max: 2 }),
      firstNumber: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 2 ** 40, max: 2 ** 45 })),
      gaps: fc.array(fc.integer({ min: 1, max: 5 * DAY }), { minLength: 9, maxLength: 9 }),
    }), { minLength: 2, maxLength: 2 }),
    paging: pagingArb,
    incremental: fc.boolean(),
    seed: fc.integer(),
  })
  .chain(({ slugs, perProject, paging, incremental }) => {
    // Pipelines newest first: `count` since start_date, then `old` before it (the scan stops there).
    const plans = slugs.map((slug, p) => {
      const { count, old, firstNumber, gaps } = perProject[p];
      const times: number[] = [];
      let t = NOW - 60_000;
      for (let i = 0; i < count; i++) {
        times.push(t);
        t -= Math.min(gaps[i], Math.floor((NOW - START.getTime()) / 10));
      }
      for (let i = 0; i < old; i++) times.push(START.getTime() - (i + 1) * DAY);
      return times.map((ms, i) => ({ slug, ms, number: firstNumber + times.length - i }));
    });
    const pipelineArbs = plans.flat().map(({ slug, ms, number }) =>
      pipelineArb(ms, number, slug).chain((pl) =>
        fc.array(fc.integer({ min: 0, max: 3 * DAY }), { maxLength: 3 }).chain((offsets) =>
          fc.tuple(fc.constant(pl), fc.tuple(...offsets.map((o) => {
            const created = Math.min(ms + o, NOW);
            return workflowArb(pl, created).chain((wf) => fc.tuple(fc.constant(wf), fc.array(jobArb(pl.project_slug, created), { maxLength: 4 })));
          }))),
        ),
      ),
    );
    return fc.tuple(fc.constant({ slugs, paging, incremental }), fc.tuple(...pipelineArbs), fc.boolean());
  })
  .map(([{ slugs, paging, incremental }, trees, shareJob]) => {
    const account: Account = { slugs, pipelines: new Map(slugs.map((s) => [s, []])), workflows: new Map(), jobs: new Map(), paging, incremental };
    let previousJob: Json | undefined;
    // fast-check's uuids favour a few small values; ids must be unique, so number them.
    let n = 0;
    const uuid = () => `${(++n).toString(16).padStart(8, '0')}-7a1e-4c0d-9e55-${(n * 7919).toString(16).padStart(12, '0')}`;
    for (const [pl, wfs] of trees) {
      pl.id = uuid();
      account.pipelines.get(String(pl.project_slug))!.push(pl);
      account.workflows.set(String(pl.id), wfs.map(([wf]) => wf));
      for (const [wf, jobs] of wfs) {
        wf.id = uuid();
        wf.pipeline_id = pl.id;
        for (const job of jobs) job.id = uuid();
        // "Rerun from failed": the same job id listed under a second workflow.
        if (shareJob && previousJob && jobs.length) jobs[0] = { ...jobs[0], id: previousJob.id };
        previousJob = jobs[0] ?? previousJob;
        account.jobs.set(String(wf.id), jobs);
      }
    }
    return account;
  });

// ---------------------------------------------------------------------------------------------
// The loopback API

/** Cuts a list into pages by `paging`; returns page bodies keyed by the token that asks for them ('' = first). */
function paginate(items: Json[], paging: Paging, salt: string): Map<string, string> {
  const chunks: Json[][] = [];
  for (let i = 0; i < items.length; i += paging.size) chunks.push(items.slice(i, i + paging.size));
  if (!chunks.length) chunks.push([]);
  // Empty pages that still carry a next token.
  for (const at of [...paging.empties].sort((a, b) => b - a)) if (at < chunks.length) chunks.splice(at, 0, []);
  const tokenFor = (i: number) => (paging.tokenStyle === 'plain' ? `${salt}-${i}` : `${paging.tokenStyle}${salt}${i}`);
  const pages = new Map<string, string>();
  chunks.forEach((chunk, i) => {
    const isLast = i === chunks.length - 1;
    const body: Json = { items: chunk };
    if (!isLast) body.next_page_token = tokenFor(i + 1);
    else if (paging.last === 'null') body.next_page_token = null;
    else if (paging.last === 'empty') body.next_page_token = '';
    pages.set(i === 0 ? '' : tokenFor(i), JSON.stringify(body));
  });
  return pages;
}

let routes = new Map<string, Map<string, string>>();
const unexpected: string[] = [];

function load(a: Account) {
  routes = new Map();
  unexpected.length = 0;
  for (const [slug, list] of a.pipelines) routes.set(`/api/v2/project/${slug}/pipeline`, paginate(list, a.paging, 'p'));
  for (const [id, list] of a.workflows) routes.set(`/api/v2/pipeline/${id}/workflow`, paginate(list, a.paging, `w${id.slice(0, 4)}`));
  for (const [id, list] of a.jobs) routes.set(`/api/v2/workflow/${id}/job`, paginate(list, a.paging, `j${id.slice(0, 4)}`));
}

let server: http.Server;
let baseUrl: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.split('/').map((s) => decodeURIComponent(s)).join('/');
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(body);
    };
    if (req.headers['circle-token'] !== TEST_TOKEN) return send(401, '{"message":"You must log in first."}');
    if (path === '/api/v2/me') return send(200, '{"id":"0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5","login":"alice","name":"Alice"}');
    const pages = routes.get(path);
    const body = pages?.get(url.searchParams.get('page-token') ?? '');
    if (body === undefined) {
      unexpected.push(`${req.url}`);
      return send(404, '{"message":"Not Found"}');
    }
    send(200, body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2`;
});

afterAll(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));

/** The records a full first sync of `a` must hold, as the API sent them (round-tripped through JSON) and projected. */
function expected(a: Account): Record<string, Map<string, Message>> {
  const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v));
  const out = Object.fromEntries(STREAMS.map((s) => [s, new Map<string, Message>()]));
  for (const list of a.pipelines.values()) {
    for (const pl of list) {
      if (Date.parse(String(pl.created_at)) < START.getTime()) break;
      out.pipelines.set(keyOf('pipelines', pl), projectOnto(SCHEMAS.pipelines, wire(pl)) as Message);
      for (const wf of a.workflows.get(String(pl.id)) ?? []) {
        out.workflows.set(keyOf('workflows', wf), projectOnto(SCHEMAS.workflows, wire(wf)) as Message);
        for (const job of a.jobs.get(String(wf.id)) ?? []) {
          const record = { ...wire(job), _pipeline_id: pl.id, _workflow_id: wf.id, _workflow_created_at: wf.created_at ?? null };
          out.jobs.set(keyOf('jobs', record), projectOnto(SCHEMAS.jobs, record) as Message);
        }
      }
    }
  }
  return out;
}

test('valid-but-odd payloads: every sync succeeds, every record validates and equals the API item projected onto its schema', async () => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(accountArb, async (a) => {
      runs++;
      load(a);
      const config = { token: TEST_TOKEN, project_slugs: a.slugs, start_date: START.toISOString(), base_url: baseUrl };
      const files = tempFiles({ config, catalog: a.incremental ? ALL_INCREMENTAL : ALL_FULL });
      const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog], { timeoutMs: 60_000 });
      const errors = r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR').map((m) => m.trace.error.message);
      expect({ code: r.code, errors, unexpectedRequests: unexpected.slice(0, 3) }).toEqual({ code: 0, errors: [], unexpectedRequests: [] });
      expect(invalidMessages(r.messages)).toEqual([]);
      const want = expected(a);
      for (const s of STREAMS) {
        const records = recordsOf(r.messages, s);
        const got = byKey(s, records);
        expect({ s, duplicates: records.length - got.size }).toEqual({ s, duplicates: 0 });
        expect({ s, keys: [...got.keys()].sort() }).toEqual({ s, keys: [...want[s].keys()].sort() });
        for (const [k, v] of want[s]) expect({ s, k, record: got.get(k) }).toEqual({ s, k, record: v });
      }
      // Every stream still ends with a checkpoint.
      const checkpointed = new Set(r.messages.filter((m) => m.type === 'STATE').map((m) => m.state.stream.stream_descriptor.name));
      expect(checkpointed).toEqual(new Set(STREAMS));
    }),
    // Seeded, so a failure reproduces; FC_SEED overrides it to explore further.
    { numRuns: 15, seed: Number(process.env.FC_SEED ?? 20261127), endOnFailure: !process.env.FC_SHRINK, verbose: 1 },
  );
  expect(runs).toBe(15);
});

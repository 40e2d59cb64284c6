/**
 * Reliability, part 2 (issue #6): resume. A read is killed with SIGKILL at several points and
 * rerun with the last STATE it printed; the union of records covers the ground truth, and a
 * resumed first sync does not fetch again the workflows and jobs of the pipelines it had
 * completed (it only pages the pipeline list again).
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import {
  AIRBYTE_CLI, ALL_FULL, ALL_INCREMENTAL, TEST_TOKEN, byKey, configuredCatalog, lastStates, recordsOf, runCli, tempFiles,
  type Message, type Mode,
} from './helpers.js';
import { invalidMessages } from './validate.js';

const DAY = 86_400_000;
const STREAMS = ['pipelines', 'workflows', 'jobs'] as const;

let world: World;
let mock: MockServer;
let startDate: Date;
/** Pipeline id → number and project; workflow id → pipeline id. */
const pipelineOf = new Map<string, { number: number; slug: string }>();
const workflowParent = new Map<string, string>();

beforeAll(async () => {
  // Two projects of ~200 pipelines each: resume markers (every 100 completed pipelines) happen mid-project.
  world = new World({ seed: 31, historyDays: 20, pipelinesPerDay: 10, projects: ['gh/acme/api', 'bb/acme/web'] });
  startDate = new Date(world.now().getTime() - 20 * DAY);
  // A little latency so the read is still running when the kill lands.
  mock = await startMockServer({ world, token: TEST_TOKEN, latencyMs: 1 });
  const truth = world.groundTruth(startDate);
  for (const p of truth.pipelines) pipelineOf.set(String(p.id), { number: p.number as number, slug: String(p.project_slug) });
  for (const w of truth.workflows) workflowParent.set(String(w.id), String(w.pipeline_id));
});

afterAll(() => mock.close());

const config = () => ({ token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl });

/** The pipeline numbers every selected stream's resume marker of `slug` claims as completed, if all have one. */
function completedRange(state: Message[], slug: string, streams: readonly string[]): { from: number; to: number } | undefined {
  let from = Number.NEGATIVE_INFINITY;
  let to = Number.POSITIVE_INFINITY;
  for (const s of streams) {
    const marker = state.find((m) => m.stream.stream_descriptor.name === s)?.stream.stream_state[slug]?.resume;
    if (!marker) return undefined;
    from = Math.max(from, marker.from);
    to = Math.min(to, marker.to);
  }
  return from <= to ? { from, to } : undefined;
}

/** The pipeline a workflow-list or job-list request is about, if any. */
function pipelineOfRequest(path: string): string | undefined {
  const wf = /^\/api\/v2\/pipeline\/([^/?]+)\/workflow/.exec(path);
  if (wf) return decodeURIComponent(wf[1]);
  const jb = /^\/api\/v2\/workflow\/([^/?]+)\/job/.exec(path);
  return jb ? workflowParent.get(decodeURIComponent(jb[1])) : undefined;
}

type KillPoint = { name: string; at: (message: Message, seen: { records: number; states: Message[] }) => boolean; signal?: NodeJS.Signals };

/** One read, killed with SIGKILL at the first message for which `kill` says so (or run to the end). */
async function readUntil(catalog: unknown, state: Message[], point: KillPoint | undefined) {
  const files = tempFiles({ config: config(), catalog, ...(state.length ? { state } : {}) });
  const args = ['read', '--config', files.config, '--catalog', files.catalog, ...(state.length ? ['--state', files.state] : [])];
  const seen = { records: 0, states: [] as Message[] };
  let killed = false;
  mock.resetCounters();
  const r = await runCli(AIRBYTE_CLI, args, {
    timeoutMs: 90_000,
    onStdoutLine: (line, kill) => {
      if (killed || !point || line === '') return;
      const m = JSON.parse(line) as Message;
      if (m.type === 'RECORD') seen.records++;
      if (m.type === 'STATE') seen.states = lastStates([m], seen.states);
      if (point.at(m, seen)) {
        killed = true;
        kill(point.signal ?? 'SIGKILL');
      }
    },
  });
  expect(invalidMessages(r.messages)).toEqual([]);
  return { ...r, killed, requests: [...mock.counters.log] };
}

/**
 * Runs a first sync, killing it at each point in turn and resuming from the last STATE printed,
 * then lets the last resume finish. Checks every resume against the request log.
 */
async function interruptedSync(catalog: unknown, streams: readonly string[], points: KillPoint[]) {
  const union = Object.fromEntries(STREAMS.map((s) => [s, new Map<string, Message>()]));
  /** Pipelines whose workflow list (and their workflows' job lists) got a complete 200 answer in some run so far. */
  const fetched = new Set<string>();
  let state: Message[] = [];
  let skippedTotal = 0;
  for (const [i, point] of [...points, undefined].entries()) {
    const r = await readUntil(catalog, state, point);
    if (point?.signal === 'SIGTERM') {
      // SIGTERM: a clean stop after a last checkpoint of what each project completed; then the
      // process dies by the signal (a shell reports 143).
      expect({ point: point.name, killed: r.killed, signal: r.signal }).toEqual({ point: point.name, killed: true, signal: 'SIGTERM' });
      const printed = lastStates(r.messages);
      expect(world.projectSlugs().some((slug) => completedRange(printed, slug, streams) !== undefined)).toBe(true);
      expect(r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR')).toEqual([]);
    } else if (point) {
      expect({ point: point.name, killed: r.killed, signal: r.signal }).toEqual({ point: point.name, killed: true, signal: 'SIGKILL' });
    } else {
      expect({ code: r.code, errors: r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR') }).toEqual({ code: 0, errors: [] });
    }
    // A resumed sync pages the pipeline list again...
    if (i > 0) expect(r.requests.some((l) => l.path.startsWith('/api/v2/project/'))).toBe(true);
    // ...but fetches nothing below the pipelines the state says were completed.
    for (const slug of world.projectSlugs()) {
      const range = completedRange(state, slug, streams);
      if (!range) continue;
      const isDone = (id: string | undefined) => {
        const p = id === undefined ? undefined : pipelineOf.get(id);
        return !!p && p.slug === slug && p.number >= range.from && p.number <= range.to;
      };
      const done = [...pipelineOf.entries()].filter(([id]) => isDone(id)).map(([id]) => id);
      skippedTotal += done.length;
      // What the marker claims was really fetched in an earlier run.
      expect({ slug, notFetchedBefore: done.filter((id) => !fetched.has(id)).slice(0, 3) }).toEqual({ slug, notFetchedBefore: [] });
      const again = r.requests.filter((l) => isDone(pipelineOfRequest(l.path))).map((l) => l.path);
      expect({ run: i, slug, range, fetchedAgain: again.slice(0, 5), count: again.length }).toEqual({ run: i, slug, range, fetchedAgain: [], count: 0 });
    }
    for (const l of r.requests) {
      const m = /^\/api\/v2\/pipeline\/([^/?]+)\/workflow/.exec(l.path);
      if (m && l.status === 200) fetched.add(decodeURIComponent(m[1]));
    }
    for (const s of STREAMS) byKey(s, recordsOf(r.messages, s), union[s]);
    state = lastStates(r.messages, state);
  }
  // The final state carries no resume marker any more.
  expect(JSON.stringify(state)).not.toContain('"resume"');
  return { union, skippedTotal };
}

function expectCoversTruth(union: Record<string, Map<string, Message>>, streams: readonly string[]) {
  const truth = world.groundTruth(startDate);
  for (const s of streams) {
    const expected = byKey(s, truth[s as keyof typeof truth] as unknown as Message[]);
    const missing = [...expected.keys()].filter((k) => !union[s].has(k));
    const extra = [...union[s].keys()].filter((k) => !expected.has(k));
    expect({ s, missing: missing.slice(0, 5), missingCount: missing.length, extra: extra.slice(0, 5) }).toEqual({ s, missing: [], missingCount: 0, extra: [] });
    // Last write wins: what a destination holds in the end equals the truth.
    for (const [k, v] of expected) expect({ s, k, record: union[s].get(k) }).toEqual({ s, k, record: v });
  }
}

const afterRecords = (n: number): KillPoint => ({ name: `after ${n} records`, at: (m, seen) => m.type === 'RECORD' && seen.records >= n });
const afterStates = (n: number): KillPoint => {
  let count = 0;
  return { name: `after ${n} STATE messages`, at: (m) => m.type === 'STATE' && ++count >= n };
};
/** Right after the first checkpoint at which every selected stream holds a resume marker for a project. */
const afterMarker = (streams: readonly string[]): KillPoint => ({
  name: 'after a complete resume marker',
  at: (m, seen) => m.type === 'STATE' && world.projectSlugs().some((slug) => completedRange(seen.states, slug, streams) !== undefined),
});

describe('SIGKILL and resume from the last STATE printed', () => {
  test('a first incremental sync killed four times (before any STATE, after the first STATEs, after resume markers) resumes to the ground truth without refetching completed pipelines', async () => {
    const streams = ['pipelines', 'workflows', 'jobs'];
    const { union, skippedTotal } = await interruptedSync(ALL_INCREMENTAL, streams, [
      afterRecords(3),
      afterMarker(streams),
      afterStates(1),
      afterMarker(streams),
    ]);
    expectCoversTruth(union, streams);
    // The resumes did skip completed pipelines: at least one marker of 100+ pipelines was honoured.
    expect(skippedTotal).toBeGreaterThanOrEqual(100);
  });

  test('full refresh of every stream killed mid-way resumes to the ground truth without refetching completed pipelines', async () => {
    const streams = ['pipelines', 'workflows', 'jobs'];
    const { union, skippedTotal } = await interruptedSync(ALL_FULL, streams, [afterMarker(streams), afterRecords(1500)]);
    expectCoversTruth(union, streams);
    expect(skippedTotal).toBeGreaterThanOrEqual(100);
  });

  test('SIGTERM mid-way: a last resume marker, then death by SIGTERM; the resumed sync completes the ground truth without refetching', async () => {
    const streams = ['pipelines', 'workflows', 'jobs'];
    const { union, skippedTotal } = await interruptedSync(ALL_INCREMENTAL, streams, [{ ...afterRecords(1500), signal: 'SIGTERM' }]);
    expectCoversTruth(union, streams);
    expect(skippedTotal).toBeGreaterThan(0);
  });

  test.each<[string, Partial<Record<'pipelines' | 'workflows' | 'jobs', Mode>>]>([
    ['workflows and jobs only', { workflows: 'incremental', jobs: 'full_refresh' }],
  ])('%s: killed after a resume marker, resumed to the ground truth', async (_name, selection) => {
    const streams = Object.keys(selection);
    const { union, skippedTotal } = await interruptedSync(configuredCatalog(selection), streams, [afterMarker(streams)]);
    expectCoversTruth(union, streams);
    expect(skippedTotal).toBeGreaterThanOrEqual(100);
  });

  test('resumable full refresh, as Airbyte runs it: discover declares every stream below the pipeline list is_resumable, so the platform hands a retried attempt of a jobs-only full refresh the state of the attempt before; that attempt fetches nothing the previous one completed', async () => {
    const files = tempFiles({ config: config() });
    const d = await runCli(AIRBYTE_CLI, ['discover', '--config', files.config]);
    const streams = d.messages.find((m) => m.type === 'CATALOG')!.catalog.streams;
    expect(streams.map((s: Message) => [s.name, s.is_resumable, typeof s.source_defined_cursor])).toEqual([
      ['projects', false, 'boolean'],
      ['pipelines', true, 'boolean'],
      ['workflows', true, 'boolean'],
      ['jobs', true, 'boolean'],
      ['job_details', true, 'boolean'],
      ['tests', true, 'boolean'],
      // Outside the walk: an incremental stream resumes from its cursor; a snapshot starts again.
      ['workflow_runs', true, 'boolean'],
      ['flaky_tests', false, 'boolean'],
      // Not below the pipeline list, but resumable from its own per-organization state (docs/usage.md).
      ['usage', true, 'boolean'],
    ]);
    // Attempt 1 is killed after a resume marker; attempt 2 gets its last STATE; killed again, attempt 3 finishes.
    const { union, skippedTotal } = await interruptedSync(configuredCatalog({ jobs: 'full_refresh' }), ['jobs'], [afterMarker(['jobs']), afterMarker(['jobs'])]);
    expectCoversTruth(union, ['jobs']);
    expect(skippedTotal).toBeGreaterThanOrEqual(200);
  });

  // Last: it moves the world's clock.
  test('time passes between the kill and the resume (new pipelines, finished workflows): the resume plus one more incremental sync equal the ground truth', async () => {
    const streams = ['pipelines', 'workflows', 'jobs'];
    const union = Object.fromEntries(STREAMS.map((s) => [s, new Map<string, Message>()]));
    const first = await readUntil(ALL_INCREMENTAL, [], afterMarker(streams));
    expect(first.killed).toBe(true);
    let state = lastStates(first.messages);
    for (const s of STREAMS) byKey(s, recordsOf(first.messages, s), union[s]);
    for (const [hours, resumed] of [[6, true], [1, false]] as const) {
      world.advance(hours * 3_600_000);
      const r = await readUntil(ALL_INCREMENTAL, state, undefined);
      expect({ code: r.code, errors: r.messages.filter((m) => m.type === 'TRACE' && m.trace.type === 'ERROR') }).toEqual({ code: 0, errors: [] });
      if (resumed) expect(r.messages.some((m) => m.type === 'LOG' && /already synced by an interrupted sync/.test(m.log.message))).toBe(true);
      for (const s of STREAMS) byKey(s, recordsOf(r.messages, s), union[s]);
      state = lastStates(r.messages, state);
    }
    expectCoversTruth(union, streams);
  });
});

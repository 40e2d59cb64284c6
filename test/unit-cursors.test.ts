/**
 * The cursor arithmetic (src/sync/cursors.ts), in-process and fast. A generated history (pipelines
 * whose updated_at moves, workflows created late on old pipelines, workflows that stay running for
 * a while), syncs that start at random times, read pipelines and workflow lists one after the
 * other while the history keeps changing, and are sometimes killed and resumed from their marker.
 * The invariant: the union of what the syncs emitted, last write winning, equals the final truth.
 */
import fc from 'fast-check';
import { admitted } from '../src/sync/carried.js';
import { SIGNPOST_MARGIN_MS, StreamCursor, horizon, signpost } from '../src/sync/cursors.js';
import type { ProjectCursor } from '../src/sync/state.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const LOOKBACK = 7 * DAY;

// ----- the history: the timing guarantees a lookback relies on (as the mock and CircleCI give them)

interface PipelineSpec {
  at: number;
  /** updated_at moves this long after creation (setup), within 2 days. */
  updates: number[];
  /** Workflows: created `after` the pipeline (reruns up to 5 days later), running for `runs`. */
  workflows: { after: number; runs: number }[];
}

interface Pipeline {
  id: string;
  number: number;
  created: number;
  updates: number[];
  workflows: { id: string; created: number; end: number }[];
}

const pipelineArb = fc.record({
  at: fc.integer({ min: 0, max: 30 * DAY }),
  updates: fc.array(fc.integer({ min: 1, max: 2 * DAY }), { maxLength: 2 }),
  workflows: fc.array(fc.record({ after: fc.integer({ min: 0, max: 4 * DAY }), runs: fc.integer({ min: 0, max: DAY }) }), { maxLength: 3 }),
});

function build(specs: PipelineSpec[]): Pipeline[] {
  return [...specs]
    .sort((a, b) => a.at - b.at)
    .map((p, i) => ({
      id: `p${i + 1}`,
      number: i + 1,
      created: p.at,
      updates: p.updates.map((u) => p.at + u).sort((a, b) => a - b),
      workflows: p.workflows.map((w, j) => ({ id: `p${i + 1}w${j}`, created: p.at + w.after, end: p.at + w.after + w.runs })),
    }));
}

const updatedAt = (p: Pipeline, t: number) => Math.max(p.created, ...p.updates.filter((u) => u <= t));
const workflowAt = (w: Pipeline['workflows'][number], t: number) =>
  t < w.end ? { id: w.id, created: w.created, status: 'running', stopped: null } : { id: w.id, created: w.created, status: 'success', stopped: w.end };

// ----- a sync, as the crawler runs one, with its reads spread over its duration

interface SyncSpec {
  /** Time since the previous sync ended. */
  gap: number;
  duration: number;
  /** Killed after this many pipelines completed (in listing order), with this many more pipeline records out. */
  kill: { completed: number; ahead: number } | null;
  /** When each pipeline's workflow list is read, as a share of what is left of the sync. */
  jitter: number[];
}

type State = { pipelines?: ProjectCursor; workflows?: ProjectCursor };
type Emitted = { pipelines: Map<string, unknown>; workflows: Map<string, unknown> };

function runSync(history: Pipeline[], startDate: number, state: State, t0: number, spec: SyncSpec, out: Emitted): State {
  const settings = (field: string) => ({ field, incremental: true, startDate, lookbackMs: LOOKBACK });
  const pc = new StreamCursor(settings('updated_at'), state.pipelines);
  const wc = new StreamCursor(settings('created_at'), state.workflows);
  const sign = signpost(t0);
  const hz = horizon(t0, LOOKBACK);
  const floor = Math.min(pc.floor, wc.floor);
  // Page 1 is read at t0: pipelines created later are not listed (older pages never show them).
  const listed = history.filter((p) => p.created <= t0).reverse();
  const scanned: Pipeline[] = [];
  for (const p of listed) {
    if (p.created < floor) break;
    scanned.push(p);
  }
  const n = scanned.length;
  const completed = spec.kill ? Math.min(spec.kill.completed, n) : n;
  const ahead = spec.kill ? Math.min(n, completed + spec.kill.ahead) : n;
  for (let i = 0; i < ahead; i++) {
    const p = scanned[i];
    const listedAt = t0 + (spec.duration * i) / (n + 1);
    if (p.created >= startDate && !pc.done(p.number)) {
      const u = updatedAt(p, listedAt);
      if (pc.accept(u, p.created, false, hz)) out.pipelines.set(p.id, { id: p.id, updated_at: u });
    }
    if (i >= completed) continue; // its children were still in flight when the sync was killed
    if (p.created >= startDate && p.created >= wc.floor && !wc.done(p.number)) {
      const share = spec.jitter[i % Math.max(1, spec.jitter.length)] ?? 0;
      const readAt = listedAt + (t0 + spec.duration - listedAt) * share;
      for (const w of p.workflows.filter((w) => w.created <= readAt)) {
        const seen = workflowAt(w, readAt);
        if (wc.accept(seen.created, p.created, seen.status === 'running', hz)) out.workflows.set(w.id, seen);
      }
    }
  }
  if (!spec.kill) return { pipelines: pc.final(sign), workflows: wc.final(sign) };
  // A marker only for an unbroken run from the top that reaches the old marker, if any.
  if (completed === 0) return state;
  const run = { top: scanned[0].number, through: scanned[completed - 1].number };
  if (!pc.canMark(run.through) || !wc.canMark(run.through)) return state;
  return { pipelines: pc.partial(sign, run), workflows: wc.partial(sign, run) };
}

const syncArb = fc.record({
  gap: fc.integer({ min: 1, max: 3 * DAY }),
  duration: fc.integer({ min: 1, max: 10 * HOUR }),
  kill: fc.option(fc.record({ completed: fc.integer({ min: 0, max: 20 }), ahead: fc.integer({ min: 0, max: 5 }) }), { freq: 3 }),
  jitter: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 }),
});

describe('incremental syncs against a history that changes while they run', () => {
  test('the union of the emitted records, last write winning, equals the final truth', () => {
    fc.assert(
      fc.property(
        fc.array(pipelineArb, { minLength: 1, maxLength: 25 }),
        fc.array(syncArb, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 10 * DAY }),
        (specs, syncs, startOffset) => {
          const history = build(specs);
          const out: Emitted = { pipelines: new Map(), workflows: new Map() };
          let state: State = {};
          let t = 0;
          for (const s of syncs) {
            t += s.gap;
            state = runSync(history, startOffset, state, t, s, out);
            t += s.duration;
          }
          // Once everything has settled, one complete sync; a sync that resumes a marker did not read
          // the marker's pipelines again, so after one of those, one more.
          const end = Math.max(t, ...history.flatMap((p) => [p.created, ...p.updates, ...p.workflows.map((w) => w.end)])) + DAY;
          const settle = { gap: 0, duration: HOUR, kill: null, jitter: [0] };
          const resuming = !!(state.pipelines?.resume || state.workflows?.resume);
          state = runSync(history, startOffset, state, end, settle, out);
          if (resuming) runSync(history, startOffset, state, end + DAY, settle, out);

          const kept = history.filter((p) => p.created >= startOffset);
          expect(Object.fromEntries(out.pipelines)).toEqual(Object.fromEntries(kept.map((p) => [p.id, { id: p.id, updated_at: updatedAt(p, end) }])));
          expect(Object.fromEntries(out.workflows)).toEqual(Object.fromEntries(kept.flatMap((p) => p.workflows.map((w) => [w.id, workflowAt(w, end)]))));
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('the rules, one by one', () => {
  const start = Date.parse('2026-01-01T00:00:00Z');
  const at = (iso: string) => Date.parse(iso);
  const settings = (field: string) => ({ field, incremental: true, startDate: start, lookbackMs: LOOKBACK });

  test('records newer than the sync\'s start leave a signpost: the cursor is the newest value, the next sync emits again from the signpost', () => {
    const c = new StreamCursor(settings('updated_at'), { updated_at: '2026-02-01T00:00:00.000Z' });
    c.accept(at('2026-02-10T12:00:00Z'), at('2026-02-10T11:00:00Z'), false, 0);
    const syncStart = at('2026-02-10T11:30:00Z');
    const saved = c.final(signpost(syncStart))!;
    expect(saved).toEqual({ updated_at: '2026-02-10T12:00:00.000Z', signpost: new Date(syncStart - SIGNPOST_MARGIN_MS).toISOString() });
    expect(new StreamCursor(settings('updated_at'), saved).threshold).toBe(syncStart - SIGNPOST_MARGIN_MS);
    // Nothing newer than the start: no signpost, the next sync emits from the cursor.
    const quiet = new StreamCursor(settings('updated_at'), { updated_at: '2026-02-01T00:00:00.000Z' });
    quiet.accept(at('2026-02-09T00:00:00Z'), at('2026-02-09T00:00:00Z'), false, 0);
    expect(quiet.final(signpost(syncStart))).toEqual({ updated_at: '2026-02-09T00:00:00.000Z' });
  });

  test('a stream that skips what settled (details, tests) keeps the signpost of every sync that emitted, and knows when the previous sync looked', () => {
    const keep = { ...settings('_workflow_created_at'), keepSignpost: true };
    const fresh = new StreamCursor(keep, undefined);
    expect(fresh.seenUntil).toBe(Number.NEGATIVE_INFINITY);
    fresh.accept(at('2026-02-09T00:00:00Z'), at('2026-02-09T00:00:00Z'), false, 0);
    const syncStart = at('2026-02-10T00:00:00Z');
    const saved = fresh.final(signpost(syncStart))!;
    const sign = new Date(syncStart - SIGNPOST_MARGIN_MS).toISOString();
    expect(saved).toEqual({ _workflow_created_at: '2026-02-09T00:00:00.000Z', signpost: sign });
    const next = new StreamCursor(keep, saved);
    expect(next.seenUntil).toBe(syncStart - SIGNPOST_MARGIN_MS);
    // The signpost is later than the cursor: it moves neither the threshold nor the floor.
    expect(next.threshold).toBe(at('2026-02-09T00:00:00Z'));
    expect(next.floor).toBe(at('2026-02-09T00:00:00Z') - LOOKBACK);
    // A sync that emitted nothing keeps the signpost it found.
    expect(next.final(signpost(at('2026-02-12T00:00:00Z')))).toEqual(saved);
    // Full refresh skips nothing; a state without a signpost vouches for its cursor.
    expect(new StreamCursor({ ...keep, incremental: false }, saved).seenUntil).toBe(Number.NEGATIVE_INFINITY);
    expect(new StreamCursor(keep, { _workflow_created_at: '2026-02-09T00:00:00.000Z' }).seenUntil).toBe(at('2026-02-09T00:00:00Z'));
  });

  test('the cursor never goes backwards, and without new records stays where it was', () => {
    const c = new StreamCursor(settings('updated_at'), { updated_at: '2026-02-01T00:00:00.000Z' });
    expect(c.final(signpost(at('2026-01-15T00:00:00Z')))).toEqual({ updated_at: '2026-02-01T00:00:00.000Z' });
  });

  test('an unfinished workflow is read again from unfinished_from; the scan floor counts the lookback from the newest value, not from it', () => {
    const c = new StreamCursor(settings('created_at'), { created_at: '2026-02-01T00:00:00.000Z' });
    c.accept(at('2026-02-03T00:00:00Z'), at('2026-02-02T00:00:00Z'), true, at('2026-01-27T00:00:00Z'));
    c.accept(at('2026-02-09T00:00:00Z'), at('2026-02-09T00:00:00Z'), false, at('2026-01-27T00:00:00Z'));
    const saved = c.final(signpost(at('2026-02-10T00:00:00Z')))!;
    expect(saved).toEqual({ created_at: '2026-02-09T00:00:00.000Z', unfinished_from: '2026-02-03T00:00:00.000Z', rescan_from: '2026-02-02T00:00:00.000Z' });
    const next = new StreamCursor(settings('created_at'), saved);
    expect(next.threshold).toBe(at('2026-02-03T00:00:00Z'));
    // min(latest − 7 days, rescan_from) = min(Feb 2, Feb 2): not Feb 3 − 7 days = Jan 27.
    expect(new Date(next.floor).toISOString()).toBe('2026-02-02T00:00:00.000Z');
    const held = new StreamCursor(settings('created_at'), { ...saved, rescan_from: '2026-02-05T00:00:00.000Z' });
    expect(new Date(held.floor).toISOString()).toBe('2026-02-02T00:00:00.000Z');
  });

  test('an unfinished workflow older than the lookback horizon is no longer read again', () => {
    const c = new StreamCursor(settings('created_at'), undefined);
    c.accept(at('2026-01-02T00:00:00Z'), at('2026-01-02T00:00:00Z'), true, at('2026-01-05T00:00:00Z'));
    c.accept(at('2026-01-09T00:00:00Z'), at('2026-01-09T00:00:00Z'), false, at('2026-01-05T00:00:00Z'));
    expect(c.final(signpost(at('2026-01-12T00:00:00Z')))).toEqual({ created_at: '2026-01-09T00:00:00.000Z' });
  });

  test('a resumed sync skips the marker\'s pipelines and keeps the interrupted sync\'s signpost', () => {
    const first = new StreamCursor(settings('updated_at'), { updated_at: '2026-02-01T00:00:00.000Z' });
    first.accept(at('2026-02-05T00:00:00Z'), at('2026-02-05T00:00:00Z'), false, 0);
    const interruptedStart = at('2026-02-05T06:00:00Z');
    const marked = first.partial(signpost(interruptedStart), { top: 90, through: 80 });
    expect(marked).toEqual({
      updated_at: '2026-02-01T00:00:00.000Z',
      resume: { from: 80, to: 90, max: '2026-02-05T00:00:00.000Z', cap: new Date(interruptedStart - SIGNPOST_MARGIN_MS).toISOString() },
    });
    const resumed = new StreamCursor(settings('updated_at'), marked);
    expect([resumed.done(79), resumed.done(80), resumed.done(90), resumed.done(91), resumed.done(undefined)]).toEqual([false, true, true, false, false]);
    resumed.accept(at('2026-02-07T00:00:00Z'), at('2026-02-07T00:00:00Z'), false, 0);
    expect(resumed.final(signpost(at('2026-02-08T00:00:00Z')))).toEqual({
      updated_at: '2026-02-07T00:00:00.000Z',
      signpost: new Date(interruptedStart - SIGNPOST_MARGIN_MS).toISOString(),
    });
  });

  test('full refresh emits everything and scans to start_date whatever the state says', () => {
    const c = new StreamCursor({ field: 'updated_at', incremental: false, startDate: start, lookbackMs: LOOKBACK }, { updated_at: '2026-03-01T00:00:00.000Z' });
    expect([c.threshold, c.floor]).toEqual([Number.NEGATIVE_INFINITY, start]);
    expect(c.accept(at('2026-01-02T00:00:00Z'), at('2026-01-02T00:00:00Z'), false, 0)).toBe(true);
    const jobs = new StreamCursor({ incremental: false, startDate: start, lookbackMs: LOOKBACK }, undefined);
    expect(jobs.final(0)).toBeUndefined();
    expect(jobs.partial(0, { top: 5, through: 3 })).toEqual({ resume: { from: 3, to: 5 } });
  });
});

// ----- the rules of streams that carry their workflow's cursor (jobs, job details), the same way

/**
 * The same kind of history, with jobs: each workflow's jobs are listed from its creation and stop
 * at their own time (a share of the workflow's run). A sync reads, below each workflow it lists,
 * the jobs (when their cursor admits the workflow) and each job's details (when admitted, and
 * unless an earlier sync read them final: settledAt before seenUntil). Some details requests
 * answer 404 (an incident): `missed` follows them like unfinished work, and only what was older
 * than the follow horizon when it answered 404 may be given up.
 */
interface JobsWorld {
  pipelines: { id: string; number: number; created: number; workflows: { id: string; created: number; end: number; jobs: { number: number; stop: number }[] }[] }[];
}

const jobsPipelineArb = fc.record({
  at: fc.integer({ min: 0, max: 20 * DAY }),
  workflows: fc.array(
    fc.record({ after: fc.integer({ min: 0, max: 2 * DAY }), runs: fc.integer({ min: 0, max: DAY }), jobs: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 3 }) }),
    { maxLength: 2 },
  ),
});

function buildJobs(specs: { at: number; workflows: { after: number; runs: number; jobs: number[] }[] }[]): JobsWorld {
  let n = 0;
  return {
    pipelines: [...specs]
      .sort((a, b) => a.at - b.at)
      .map((p, i) => ({
        id: `p${i + 1}`,
        number: i + 1,
        created: p.at,
        workflows: p.workflows.map((w, j) => {
          const created = p.at + w.after;
          return { id: `p${i + 1}w${j}`, created, end: created + w.runs, jobs: w.jobs.map((share) => ({ number: ++n, stop: created + Math.round((w.runs * share) / 1000) })) };
        }),
      })),
  };
}

const jobAt = (job: { number: number; stop: number }, t: number) => (t < job.stop ? { number: job.number, status: 'running' } : { number: job.number, status: 'success', stopped: job.stop });

type JobsState = { workflows?: ProjectCursor; jobs?: ProjectCursor; job_details?: ProjectCursor };
type JobsOut = {
  jobs: Map<string, unknown>;
  details: Map<number, unknown>;
  givenUp: Set<number>;
  /** Jobs a complete sync (not resuming a marker) read stopped before its signpost: never asked again. */
  readFinal: Set<number>;
  /** Asks of those. */
  askedAgain: number[];
};

interface JobsSyncSpec extends SyncSpec {
  /** Details requests of this sync that answer 404, by their order in the sync (mod the list's length). */
  notFound: boolean[];
}

function runJobsSync(world: JobsWorld, startDate: number, state: JobsState, t0: number, spec: JobsSyncSpec, out: JobsOut): JobsState {
  const settings = (field: string, keepSignpost = false) => ({ field, incremental: true, startDate, lookbackMs: LOOKBACK, keepSignpost });
  const wc = new StreamCursor(settings('created_at'), state.workflows);
  const jc = new StreamCursor(settings('_workflow_created_at'), state.jobs);
  const dc = new StreamCursor(settings('_workflow_created_at', true), state.job_details);
  const sign = signpost(t0);
  const hz = horizon(t0, LOOKBACK);
  const floor = Math.min(wc.floor, jc.floor, dc.floor);
  const scanned = world.pipelines.filter((p) => p.created <= t0).reverse().filter((p, i, all) => all.slice(0, i + 1).every((q) => q.created >= floor));
  const n = scanned.length;
  const completed = spec.kill ? Math.min(spec.kill.completed, n) : n;
  let asked = 0;
  for (let i = 0; i < completed; i++) {
    const p = scanned[i];
    if (p.created < startDate) continue;
    const listedAt = t0 + (spec.duration * i) / (n + 1);
    const readAt = listedAt + (t0 + spec.duration - listedAt) * (spec.jitter[i % spec.jitter.length] ?? 0);
    for (const w of p.workflows.filter((w) => w.created <= readAt)) {
      const running = readAt < w.end;
      if (!wc.done(p.number)) wc.accept(w.created, p.created, running, hz);
      // The crawler's rule, from the same module.
      const owner = { value: w.created, mayChange: running, pipelineTime: p.created, pipelineNumber: p.number };
      const jobsIn = admitted(jc, owner, hz);
      const detailsIn = admitted(dc, owner, hz);
      for (const job of w.jobs) {
        const seen = jobAt(job, readAt);
        if (jobsIn) out.jobs.set(`${job.number}|${w.id}`, seen);
        if (!detailsIn) continue;
        const settledAt = Math.max(seen.status === 'running' ? Number.POSITIVE_INFINITY : job.stop, w.created);
        const path = `/project/x/job/${job.number}`;
        if (dc.readFinal(settledAt, path)) continue;
        if (out.readFinal.has(job.number)) out.askedAgain.push(job.number);
        if (spec.notFound[asked++ % Math.max(1, spec.notFound.length)]) {
          if (!dc.missed(w.created, p.created, hz, path)) out.givenUp.add(job.number);
          continue;
        }
        out.details.set(job.number, seen);
        if (!spec.kill && !state.job_details?.resume && seen.status !== 'running' && job.stop < sign) out.readFinal.add(job.number);
      }
    }
  }
  const cursors = { workflows: wc, jobs: jc, job_details: dc };
  if (!spec.kill) return Object.fromEntries(Object.entries(cursors).map(([k, c]) => [k, c.final(sign)])) as JobsState;
  if (completed === 0) return state;
  const run = { top: scanned[0].number, through: scanned[completed - 1].number };
  if (Object.values(cursors).some((c) => !c.canMark(run.through))) return state;
  return Object.fromEntries(Object.entries(cursors).map(([k, c]) => [k, c.partial(sign, run)])) as JobsState;
}

describe('streams that carry their workflow\'s cursor (jobs, job details), with 404s that pass', () => {
  test('jobs end as the final truth; details too, asked again after a 404 and never given up while followed; details read final are not asked again', () => {
    fc.assert(
      fc.property(
        fc.array(jobsPipelineArb, { minLength: 1, maxLength: 15 }),
        fc.array(fc.tuple(syncArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 6 })), { minLength: 1, maxLength: 6 }),
        (specs, syncs) => {
          const world = buildJobs(specs);
          const out: JobsOut = { jobs: new Map(), details: new Map(), givenUp: new Set(), readFinal: new Set(), askedAgain: [] };
          let state: JobsState = {};
          let t = 0;
          for (const [s, notFound] of syncs) {
            t += s.gap;
            state = runJobsSync(world, 0, state, t, { ...s, notFound }, out);
            t += s.duration;
          }
          const end = Math.max(t, ...world.pipelines.flatMap((p) => p.workflows.map((w) => w.end))) + DAY;
          const settle = { gap: 0, duration: HOUR, kill: null, jitter: [0], notFound: [false] };
          const resuming = Object.values(state).some((c) => c?.resume);
          state = runJobsSync(world, 0, state, end, settle, out);
          if (resuming) runJobsSync(world, 0, state, end + DAY, settle, out);

          const jobs = world.pipelines.flatMap((p) => p.workflows.flatMap((w) => w.jobs.map((j) => [`${j.number}|${w.id}`, jobAt(j, end)] as const)));
          expect(Object.fromEntries(out.jobs)).toEqual(Object.fromEntries(jobs));
          const details = world.pipelines.flatMap((p) => p.workflows.flatMap((w) => w.jobs.map((j) => [j.number, jobAt(j, end)] as const)));
          expect(out.askedAgain).toEqual([]);
          // What was given up keeps whatever an earlier read saw (or a later one, if it answered again).
          const kept = (n: number) => !out.givenUp.has(n);
          expect(Object.fromEntries([...out.details].filter(([n]) => kept(n)))).toEqual(Object.fromEntries(details.filter(([n]) => kept(n))));
        },
      ),
      { numRuns: 300 },
    );
  });
});

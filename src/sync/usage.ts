import { HttpError, StoppedError, type CircleCIClient } from '../circleci/client.js';
import { createExport, partRows, pollExport, type ExportJob } from '../circleci/usage-export.js';
import { sleep } from '../circleci/retry.js';
import type { Config } from '../config.js';
import { ConnectorError, asConnectorError } from '../errors.js';
import { project, type Json, type JsonSchema } from '../streams/stream.js';
import { rowPlan, usage, usageRecord, type BadCells, type RowPlan } from '../streams/usage.js';
import type { SyncMode, SyncSink } from './crawler.js';
import { progressOf, withProgress, type UsageCursor, type UsageState } from './usage-state.js';
import { advance, exportFloor, nextCreateAt, nextWindow, recentCreates, windowsLeft, type Window } from './usage-windows.js';

/**
 * The usage stream's reader: per organization, one export at a time, oldest window first. An
 * export is created (paced under the create limit), polled within the sync's budget, and its
 * parts' rows emitted; then the state says the window is done. An export still running when the
 * budget ends stays in the state, and the next sync polls it instead of creating another.
 * Rules and costs: docs/usage.md.
 */

export interface UsageOrg {
  id: string;
  /** How to name it to a person: its slug when known. */
  name: string;
}

export interface UsageReadOptions {
  config: Config;
  client: CircleCIClient;
  mode: SyncMode;
  schema?: JsonSchema;
  state: UsageState;
  sink: SyncSink;
  orgs: UsageOrg[];
  signal?: AbortSignal;
  /** The sync's start as CircleCI's clock saw it (epoch ms): which day is today. */
  now: number;
}

const STREAM = usage.name;
/** Failed exports of one organization retried with a new job in one sync (then left to the next sync). */
const MAX_FAILED = 2;
/** Polls start this far apart and double up to the cap (CircleCI allows about 10 polls a minute). */
const POLL_FIRST_MS = 1_000;
const POLL_MAX_MS = 60_000;
const day = (t: number) => new Date(t).toISOString().slice(0, 10);
const span = (w: Window) => `${day(w.start)} to ${day(w.end)}`;

export async function readUsage(o: UsageReadOptions): Promise<void> {
  const { sink } = o;
  const state: UsageState = structuredClone(o.state);
  let count = 0;
  let last: string | undefined;
  let writing: Promise<void> = Promise.resolve();
  // Organizations run side by side: their checkpoints go out one at a time, each after the records it covers.
  const checkpoint = () =>
    (writing = writing.then(async () => {
      const text = JSON.stringify(state);
      // Identical consecutive states with nothing between them break the platform's record-count checksum.
      if (text === last && count === 0) return;
      last = text;
      const n = count;
      count = 0;
      await sink.checkpoint(STREAM, structuredClone(state), n);
      await sink.checkpointed?.();
    }));
  let running = false;
  const emit = async (data: Json) => {
    if (!running) {
      running = true;
      await sink.status(STREAM, 'RUNNING');
    }
    count++;
    await sink.record(STREAM, data);
  };

  await sink.status(STREAM, 'STARTED');
  if (!o.orgs.length) await sink.log('WARN', 'usage: no organization to export (none configured in "organizations", and no listed project named one); nothing to read.');
  const failures: ConnectorError[] = [];
  await Promise.all(
    o.orgs.map(async (org) => {
      const reader = new OrgUsage(o, org, state[org.id] ?? {}, emit, async (cursor) => {
        state[org.id] = cursor;
        await checkpoint();
      });
      try {
        await reader.run();
      } catch (e) {
        if (!(e instanceof StoppedError)) failures.push(asConnectorError(e));
      }
    }),
  );
  if (o.signal?.aborted) return;
  await checkpoint();
  await writing;
  await sink.status(STREAM, failures.length ? 'INCOMPLETE' : 'COMPLETE');
  if (failures.length) throw failures[0];
}

class OrgUsage {
  private cursor: UsageCursor;
  private readonly floor: number;
  /** When this sync stops waiting for exports and creates (epoch ms, this machine's clock). */
  private readonly deadline: number;
  private failed = 0;
  private readonly full: boolean;

  constructor(
    private readonly o: UsageReadOptions,
    private readonly org: UsageOrg,
    saved: UsageCursor,
    private readonly emit: (data: Json) => Promise<void>,
    private readonly save: (cursor: UsageCursor) => Promise<void>,
  ) {
    this.full = o.mode === 'full_refresh';
    this.floor = exportFloor(o.config.startDate.getTime(), o.now);
    // A full refresh starts again from the floor (an export of its first window still pending is
    // collected, not made again); what paces creates is kept whatever the mode.
    const firstPending = saved.pending_start !== undefined && Date.parse(saved.pending_start) === this.floor;
    this.cursor = this.full ? pick(saved, ['creates', 'create_after', ...(firstPending ? ['pending_job', 'pending_start', 'pending_end', 'pending_created'] : [])]) : { ...saved };
    // The same budget in both modes: a sync is never held for the hours a year's backfill can take.
    this.deadline = Date.now() + o.config.usagePollMs;
  }

  private log(level: 'INFO' | 'WARN', message: string) {
    return this.o.sink.log(level, `usage: organization ${this.org.name}: ${message}`);
  }

  private get stopped(): boolean {
    return !!this.o.signal?.aborted;
  }

  async run(): Promise<void> {
    const from = progressOf(this.cursor);
    const resume = from.recheckFrom ?? from.through;
    if (!this.full && resume !== undefined && resume < this.floor && this.floor > this.o.config.startDate.getTime()) {
      await this.log('WARN', `the state resumes at ${day(resume)}, but CircleCI exports at most a year back: ${day(resume)} to ${day(this.floor)} can no longer be exported and is skipped.`);
    }
    for (;;) {
      if (this.stopped) throw new StoppedError();
      if (this.cursor.pending_job) {
        if (!(await this.collect())) return;
        continue;
      }
      const window = nextWindow(progressOf(this.cursor), this.floor, this.o.now);
      if (!window) {
        if (!this.cursor._window_end || Date.parse(this.cursor._window_end) < this.floor) await this.log('INFO', 'nothing to export.');
        return;
      }
      if (!(await this.create(window))) return;
    }
  }

  /** Creates the export of `window` when the create limit allows it; false: not in this sync. */
  private async create(window: Window): Promise<boolean> {
    const limit = this.o.config.usageCreateLimit;
    const creates = (this.cursor.creates ?? []).map(Date.parse);
    const notBefore = this.cursor.create_after ? Date.parse(this.cursor.create_after) : 0;
    const at = nextCreateAt(creates, limit, Date.now(), notBefore);
    if (at > Date.now()) {
      if (at > this.deadline) {
        const left = windowsLeft(window.start, this.o.now);
        await this.log(
          this.full ? 'WARN' : 'INFO',
          `${left} window${left === 1 ? '' : 's'} (from ${day(window.start)}) wait for the create limit (${limit.count} exports per ${Math.round(limit.windowMs / 60_000)} min per organization); ` +
            `the next create is allowed after ${new Date(at).toISOString()}, so ${this.full ? 'this full refresh is missing them: use incremental sync for usage (docs/usage.md)' : 'a later sync continues'}.`,
        );
        return false;
      }
      await sleep(at - Date.now(), this.o.signal);
      return true;
    }
    let job: ExportJob;
    try {
      job = await createExport(this.o.client, this.org.id, new Date(window.start), new Date(window.end));
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      if (e.status === 404) {
        await this.log(
          'WARN',
          `usage export is not available (404 on POST /organizations/${this.org.id}/usage_export_job): CircleCI Server has no Usage Export API, and some plans do not include it. ` +
            'The usage stream skips this organization; the other streams are not affected.',
        );
        return false;
      }
      if (e.status === 429) {
        const waitMs = e.retryAfterMs ?? limit.windowMs;
        // Someone else spent the organization's creates (or the state that counted them was lost): wait as asked, once.
        this.cursor = { ...this.cursor, create_after: new Date(Date.now() + waitMs).toISOString() };
        await this.save(this.cursor);
        await this.log('INFO', `CircleCI's create limit was reached (429); the next create waits ${Math.round(waitMs / 1000)} s.`);
        return true;
      }
      if (e.status === 400) {
        await this.log('WARN', `CircleCI refused the export of ${span(window)} (400: ${e.serverMessage || 'bad window'}); the usage stream skips this organization in this sync.`);
        return false;
      }
      throw e;
    }
    const now = Date.now();
    const { create_after: _spent, ...rest } = this.cursor;
    this.cursor = {
      ...rest,
      pending_job: job.id,
      pending_start: new Date(window.start).toISOString(),
      pending_end: new Date(window.end).toISOString(),
      pending_created: new Date(this.o.now).toISOString(),
      creates: [...recentCreates(this.cursor.creates?.map(Date.parse) ?? [], limit, now), now].map((t) => new Date(t).toISOString()),
    };
    // In the state before anything else: a sync that dies now leaves the next one a job to poll, not a create to repeat.
    await this.save(this.cursor);
    await this.log('INFO', `export of ${span(window)} created (job ${job.id}).`);
    return true;
  }

  /** Polls the pending export until it ends or the budget does; emits a completed one. False: leave it to the next sync. */
  private async collect(): Promise<boolean> {
    const id = this.cursor.pending_job!;
    const window = { start: Date.parse(this.cursor.pending_start!), end: Date.parse(this.cursor.pending_end!) };
    const scale = this.o.config.retryTiming.scale ?? 1;
    let job: ExportJob | undefined;
    for (let wait = POLL_FIRST_MS; ; wait = Math.min(wait * 2, POLL_MAX_MS)) {
      try {
        job = await pollExport(this.o.client, this.org.id, id);
      } catch (e) {
        if (!(e instanceof HttpError && e.status === 404)) throw e;
        await this.log('WARN', `the pending export ${id} of ${span(window)} is gone (404); a new one is created.`);
        await this.drop();
        return true;
      }
      if (job.state === 'completed' || job.state === 'failed') break;
      const left = this.deadline - Date.now();
      if (left <= 0 || this.stopped) {
        await this.log(
          this.full ? 'WARN' : 'INFO',
          `export ${id} of ${span(window)} is still ${job.state}; it is kept in the state and the next sync collects it${this.full ? ' (this full refresh is missing it and what follows: use incremental sync for usage, docs/usage.md)' : ''}.`,
        );
        return false;
      }
      await sleep(Math.min(wait * scale, left), this.o.signal);
      if (this.stopped) throw new StoppedError();
    }
    if (job.state === 'failed') {
      this.failed++;
      await this.log('WARN', `export ${id} of ${span(window)} failed: ${job.errorReason ?? 'CircleCI gave no reason'}.${this.failed > MAX_FAILED ? '' : ' A new export is created.'}`);
      await this.drop();
      if (this.failed > MAX_FAILED) {
        await this.log('WARN', `${this.failed} exports failed in this sync; the next sync tries again.`);
        return false;
      }
      return true;
    }
    await this.emitParts(job, window);
    const createdAt = Date.parse(this.cursor.pending_created!);
    this.cursor = withProgress(this.dropped(), advance(progressOf(this.cursor), window, createdAt));
    // After every row of the window: the state now says it is done.
    await this.save(this.cursor);
    return true;
  }

  private async emitParts(job: ExportJob, window: Window): Promise<void> {
    const end = new Date(window.end).toISOString();
    // Records are built from the stream's schema: only a pruned one (Singer's selected fields) needs projecting.
    const schema = this.o.schema && this.o.schema !== usage.schema ? this.o.schema : undefined;
    const bad: BadCells = { count: 0 };
    let rows = 0;
    for (const url of job.downloadUrls) {
      const options = {
        policy: this.o.client.retryPolicy,
        allowInsecureHttp: this.o.config.allowInsecureHttp,
        signal: this.o.signal,
        onRetry: (reason: string, attempt: number, waitMs: number) =>
          void this.log('WARN', `downloading part ${job.downloadUrls.indexOf(url) + 1} of export ${job.id}: ${reason}; retry ${attempt} in ${(waitMs / 1000).toFixed(1)} s.`),
      };
      let plan: RowPlan | undefined;
      let header: readonly string[] | undefined;
      for await (const row of partRows(url, options)) {
        rows++;
        if (row.columns !== header) {
          header = row.columns;
          plan = rowPlan(header);
        }
        const record = usageRecord(row.values, plan!, this.org.id, end, bad);
        await this.emit(schema ? (project(schema, record) as Json) : record);
      }
    }
    if (bad.first) {
      await this.log('WARN', `${bad.count} cells of export ${job.id} did not read as their column's type and are null (the first: ${bad.first.column} = ${JSON.stringify(bad.first.value)}).`);
    }
    await this.log('INFO', `export of ${span(window)}: ${rows} rows in ${job.downloadUrls.length} part${job.downloadUrls.length === 1 ? '' : 's'}.`);
  }

  private dropped(): UsageCursor {
    const { pending_job: _j, pending_start: _s, pending_end: _e, pending_created: _c, ...rest } = this.cursor;
    return rest;
  }

  private async drop(): Promise<void> {
    this.cursor = this.dropped();
    await this.save(this.cursor);
  }
}

const pick = (c: UsageCursor, keys: string[]): UsageCursor => Object.fromEntries(Object.entries(c).filter(([k]) => keys.includes(k)));

import { CircleCIClient, HttpError, StoppedError } from '../circleci/client.js';
import { PROJECT_NOT_FOUND, projectNotFound, tokenAccepted, tokenRejected } from '../circleci/probes.js';
import type { Config } from '../config.js';
import { ConnectorError, asConnectorError } from '../errors.js';
import { STREAMS, TREE_ROOT, childrenOf, inTree, subtreeOf } from '../streams/index.js';
import { admitted, carriedBy, keepsSignpost, settled } from './carried.js';
import { project, type Context, type Json, type JsonSchema, type StreamDeclaration } from '../streams/stream.js';
import { timeOf } from '../time.js';
import { DAY_MS, StreamCursor, cursorValue, horizon, signpost } from './cursors.js';
import { Progress, type PipelineSlot } from './progress.js';
import { readProjectStream } from './project-reader.js';
import type { ProjectCursor, StreamState, SyncState } from './state.js';

export type SyncMode = 'full_refresh' | 'incremental';
export type StreamStatus = 'STARTED' | 'RUNNING' | 'COMPLETE' | 'INCOMPLETE';
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/** What a face asked for: the selected streams, their modes, and the schema to project onto. */
export interface Selection {
  mode: SyncMode;
  schema?: JsonSchema;
}

/** Where the engine's output goes; the Airbyte and Singer faces translate it. */
export interface SyncSink {
  record(stream: string, data: Json): void | Promise<void>;
  /** The stream's whole state, after every record it covers; `recordCount` since its previous checkpoint. */
  checkpoint(stream: string, state: StreamState, recordCount: number): void | Promise<void>;
  /** A round of checkpoints is complete (a face that writes one state for every stream writes it now). */
  checkpointed?(): void | Promise<void>;
  log(level: LogLevel, message: string): void | Promise<void>;
  status(stream: string, status: StreamStatus): void | Promise<void>;
  /** The token is rate limited: every request waits until `untilMs` (epoch ms). */
  rateLimited?(untilMs: number): void | Promise<void>;
}

export interface CrawlOptions {
  config: Config;
  client: CircleCIClient;
  selection: Map<string, Selection>;
  state: SyncState;
  sink: SyncSink;
  /** Stops the crawl early (Singer --test, shutdown): no new requests; unfinished projects keep a resume marker. */
  signal?: AbortSignal;
  /** Checkpoint an unfinished project after this many more synced pipelines (default 100). */
  checkpointEvery?: number;
  /** Projects found by discovery: one that has gone since (404) is a WARN, not a failed sync. */
  discovered?: ReadonlySet<string>;
}

const INF = Number.POSITIVE_INFINITY;
/** The longest a read goes without writing progress it has saved (see `crawl`). */
const ROUND_MS = 5 * 60_000;
const iso = (t: number) => new Date(t).toISOString();
/** CircleCI's shortest data retention (Free plan): below older pipelines, a 404 means expired. */
const RETENTION_MS = 90 * DAY_MS;
const ageOf = (ms: number) => (ms >= DAY_MS ? `${Math.floor(ms / DAY_MS)} days` : `${Math.max(1, Math.round(ms / 3_600_000))} hours`);

/** One selected stream in one project: its declaration, what to project onto, its cursor arithmetic. */
interface Plan {
  stream: StreamDeclaration;
  schema: JsonSchema;
  cursor: StreamCursor;
}

/**
 * Walks each project once for every selected stream: its own object (projects), then the pipeline
 * list (newest first) down to the scan floor, and below each pipeline its workflows, their jobs
 * and the jobs' details and test results, concurrently under the client's global limit. A project's cursors are checkpointed once all of its records are out;
 * while it runs, resume markers record the pipelines already completed.
 *
 * Checkpoints are paced: every stream's STATE holds every project, so writing it whenever a
 * project finishes would make one read's STATE grow with the square of the projects. The state
 * is written when a tenth of the projects have saved progress since the last write, or
 * ROUND_MS has passed, and always at the end (or the stop) of the read.
 */
export async function crawl(opts: CrawlOptions): Promise<void> {
  const { config, sink, selection } = opts;
  const state: SyncState = structuredClone(opts.state);
  const selected = STREAMS.filter((s) => selection.has(s.name));
  const counts = new Map(selected.map((s) => [s.name, 0]));
  const lastCheckpoint = new Map<string, string>();
  const running = new Set<string>();

  const emit = async (stream: string, data: Json) => {
    if (!running.has(stream)) {
      running.add(stream);
      await sink.status(stream, 'RUNNING');
    }
    counts.set(stream, (counts.get(stream) ?? 0) + 1);
    await sink.record(stream, data);
  };
  const checkpoint = async (stream: string) => {
    const value = state[stream] ?? {};
    const text = JSON.stringify(value);
    // Identical consecutive states with nothing between them break the platform's record-count checksum.
    if (lastCheckpoint.get(stream) === text && counts.get(stream) === 0) return;
    lastCheckpoint.set(stream, text);
    await sink.checkpoint(stream, value, counts.get(stream) ?? 0);
    counts.set(stream, 0);
  };
  const every = Math.max(1, Math.ceil(config.projectSlugs.length / 10));
  const changed = new Set<string>();
  let saves = 0;
  let lastRound = Date.now();
  /** Writes the streams whose state changed, if the progress or the time since the last round justifies it. */
  const round = async (force: boolean) => {
    if (!changed.size || (!force && saves < every && Date.now() - lastRound < ROUND_MS)) return;
    saves = 0;
    lastRound = Date.now();
    for (const stream of [...changed]) {
      changed.delete(stream);
      await checkpoint(stream);
    }
    await sink.checkpointed?.();
  };
  /** Puts a project's cursors (final, or with a resume marker) into the state; written by the next round. */
  const save = async (slug: string, cursors: Map<string, ProjectCursor | undefined>) => {
    for (const [stream, cursor] of cursors) {
      const streamState = (state[stream] ??= {});
      if (cursor) streamState[slug] = cursor;
      else delete streamState[slug];
      changed.add(stream);
    }
    saves++;
    await round(false);
  };

  for (const s of selected) await sink.status(s.name, 'STARTED');
  const failures: ConnectorError[] = [];
  const syncProject = async (slug: string) => {
    const crawler = new ProjectCrawl(slug, opts, emit, (c) => save(slug, c));
    try {
      await crawler.run();
      await save(slug, crawler.cursors(false));
    } catch (e) {
      if (opts.discovered?.has(slug) && e instanceof ConnectorError && e.internal === PROJECT_NOT_FOUND) {
        await sink.log('WARN', `${slug}: discovered, but gone by the time it was read (404); skipped, its state is kept.`);
        return;
      }
      if (!(e instanceof StoppedError)) failures.push(asConnectorError(e));
      // What completed before a failure or a stop is kept, so the next sync resumes after it.
      if (crawler.resumable) await save(slug, crawler.cursors(true));
    }
  };
  // A bounded number of projects at once, the next starting as one ends: memory stays flat with
  // hundreds of projects, and there is still enough work to keep every request slot busy.
  const queue = [...config.projectSlugs];
  const workers = Math.min(queue.length, Math.max(8, config.maxConcurrency * 2));
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let slug = queue.shift(); slug !== undefined && !opts.signal?.aborted; slug = queue.shift()) await syncProject(slug);
    }),
  );
  // What was saved and not yet written goes out now, whether the read ends or stops.
  await round(true);
  if (opts.signal?.aborted) return;
  for (const s of selected) await checkpoint(s.name);
  await sink.checkpointed?.();
  for (const s of selected) await sink.status(s.name, failures.length ? 'INCOMPLETE' : 'COMPLETE');
  if (failures.length) {
    if (failures.length > 1) await sink.log('ERROR', `${failures.length} projects failed: ${failures.map((f) => f.message).join(' | ')}`);
    throw failures[0];
  }
}

class ProjectCrawl {
  private readonly plans = new Map<string, Plan>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly progress: Progress;
  private failure: unknown;
  private pipelinesScanned = 0;
  private pipelinesResumed = 0;
  private pages = 0;
  private expired = 0;
  /** 404s on data that should exist, asked again by the next sync. */
  private missed = 0;
  /** Child requests not made: an earlier sync read what they answer in its final form. */
  private settled = 0;
  private lastSaved = 0;
  private readonly emitted = new Map<string, number>();
  /** Streams outside the walk (Insights) read to the end: their cursors may move. */
  private readonly readWhole = new Set<string>();
  private readonly scanFloor: number;
  private readonly maxTasks: number;
  private readonly start: number;
  private readonly lookback: number;
  private readonly every: number;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly slug: string,
    private readonly opts: CrawlOptions,
    private readonly emitRecord: (stream: string, data: Json) => Promise<void>,
    private readonly saveCursors: (cursors: Map<string, ProjectCursor | undefined>) => Promise<void>,
  ) {
    const { config } = opts;
    this.lookback = config.lookbackDays * DAY_MS;
    this.start = config.startDate.getTime();
    this.every = opts.checkpointEvery ?? 100;
    for (const stream of STREAMS) {
      const sel = opts.selection.get(stream.name);
      if (!sel) continue;
      const settings = {
        field: stream.cursorField,
        incremental: sel.mode === 'incremental',
        startDate: this.start,
        lookbackMs: this.lookback,
        keepSignpost: keepsSignpost(stream),
      };
      const cursor = new StreamCursor(settings, opts.state[stream.name]?.[this.slug]);
      this.plans.set(stream.name, { stream, schema: sel.schema ?? stream.schema, cursor });
    }
    this.scanFloor = this.subtreeFloor(TREE_ROOT);
    // Enough pipelines in flight to keep every request slot busy, few enough to keep memory flat.
    this.maxTasks = Math.max(8, config.maxConcurrency * 4);
    this.progress = new Progress(() => this.onProgress());
  }

  /** The sync's start as CircleCI's clock saw it (this machine's, before any answer). */
  private syncStart(): number {
    return this.opts.client.firstAnswerAt ?? Date.now();
  }

  /** Whether a resume marker can be written: the synced run reaches the old marker, if any. */
  get resumable(): boolean {
    const { top, through } = this.progress;
    if (top === undefined || through === undefined) return false;
    return [...this.plans.values()].every((p) => p.cursor.canMark(through));
  }

  /** The oldest pipeline any selected stream at or below `stream` needs. */
  private subtreeFloor(stream: StreamDeclaration): number {
    const own = this.plans.get(stream.name)?.cursor.floor ?? INF;
    return Math.min(own, ...childrenOf(stream.name).map((c) => this.subtreeFloor(c)));
  }

  /** Whether this stream still needs this pipeline (an interrupted sync may have done it). */
  private needs(plan: Plan | undefined, slot: PipelineSlot): boolean {
    return !!plan && !plan.cursor.done(slot.number);
  }

  private subtreeNeeds(stream: StreamDeclaration, slot: PipelineSlot, time: number): boolean {
    const plan = this.plans.get(stream.name);
    if (plan && time >= plan.cursor.floor && this.needs(plan, slot)) return true;
    return childrenOf(stream.name).some((c) => this.subtreeNeeds(c, slot, time));
  }

  async run(): Promise<void> {
    const started = Date.now();
    try {
      // Streams of the project itself (projects: one object; Insights: see readOwn), then the tree,
      // if anything in it is selected.
      for (const s of STREAMS.filter((s) => !inTree(s) && this.plans.has(s.name))) {
        const plan = this.plans.get(s.name)!;
        if (s.readProject) await this.readOwn(plan);
        else await this.emit(plan, (await this.opts.client.get(s.path({ project: this.slug }))) as Json);
      }
      if (subtreeOf(TREE_ROOT).some((s) => this.plans.has(s.name))) await this.visitList(TREE_ROOT, { project: this.slug });
    } catch (e) {
      this.failure ??= e;
    }
    // Let what is in flight end (children stop at their next page once a failure is set).
    while (this.tasks.size) await Promise.all([...this.tasks]);
    await this.saving;
    if (this.opts.signal?.aborted) throw new StoppedError();
    if (this.failure) throw this.failure instanceof StoppedError ? this.failure : await this.explainRootFailure(this.failure);
    const emitted = [...this.emitted].map(([s, n]) => `${n} ${s}`).join(', ') || 'no records';
    await this.opts.sink.log(
      'INFO',
      `${this.slug}: scanned ${this.pipelinesScanned} pipelines` +
        `${Number.isFinite(this.scanFloor) ? ` back to ${iso(Math.max(this.scanFloor, 0))}` : ''} in ${this.pages} pages` +
        `${this.pipelinesResumed ? ` (${this.pipelinesResumed} already synced by an interrupted sync)` : ''}, ` +
        `emitted ${emitted}${this.expired ? `, skipped ${this.expired} expired lists (404)` : ''}` +
        `${this.missed ? `, ${this.missed} lists answered 404 and are asked again next sync` : ''}` +
        `${this.settled ? `, did not ask again for ${this.settled} job details or test results an earlier sync read final` : ''}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }

  /**
   * The project's cursors. Final: past what was emitted, held at what may still change, never
   * past the signpost. Partial: the cursor this sync started from, plus a resume marker.
   */
  cursors(partial: boolean): Map<string, ProjectCursor | undefined> {
    const sign = signpost(this.syncStart());
    const { top, through } = this.progress;
    const out = new Map<string, ProjectCursor | undefined>();
    for (const { stream, cursor } of this.plans.values()) {
      if (!inTree(stream)) {
        // Outside the walk: an Insights cursor moves once its stream was read to the end, else it
        // stays as the state had it; projects keeps none.
        const kept = this.opts.state[stream.name]?.[this.slug];
        out.set(stream.name, !stream.readProject ? undefined : this.readWhole.has(stream.name) ? cursor.final(sign) : kept);
      } else out.set(stream.name, partial ? cursor.partial(sign, { top: top!, through: through! }) : cursor.final(sign));
    }
    return out;
  }

  /** A stream of the project outside the pipeline walk (Insights): see project-reader.ts. */
  private async readOwn(plan: Plan): Promise<void> {
    const whole = await readProjectStream({
      stream: plan.stream,
      cursor: plan.cursor,
      incremental: this.opts.selection.get(plan.stream.name)?.mode === 'incremental',
      project: this.slug,
      client: this.opts.client,
      startDate: this.start,
      horizon: horizon(this.syncStart(), this.lookback),
      signal: this.opts.signal,
      emit: (record) => this.emit(plan, record),
      warn: async (message) => {
        await this.opts.sink.log('WARN', message);
      },
    });
    if (whole) this.readWhole.add(plan.stream.name);
  }

  /** Every `checkpointEvery` synced pipelines, record how far this project got. */
  private onProgress(): void {
    if (this.progress.finished - this.lastSaved < this.every || !this.resumable) return;
    this.lastSaved = this.progress.finished;
    const cursors = this.cursors(true);
    // The chain is awaited only when the project ends: a failed checkpoint must fail the project
    // now (like a failed request), not linger as an unhandled rejection.
    this.saving = this.saving.then(() => this.saveCursors(cursors)).catch((e) => {
      this.failure ??= e;
    });
  }

  private async visitList(stream: StreamDeclaration, ctx: Context, slot?: PipelineSlot, pipelineTime?: number): Promise<void> {
    const isRoot = !stream.parent;
    try {
      // The pipeline list goes first (priority 0) so work never runs dry; then the children of the
      // pipelines listed earliest, so the completed run (and with it the checkpoints) keeps up.
      const list = new Map<string, number>();
      for await (const items of this.batches(stream, ctx, slot?.seq ?? 0, pipelineTime)) {
        this.pages++;
        if (this.opts.signal?.aborted) throw new StoppedError();
        if (this.failure && !isRoot) return;
        for (const raw of items) {
          if (this.opts.signal?.aborted) throw new StoppedError();
          if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) continue;
          const item = stream.decorate ? stream.decorate(raw as Json, ctx, list) : (raw as Json);
          if (isRoot) {
            const time = timeOf(item.created_at);
            // Newest first: the first pipeline below the floor ends the scan.
            if (time < this.scanFloor) return;
            this.pipelinesScanned++;
            const own = this.progress.add(typeof item.number === 'number' ? item.number : undefined);
            if ([...this.plans.values()].every((p) => !this.needs(p, own))) this.pipelinesResumed++;
            await this.visit(stream, item, ctx, own, time);
            own.visited = true;
            this.progress.settle(own);
          } else {
            await this.visit(stream, item, ctx, slot!, pipelineTime!);
          }
        }
        if (isRoot) await this.backpressure();
      }
    } catch (e) {
      if (e instanceof StoppedError) throw e;
      if (!isRoot && e instanceof HttpError && e.status === 404) return this.notFound(stream, ctx, pipelineTime!, e);
      throw e;
    }
  }

  /**
   * A child answered 404 (after the retries `batches` asked for). Below a pipeline older than the
   * shortest retention, the data has expired: skipped. Younger, it should exist: it is followed
   * like unfinished work (the next sync asks again) while that lasts, and skipped after.
   */
  private async notFound(stream: StreamDeclaration, ctx: Context, pipelineTime: number, e: HttpError): Promise<void> {
    const now = this.syncStart();
    if (pipelineTime >= now - RETENTION_MS) {
      const value = Number.isFinite(timeOf(ctx.workflow?.created_at)) ? timeOf(ctx.workflow?.created_at) : pipelineTime;
      const request = stream.path(ctx);
      let followed = false;
      for (const s of subtreeOf(stream)) {
        const plan = this.plans.get(s.name);
        if (plan && plan.cursor.missed(value, pipelineTime, horizon(now, this.lookback), s === stream ? request : undefined)) followed = true;
      }
      if (followed) {
        this.missed++;
        await this.opts.sink.log('WARN', `${this.slug}: GET ${e.endpoint} answered 404 for data that should exist (its pipeline is ${ageOf(now - pipelineTime)} old); the next sync asks again.`);
        return;
      }
    }
    this.expired++;
    await this.opts.sink.log('WARN', `${this.slug}: skipped GET ${e.endpoint}: 404, the data has expired or is not accessible.`);
  }

  /**
   * A list's pages, or the one object a single-object endpoint answers. Below a pipeline younger
   * than the shortest retention the data should exist, so a 404 there is asked again (CircleCI
   * answers some during incidents).
   */
  private async *batches(stream: StreamDeclaration, ctx: Context, priority: number, pipelineTime = INF): AsyncGenerator<unknown[]> {
    const opts = { mustExist: pipelineTime >= this.syncStart() - RETENTION_MS };
    if (stream.single) yield [await this.opts.client.get(stream.path(ctx), {}, priority, opts)];
    else yield* this.opts.client.pages(stream.path(ctx), {}, priority, opts);
  }

  private async visit(stream: StreamDeclaration, item: Json, ctx: Context, slot: PipelineSlot, pipelineTime: number): Promise<void> {
    const plan = this.plans.get(stream.name);
    if (plan && pipelineTime >= this.start && this.needs(plan, slot)) {
      // A child that carries its parent's cursor was admitted with that parent.
      const wanted = stream.cursorFromParent ? !!ctx.admitted?.has(stream.name) : this.accept(plan, stream, item, pipelineTime);
      if (wanted && (stream.keep?.(item, ctx) ?? true)) await this.emit(plan, item);
    }
    // A copy: what is decided below this record (admitted) must not leak to its siblings.
    const childCtx: Context = stream.contextKey ? { ...ctx, [stream.contextKey]: item } : { ...ctx };
    const carried = stream.cursorFromParent ? [] : carriedBy(stream);
    if (carried.length) {
      const owner = { value: this.cursorOf(stream, item), mayChange: stream.mayChange?.(item) ?? false, pipelineTime, pipelineNumber: slot.number };
      const hz = horizon(this.syncStart(), this.lookback);
      childCtx.admitted = new Set(carried.filter((c) => this.plans.has(c.name) && admitted(this.plans.get(c.name)!.cursor, owner, hz)).map((c) => c.name));
    }
    for (const child of childrenOf(stream.name)) {
      if (!this.subtreeNeeds(child, slot, pipelineTime)) continue;
      if (child.cursorFromParent && !subtreeOf(child).some((s) => childCtx.admitted?.has(s.name))) continue;
      if (!this.worthAsking(child, childCtx)) continue;
      this.spawn(slot, () => this.visitList(child, childCtx, slot, pipelineTime));
    }
  }

  /** A child that has nothing for this parent, or whose records here an earlier sync read final, costs no request. */
  private worthAsking(child: StreamDeclaration, ctx: Context): boolean {
    if (child.wants && !child.wants(ctx)) return false;
    const plan = this.plans.get(child.name);
    if (!plan || !settled(child, plan.cursor, ctx)) return true;
    this.settled++;
    return false;
  }

  /** A record's cursor, as its stream's cursor arithmetic sees it: true when it is to be emitted. */
  private accept(plan: Plan, decl: StreamDeclaration, item: Json, pipelineTime: number): boolean {
    const mayChange = decl.mayChange?.(item) ?? false;
    return plan.cursor.accept(this.cursorOf(decl, item), pipelineTime, mayChange, horizon(this.syncStart(), this.lookback));
  }

  private cursorOf(decl: StreamDeclaration, item: Json): number {
    return decl.cursorField ? cursorValue(item, decl.cursorField) : 0;
  }

  private async emit(plan: Plan, item: Json): Promise<void> {
    this.emitted.set(plan.stream.name, (this.emitted.get(plan.stream.name) ?? 0) + 1);
    await this.emitRecord(plan.stream.name, project(plan.schema, item) as Json);
  }

  private spawn(slot: PipelineSlot, task: () => Promise<void>): void {
    // Stopped before this child list was asked for: its pipeline must not be claimed as synced.
    if (this.opts.signal?.aborted) {
      slot.incomplete = true;
      return;
    }
    slot.pending++;
    const p: Promise<void> = task()
      .catch((e) => {
        this.failure ??= e;
      })
      .finally(() => {
        this.tasks.delete(p);
        slot.pending--;
        // A pipeline whose children failed is not complete: it must not be claimed as synced.
        if (!this.failure) this.progress.settle(slot);
      });
    this.tasks.add(p);
  }

  /** Holds the pipeline pager while enough child work is queued, and stops it on a failure. */
  private async backpressure(): Promise<void> {
    while (this.tasks.size >= this.maxTasks && !this.failure) await Promise.race(this.tasks);
    if (this.failure) throw this.failure;
  }

  /** A 404 on the pipeline list: a wrong slug, no access, or a rejected token (CircleCI answers 404 for all three). */
  private async explainRootFailure(e: unknown): Promise<unknown> {
    if (!(e instanceof HttpError) || (e.status !== 404 && e.status !== 401 && e.status !== 403)) return e;
    if (this.pages > 0) return e; // a later page: a stale page token, not a missing project
    if (e.status === 401 || !(await tokenAccepted(this.opts.client))) return tokenRejected();
    return projectNotFound(this.slug);
  }
}

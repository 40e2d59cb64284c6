import { CircleCIClient, HttpError, slugPath } from '../circleci/client.js';
import type { Config } from '../config.js';
import { configError, type ConnectorError, asConnectorError } from '../errors.js';
import { STREAMS, childrenOf } from '../streams/index.js';
import { project, type Context, type Json, type JsonSchema, type StreamDeclaration } from '../streams/stream.js';
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
  log(level: LogLevel, message: string): void | Promise<void>;
  status(stream: string, status: StreamStatus): void | Promise<void>;
}

export interface CrawlOptions {
  config: Config;
  client: CircleCIClient;
  selection: Map<string, Selection>;
  state: SyncState;
  sink: SyncSink;
  now?: Date;
  /** Stops the crawl early (Singer --test, shutdown): no new requests, no checkpoint for unfinished projects. */
  signal?: AbortSignal;
}

class Stopped extends Error {}

const DAY_MS = 86_400_000;

/** Epoch ms of an API timestamp; a missing or odd one sorts as "now or later", so it is never dropped. */
const timeOf = (v: unknown): number => {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
};
const iso = (t: number) => new Date(t).toISOString();

interface Plan {
  stream: StreamDeclaration;
  mode: SyncMode;
  schema: JsonSchema;
  /** Emit records whose cursor is at or after this (incremental). */
  threshold: number;
  /** Pipelines created before this are not needed by this stream. */
  floor: number;
  /** What was emitted, for the next cursor. */
  maxCursor?: number;
  oldestOpen?: number;
  oldestOpenPipeline?: number;
}

/**
 * Walks each project once for every selected stream: the pipeline list (newest first) down to the
 * scan floor, and below each pipeline its workflows and their jobs, concurrently under the
 * client's global limit. Checkpoints a project's cursors once all of its records are out.
 */
export async function crawl(opts: CrawlOptions): Promise<void> {
  const { config, sink, selection } = opts;
  const now = (opts.now ?? new Date()).getTime();
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

  for (const s of selected) await sink.status(s.name, 'STARTED');
  const failures: ConnectorError[] = [];
  await Promise.all(
    config.projectSlugs.map(async (slug) => {
      try {
        const crawler = new ProjectCrawl(slug, opts, state, now, emit);
        await crawler.run();
        for (const plan of crawler.plans.values()) {
          const cursor = crawler.nextCursor(plan);
          const streamState = (state[plan.stream.name] ??= {});
          if (cursor) streamState[slug] = cursor;
          else delete streamState[slug];
          await checkpoint(plan.stream.name);
        }
      } catch (e) {
        if (!(e instanceof Stopped)) failures.push(asConnectorError(e));
      }
    }),
  );
  if (opts.signal?.aborted) return;
  for (const s of selected) await checkpoint(s.name);
  for (const s of selected) await sink.status(s.name, failures.length ? 'INCOMPLETE' : 'COMPLETE');
  if (failures.length) {
    if (failures.length > 1) await sink.log('ERROR', `${failures.length} projects failed: ${failures.map((f) => f.message).join(' | ')}`);
    throw failures[0];
  }
}

class ProjectCrawl {
  readonly plans = new Map<string, Plan>();
  private readonly tasks = new Set<Promise<void>>();
  private failure: unknown;
  private pipelinesScanned = 0;
  private pages = 0;
  private expired = 0;
  private readonly emitted = new Map<string, number>();
  private readonly scanFloor: number;
  private readonly maxTasks: number;

  constructor(
    private readonly slug: string,
    private readonly opts: CrawlOptions,
    state: SyncState,
    private readonly now: number,
    private readonly emit: (stream: string, data: Json) => Promise<void>,
  ) {
    const { config } = opts;
    const start = config.startDate.getTime();
    for (const stream of STREAMS) {
      const sel = opts.selection.get(stream.name);
      if (!sel) continue;
      const prev = state[stream.name]?.[slug];
      const incremental = sel.mode === 'incremental' && !!stream.cursorField;
      const cursor = stream.cursorField && prev?.[stream.cursorField] ? Date.parse(prev[stream.cursorField]) : undefined;
      const threshold = incremental ? Math.max(start, cursor ?? start) : Number.NEGATIVE_INFINITY;
      const rescanFrom = prev?.rescan_from ? Date.parse(prev.rescan_from) : Number.POSITIVE_INFINITY;
      const floor = incremental ? Math.max(start, Math.min(threshold - config.lookbackDays * DAY_MS, rescanFrom)) : start;
      this.plans.set(stream.name, { stream, mode: sel.mode, schema: sel.schema ?? stream.schema, threshold, floor });
    }
    this.scanFloor = this.subtreeFloor(STREAMS[0]);
    // Enough pipelines in flight to keep every request slot busy, few enough to keep memory flat.
    this.maxTasks = Math.max(8, config.maxConcurrency * 4);
  }

  /** The oldest pipeline any selected stream at or below `stream` needs. */
  private subtreeFloor(stream: StreamDeclaration): number {
    const own = this.plans.get(stream.name)?.floor ?? Number.POSITIVE_INFINITY;
    return Math.min(own, ...childrenOf(stream.name).map((c) => this.subtreeFloor(c)));
  }

  async run(): Promise<void> {
    const started = Date.now();
    const root = STREAMS[0];
    try {
      await this.visitList(root, { project: this.slug });
    } catch (e) {
      throw e instanceof Stopped ? e : await this.explainRootFailure(e);
    }
    while (this.tasks.size) await Promise.all([...this.tasks]);
    if (this.opts.signal?.aborted) throw new Stopped();
    if (this.failure) throw this.failure;
    const emitted = [...this.emitted].map(([s, n]) => `${n} ${s}`).join(', ') || 'no records';
    await this.opts.sink.log(
      'INFO',
      `${this.slug}: scanned ${this.pipelinesScanned} pipelines back to ${iso(Math.max(this.scanFloor, 0))} in ${this.pages} pages, ` +
        `emitted ${emitted}${this.expired ? `, skipped ${this.expired} expired lists (404)` : ''}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }

  /** The project's next cursor in a stream: past what was emitted, held at what may still change. */
  nextCursor(plan: Plan): ProjectCursor | undefined {
    const field = plan.stream.cursorField;
    if (!field) return undefined;
    const prev = this.opts.state[plan.stream.name]?.[this.slug]?.[field];
    const prevT = prev ? Date.parse(prev) : Number.NEGATIVE_INFINITY;
    const reached = Math.min(plan.maxCursor ?? prevT, plan.oldestOpen ?? Number.POSITIVE_INFINITY);
    const next = Math.max(prevT, reached);
    if (!Number.isFinite(next)) return undefined;
    const cursor: ProjectCursor = { [field]: iso(next) };
    if (plan.oldestOpenPipeline !== undefined && Number.isFinite(plan.oldestOpenPipeline)) cursor.rescan_from = iso(plan.oldestOpenPipeline);
    return cursor;
  }

  private async visitList(stream: StreamDeclaration, ctx: Context, pipelineTime?: number): Promise<void> {
    const isRoot = !stream.parent;
    try {
      for await (const items of this.opts.client.pages(stream.path(ctx))) {
        this.pages++;
        for (const raw of items) {
          if (this.opts.signal?.aborted) throw new Stopped();
          if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) continue;
          const item = stream.decorate ? stream.decorate(raw as Json, ctx) : (raw as Json);
          const time = pipelineTime ?? timeOf(item.created_at);
          // Newest first: the first pipeline below the floor ends the scan.
          if (isRoot && time < this.scanFloor) return;
          if (isRoot) this.pipelinesScanned++;
          await this.visit(stream, item, ctx, time);
        }
        if (isRoot) await this.backpressure();
      }
    } catch (e) {
      if (e instanceof Stopped) throw e;
      // Retention: an old pipeline can still be listed while its children are gone.
      if (!isRoot && e instanceof HttpError && e.status === 404) {
        this.expired++;
        await this.opts.sink.log('WARN', `${this.slug}: skipped GET ${e.endpoint}: 404, the data has expired or is not accessible.`);
        return;
      }
      throw e;
    }
  }

  private async visit(stream: StreamDeclaration, item: Json, ctx: Context, pipelineTime: number): Promise<void> {
    const plan = this.plans.get(stream.name);
    if (plan && pipelineTime >= this.opts.config.startDate.getTime()) {
      const field = plan.stream.cursorField;
      // A pipeline without updated_at counts from its created_at.
      const value = field ? (Number.isFinite(timeOf(item[field])) ? timeOf(item[field]) : timeOf(item.created_at)) : 0;
      if (value >= plan.threshold) {
        if (Number.isFinite(value)) plan.maxCursor = Math.max(plan.maxCursor ?? value, value);
        if (stream.mayChange?.(item) && value >= this.now - this.opts.config.lookbackDays * DAY_MS) {
          plan.oldestOpen = Math.min(plan.oldestOpen ?? value, value);
          plan.oldestOpenPipeline = Math.min(plan.oldestOpenPipeline ?? pipelineTime, pipelineTime);
        }
        this.emitted.set(stream.name, (this.emitted.get(stream.name) ?? 0) + 1);
        await this.emit(stream.name, project(plan.schema, item) as Json);
      }
    }
    const childCtx = stream.contextKey ? { ...ctx, [stream.contextKey]: item } : ctx;
    for (const child of childrenOf(stream.name)) {
      if (pipelineTime >= this.subtreeFloor(child)) this.spawn(() => this.visitList(child, childCtx, pipelineTime));
    }
  }

  private spawn(task: () => Promise<void>): void {
    const p: Promise<void> = task()
      .catch((e) => {
        this.failure ??= e;
      })
      .finally(() => this.tasks.delete(p));
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

export const tokenRejected = () =>
  configError('CircleCI rejected the token (401 on GET /me). Create a personal API token in CircleCI (User Settings → Personal API Tokens) and put it in "token"; project tokens do not work with API v2.');

export const projectNotFound = (slug: string) =>
  configError(`Project "${slug}" was not found, or this token cannot access it (404 on GET /project/${slug}). Check the slug in "project_slugs" (copy it from the project settings in CircleCI) and that the token's user follows the project.`);

/** GET /me: false when the token is rejected. */
export async function tokenAccepted(client: CircleCIClient): Promise<boolean> {
  try {
    await client.get('/me');
    return true;
  } catch (e) {
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) return false;
    throw e;
  }
}

/** GET /project/{slug}: the check command's probe. */
export async function projectExists(client: CircleCIClient, slug: string): Promise<boolean> {
  try {
    await client.get(`/project/${slugPath(slug)}`);
    return true;
  } catch (e) {
    if (e instanceof HttpError && (e.status === 404 || e.status === 403)) return false;
    throw e;
  }
}

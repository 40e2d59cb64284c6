import type { ProjectCursor, ResumeMarker } from './state.js';

/**
 * The arithmetic of incremental sync for one stream in one project: which records to emit, how far
 * back to scan, and which cursor to save. Pure: no I/O and no clock of its own; the crawler tells
 * it what it saw and when the sync started (as CircleCI's clock saw it).
 *
 * Rules (the tests in test/unit-cursors.test.ts hold the module to them):
 * - Emit a record whose cursor value is at or after the saved cursor (the threshold).
 * - Scan pipelines back to the older of (latest emitted − lookback, the pipeline of the oldest
 *   record that may still change), never before start_date. The lookback is counted once.
 * - The next cursor never passes: what was emitted; the oldest record that may still change
 *   (inside the lookback horizon), so its final state is read again; and the signpost, the
 *   sync's start minus a margin, so what changed while the sync ran is read again next time.
 * - A resumed sync did not read again the pipelines its marker names: its cursor stays at or
 *   below what the interrupted sync could vouch for (its own signpost).
 */

export const DAY_MS = 86_400_000;
/**
 * How far before the sync's start a saved cursor stays: clock skew between CircleCI's servers and
 * the lag before a new record shows in a list. Costs the records changed in that window, read twice.
 */
export const SIGNPOST_MARGIN_MS = 5 * 60_000;

const INF = Number.POSITIVE_INFINITY;

/** Epoch ms of an API timestamp; a missing or odd one sorts as "now or later", so it is never dropped. */
export const timeOf = (v: unknown): number => {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? INF : t;
};

/** A record's cursor value; a record without one (a pipeline without updated_at) counts from its created_at. */
export const cursorValue = (record: Record<string, unknown>, field: string): number => {
  const own = timeOf(record[field]);
  return Number.isFinite(own) ? own : timeOf(record.created_at);
};

/** The latest value a cursor may take in a sync that started at `syncStart` (epoch ms, CircleCI's clock). */
export const signpost = (syncStart: number): number => syncStart - SIGNPOST_MARGIN_MS;

const iso = (t: number) => new Date(t).toISOString();
const isoIfFinite = (t: number | undefined) => (t !== undefined && Number.isFinite(t) ? iso(t) : undefined);
const timeIn = (v: string | ResumeMarker | undefined) => (typeof v === 'string' ? Date.parse(v) : undefined);
const minOf = (a: number | undefined, b: number) => (a === undefined ? b : Math.min(a, b));

export interface CursorSettings {
  /** The record field the cursor follows; none: full refresh only. */
  field?: string;
  incremental: boolean;
  /** start_date, epoch ms. */
  startDate: number;
  lookbackMs: number;
}

/** Which pipelines an interrupted sync completed; `through` is the oldest, `top` the newest. */
export interface Completed {
  top: number;
  through: number;
}

export class StreamCursor {
  /** Emit records whose cursor value is at or after this. */
  readonly threshold: number;
  /** Pipelines created before this are not needed by this stream. */
  readonly floor: number;
  /** Pipelines an interrupted sync already completed for this stream. */
  readonly skip?: ResumeMarker;
  /** The cursor the state held when this sync started. */
  private readonly previous?: number;
  /** The latest value emitted by earlier syncs (above `previous` while a hold is on). */
  private readonly latestBefore?: number;
  /** A resumed sync: the interrupted one's bound; this sync's cursor goes no further. */
  private readonly cap?: number;
  private max?: number;
  private oldestOpen?: number;
  private oldestOpenPipeline?: number;

  constructor(
    private readonly settings: CursorSettings,
    private readonly saved: ProjectCursor | undefined,
  ) {
    const { field, startDate, lookbackMs } = settings;
    const incremental = settings.incremental && !!field;
    this.previous = field ? timeIn(saved?.[field]) : undefined;
    this.latestBefore = timeIn(saved?.latest) ?? this.previous;
    this.threshold = incremental ? Math.max(startDate, this.previous ?? startDate) : Number.NEGATIVE_INFINITY;
    const rescanFrom = timeIn(saved?.rescan_from) ?? INF;
    this.floor = incremental ? Math.max(startDate, Math.min((this.latestBefore ?? startDate) - lookbackMs, rescanFrom)) : startDate;
    const skip = saved?.resume;
    this.skip = skip;
    if (skip && field) {
      // What the interrupted sync had already emitted still counts towards the next cursor.
      this.max = timeIn(skip.max);
      this.oldestOpen = timeIn(skip.open);
      this.oldestOpenPipeline = timeIn(skip.open_pipeline);
      // A marker without a bound (an older version's) vouches for no more than the saved cursor.
      this.cap = timeIn(skip.cap ?? skip.max) ?? this.previous ?? Number.NEGATIVE_INFINITY;
    }
  }

  /** Whether an interrupted sync already completed this pipeline (by number) for this stream. */
  done(pipelineNumber: number | undefined): boolean {
    const s = this.skip;
    return !!s && pipelineNumber !== undefined && pipelineNumber >= s.from && pipelineNumber <= s.to;
  }

  /**
   * A record of this stream was read. True when it is to be emitted. `pipelineTime` is its
   * pipeline's created_at; `horizon` the oldest time whose changes the lookback still covers.
   */
  accept(value: number, pipelineTime: number, mayChange: boolean, horizon: number): boolean {
    if (value < this.threshold) return false;
    if (Number.isFinite(value)) this.max = Math.max(this.max ?? value, value);
    if (mayChange && value >= horizon) {
      this.oldestOpen = minOf(this.oldestOpen, value);
      this.oldestOpenPipeline = minOf(this.oldestOpenPipeline, pipelineTime);
    }
    return true;
  }

  /** A resume marker may be written only if the synced run reaches the old marker, if any. */
  canMark(through: number): boolean {
    return !this.skip || through <= this.skip.to;
  }

  /** How far an interrupted sync can vouch for: its signpost, or the bound of the sync it resumed. */
  private bound(syncStartSignpost: number): number {
    return Math.min(this.cap ?? INF, syncStartSignpost);
  }

  /**
   * The cursor to save once every record of the project is out (undefined: nothing to save, the
   * entry is dropped). `sign` is this sync's signpost.
   */
  final(sign: number): ProjectCursor | undefined {
    const { field } = this.settings;
    if (!field) return undefined;
    const prev = this.previous ?? Number.NEGATIVE_INFINITY;
    const reached = Math.min(this.max ?? prev, this.bound(sign));
    const next = Math.max(prev, Math.min(reached, this.oldestOpen ?? INF));
    if (!Number.isFinite(next)) return undefined;
    const cursor: ProjectCursor = { [field]: iso(next) };
    // While a hold keeps the cursor back, the scan floor still counts from what was emitted.
    const latest = Math.max(this.latestBefore ?? prev, reached);
    if (Number.isFinite(latest) && latest > next) cursor.latest = iso(latest);
    if (this.oldestOpen !== undefined && this.oldestOpenPipeline !== undefined && Number.isFinite(this.oldestOpenPipeline)) {
      cursor.rescan_from = iso(this.oldestOpenPipeline);
    }
    return cursor;
  }

  /**
   * The cursor to save while the project is unfinished: the one this sync started from, plus a
   * marker of the pipelines completed so far and what they contributed to the next cursor.
   */
  partial(sign: number, completed: Completed): ProjectCursor {
    const { field } = this.settings;
    const resume: ResumeMarker = {
      from: Math.min(completed.through, this.skip?.from ?? INF),
      to: completed.top,
    };
    if (field) {
      const extra = {
        max: isoIfFinite(this.max),
        open: isoIfFinite(this.oldestOpen),
        open_pipeline: isoIfFinite(this.oldestOpenPipeline),
        cap: isoIfFinite(this.bound(sign)),
      };
      for (const [k, v] of Object.entries(extra)) if (v !== undefined) resume[k as keyof typeof extra] = v;
    }
    const kept: ProjectCursor = { ...this.saved };
    delete kept.resume;
    return { ...kept, resume };
  }
}

/** The oldest time whose changes a sync still looks for: `now` (CircleCI's clock) minus the lookback. */
export const horizon = (now: number, lookbackMs: number): number => now - lookbackMs;

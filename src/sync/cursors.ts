import { timeOf } from '../time.js';
import type { ProjectCursor, ResumeMarker } from './state.js';

/**
 * The arithmetic of incremental sync for one stream in one project: which records to emit, how far
 * back to scan, and which cursor to save. Pure: no I/O and no clock of its own; the crawler tells
 * it what it saw and when the sync started (as CircleCI's clock saw it).
 *
 * What a project's cursor holds (see ProjectCursor in state.ts):
 * - the cursor field (`updated_at`, `created_at`, ...): the newest value emitted, never going
 *   backwards, so every record a sync emitted is at or before it (what Airbyte's acceptance tests
 *   and a Singer bookmark expect);
 * - `signpost`: the sync's start by CircleCI's clock minus a margin, when records newer than that
 *   were emitted: what changed while the sync ran may have been missed, so the next sync emits
 *   again from here;
 * - `unfinished_from` / `rescan_from`: the oldest record that may still change (followed for
 *   the lookback or UNFINISHED_FOLLOW_MS, whichever is longer) and its pipeline, so its final
 *   state is read again; a list that answered 404 for data that should exist counts as such;
 * - `retry`: those 404 requests themselves, asked again by the next sync even where what they
 *   answer had settled before it looked.
 *
 * Rules (the tests in test/unit-cursors.test.ts hold the module to them):
 * - Emit a record whose cursor value is at or after the threshold: the oldest of the cursor,
 *   the signpost and unfinished_from.
 * - Scan pipelines back to the older of (newest emitted, no later than the signpost, − lookback)
 *   and rescan_from, never before start_date. The lookback is counted once.
 * - A resumed sync did not read again the pipelines its marker names: its signpost stays at or
 *   below the interrupted sync's.
 */

export const DAY_MS = 86_400_000;
/**
 * How far before the sync's start the signpost sits: clock skew between CircleCI's servers and the
 * lag before a new record shows in a list. Costs the records changed in that window, read twice.
 */
export const SIGNPOST_MARGIN_MS = 5 * 60_000;

const INF = Number.POSITIVE_INFINITY;

/** A record's cursor value; a record without one (a pipeline without updated_at) counts from its created_at. */
export const cursorValue = (record: Record<string, unknown>, field: string): number => {
  const own = timeOf(record[field]);
  return Number.isFinite(own) ? own : timeOf(record.created_at);
};

/** The signpost of a sync that started at `syncStart` (epoch ms, CircleCI's clock): the next one emits again from here. */
export const signpost = (syncStart: number): number => syncStart - SIGNPOST_MARGIN_MS;

const iso = (t: number) => new Date(t).toISOString();
const isoIfFinite = (t: number | undefined) => (t !== undefined && Number.isFinite(t) ? iso(t) : undefined);
const timeIn = (v: unknown) => (typeof v === 'string' ? Date.parse(v) : undefined);
const minOf = (a: number | undefined, b: number) => (a === undefined ? b : Math.min(a, b));

export interface CursorSettings {
  /** The record field the cursor follows; none: full refresh only. */
  field?: string;
  incremental: boolean;
  /** start_date, epoch ms. */
  startDate: number;
  lookbackMs: number;
  /**
   * Save the signpost after every sync that emitted, not only when it emitted past it: a stream
   * that skips what settled before the previous sync looked (job details, tests) needs to know
   * when that was. It moves no threshold (the cursor is older then).
   */
  keepSignpost?: boolean;
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
  /**
   * What settled before this was read in its final form by an earlier sync: every parent that
   * sync emitted was read after its start, and this is no later than that start.
   */
  readonly seenUntil: number;
  /** The cursor the state held when this sync started. */
  private readonly previous?: number;
  /** A resumed sync: the interrupted one's signpost; this sync's goes no later. */
  private readonly cap?: number;
  private max?: number;
  private oldestOpen?: number;
  private oldestOpenPipeline?: number;
  /** Requests the previous sync missed (404 on data that should exist): never taken as read final. */
  private readonly retrySaved: ReadonlySet<string>;
  /** Requests this sync missed, and the oldest parent below which it missed whole lists. */
  private readonly retryNow = new Set<string>();
  private unseen?: number;

  constructor(
    private readonly settings: CursorSettings,
    private readonly saved: ProjectCursor | undefined,
  ) {
    const { field, startDate, lookbackMs } = settings;
    const incremental = settings.incremental && !!field;
    this.previous = field ? timeIn(saved?.[field]) : undefined;
    // The newest value the previous sync can vouch for, and where the next one emits from.
    const newest = Math.min(this.previous ?? startDate, timeIn(saved?.signpost) ?? INF);
    const reread = Math.min(newest, timeIn(saved?.unfinished_from) ?? INF);
    this.threshold = incremental ? Math.max(startDate, reread) : Number.NEGATIVE_INFINITY;
    // The sync that saved this read everything it emitted after its signpost; without one, its
    // cursor is no later than that.
    this.seenUntil = incremental && this.previous !== undefined ? (timeIn(saved?.signpost) ?? this.previous) : Number.NEGATIVE_INFINITY;
    const rescanFrom = timeIn(saved?.rescan_from) ?? INF;
    this.floor = incremental ? Math.max(startDate, Math.min(newest - lookbackMs, rescanFrom)) : startDate;
    const skip = saved?.resume;
    this.skip = skip;
    this.retrySaved = new Set(incremental ? (saved?.retry ?? []) : []);
    for (const r of skip?.retry ?? []) this.retryNow.add(r);
    this.unseen = timeIn(skip?.unseen);
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

  /**
   * Whether an earlier sync read what this request answers in its final form (it settled at
   * `settledAt`, before that sync looked), so it need not be asked again.
   */
  readFinal(settledAt: number, request: string): boolean {
    return settledAt < this.seenUntil && !this.retrySaved.has(request);
  }

  /**
   * A request for data that should exist answered 404 even after retries. `value` is the cursor
   * value of the records it would have answered (their workflow's created_at, or their pipeline's).
   * Followed like unfinished work while `value` is inside the horizon: the next sync emits again
   * from it and asks this `request` again (below it, lists it could not see are asked again as if
   * nothing had settled: `request` undefined). False: too old to follow, it counts as gone.
   */
  missed(value: number, pipelineTime: number, horizon: number, request?: string): boolean {
    if (!(value >= horizon)) return false;
    this.oldestOpen = minOf(this.oldestOpen, value);
    this.oldestOpenPipeline = minOf(this.oldestOpenPipeline, pipelineTime);
    if (request !== undefined) this.retryNow.add(request);
    else this.unseen = minOf(this.unseen, value);
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
    const newest = Math.max(this.previous ?? Number.NEGATIVE_INFINITY, this.max ?? Number.NEGATIVE_INFINITY);
    const bound = this.bound(sign);
    // A marker of an older version without a bound, and no cursor: nothing can be vouched for.
    if (!Number.isFinite(newest) || bound === Number.NEGATIVE_INFINITY) return undefined;
    const cursor: ProjectCursor = { [field]: iso(newest) };
    // Only what this sync (or the one it resumes) emitted past its start can have been missed.
    if (this.max !== undefined && (this.max > bound || this.settings.keepSignpost)) cursor.signpost = iso(bound);
    else if (this.settings.keepSignpost && typeof this.saved?.signpost === 'string') cursor.signpost = this.saved.signpost;
    if (this.oldestOpen !== undefined && Number.isFinite(this.oldestOpen)) {
      cursor.unfinished_from = iso(this.oldestOpen);
      if (this.oldestOpenPipeline !== undefined && Number.isFinite(this.oldestOpenPipeline)) cursor.rescan_from = iso(this.oldestOpenPipeline);
    }
    // Below a missed list, what settled was not seen: the next sync asks it again from there.
    if (this.unseen !== undefined && Number.isFinite(this.unseen)) cursor.signpost = iso(Math.min(timeIn(cursor.signpost) ?? INF, this.unseen - 1));
    if (this.retryNow.size) cursor.retry = [...this.retryNow].sort();
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
        unseen: isoIfFinite(this.unseen),
      };
      for (const [k, v] of Object.entries(extra)) if (v !== undefined) resume[k as keyof typeof extra] = v;
      if (this.retryNow.size) resume.retry = [...this.retryNow].sort();
    }
    const kept: ProjectCursor = { ...this.saved };
    delete kept.resume;
    return { ...kept, resume };
  }
}

/**
 * How long a workflow that was still running, failing or on hold when read is followed (read again
 * on every sync until it finishes), whatever `lookback_days` says: the lookback bounds how far back
 * reruns are looked for, not unfinished work. Older unfinished work (an approval left on hold for
 * weeks) is not followed; a full refresh reads it. Seven days is the default lookback, so the
 * default's cost is what it was.
 */
export const UNFINISHED_FOLLOW_MS = 7 * DAY_MS;

/**
 * The oldest creation time of an unfinished record that is still followed: `now` (CircleCI's
 * clock) minus the lookback, or minus UNFINISHED_FOLLOW_MS when the lookback is shorter.
 */
export const horizon = (now: number, lookbackMs: number): number => now - Math.max(lookbackMs, UNFINISHED_FOLLOW_MS);

import type { UsageCreateLimit } from '../config.js';

/**
 * The usage stream's arithmetic, pure: which window to export next, what an export settled, and
 * when the next create is allowed. Facts (CircleCI's Usage Export API): a window is at most 31
 * days, starts at most a year back, and its data is refreshed daily through the previous full day;
 * an organization may create 10 exports an hour. Rules: docs/usage.md.
 */

export const DAY_MS = 86_400_000;
export const MAX_WINDOW_MS = 31 * DAY_MS;

export const dayStart = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
const dayCeil = (ms: number): number => Math.ceil(ms / DAY_MS) * DAY_MS;

/** The oldest start CircleCI accepts at `now`: a year back, rounded up to a whole day so it is still inside when the create arrives. */
export function oldestStart(now: number): number {
  const d = new Date(now);
  d.setUTCFullYear(d.getUTCFullYear() - 1);
  return dayCeil(d.getTime());
}

/** Where exports begin: start_date, or the oldest start CircleCI accepts if that is later. */
export const exportFloor = (startDate: number, now: number): number => Math.max(startDate, oldestStart(now));

/** An organization's progress, in epoch ms (the state's _window_end and recheck_from). */
export interface Progress {
  /** Everything before it was exported and emitted. */
  through?: number;
  /** Rows from here on were exported before CircleCI had refreshed their last day: the next window starts here. */
  recheckFrom?: number;
}

export interface Window {
  start: number;
  end: number;
}

/**
 * The next window to export, or undefined when there is nothing new: it ends at the start of the
 * current UTC day (the last full day CircleCI refreshes), is at most 31 days long, and starts where
 * the previous one left off, or earlier at `recheckFrom` to export a not yet refreshed day again.
 * Nothing new (the export already reaches today) means no create, even with a recheck due: the
 * recheck rides on the next new day's window and costs no export of its own.
 */
export function nextWindow(progress: Progress, floor: number, now: number): Window | undefined {
  const today = dayStart(now);
  if (progress.through !== undefined && progress.through >= today) return undefined;
  const start = Math.max(floor, progress.recheckFrom ?? progress.through ?? floor);
  if (start >= today) return undefined;
  return { start, end: Math.min(start + MAX_WINDOW_MS, today) };
}

/**
 * How far the export of a window created at `createdAt` is final: CircleCI had refreshed the days
 * before the day before the create (the day just ended may not be refreshed yet when the export
 * runs), so rows from there on are exported again by the next window.
 */
export const settledThrough = (window: Window, createdAt: number): number => Math.min(window.end, dayStart(createdAt) - DAY_MS);

/** The progress after a window's rows were all emitted. */
export function advance(progress: Progress, window: Window, createdAt: number): Progress {
  const through = Math.max(progress.through ?? window.end, window.end);
  const settled = settledThrough(window, createdAt);
  return settled < through ? { through, recheckFrom: settled } : { through };
}

/**
 * When the next create is allowed: `limit.count` creates per `limit.windowMs`, counted over the
 * creates made (this machine's clock, epoch ms), and not before a 429's Retry-After (`notBefore`).
 */
export function nextCreateAt(creates: readonly number[], limit: UsageCreateLimit, now: number, notBefore = 0): number {
  const recent = creates.filter((t) => t > now - limit.windowMs).sort((a, b) => a - b);
  const byCount = recent.length >= limit.count ? recent[recent.length - limit.count] + limit.windowMs : now;
  return Math.max(now, byCount, notBefore);
}

/** The creates still worth remembering: those inside the limit's window. */
export const recentCreates = (creates: readonly number[], limit: UsageCreateLimit, now: number): number[] => creates.filter((t) => t > now - limit.windowMs);

/** How many windows are left from `from` to today (for a person waiting on a backfill). */
export const windowsLeft = (from: number, now: number): number => Math.max(0, Math.ceil((dayStart(now) - from) / MAX_WINDOW_MS));

import { streamByName } from '../streams/index.js';
import type { LogLevel, StreamStatus, SyncSink } from '../sync/crawler.js';
import type { StreamState } from '../sync/state.js';
import type { Output } from './output.js';
import type { SingerStream } from './singer-catalog.js';
import { toSingerBookmark, type Bookmarks } from './singer-state.js';

/** Singer messages (SCHEMA, RECORD, STATE) and the sink that writes them; logs go to stderr. */

export const TAP_NAME = 'tap-circleci';

export const schemaMessage = (s: SingerStream) => ({
  type: 'SCHEMA',
  stream: s.name,
  schema: s.schema,
  key_properties: s.keyProperties,
  bookmark_properties: s.bookmarkProperties,
});

export const recordMessage = (stream: string, record: Record<string, unknown>, timeExtracted: string) => ({
  type: 'RECORD',
  stream,
  record,
  time_extracted: timeExtracted,
});

export const stateMessage = (bookmarks: Bookmarks) => ({ type: 'STATE', value: { bookmarks } });

/** Python logging's level names, which Singer users read. */
const LEVELS: Record<LogLevel | 'CRITICAL', string> = { DEBUG: 'DEBUG', INFO: 'INFO', WARN: 'WARNING', ERROR: 'ERROR', CRITICAL: 'CRITICAL' };
export const logLine = (level: LogLevel | 'CRITICAL', message: string) => `${LEVELS[level]} ${TAP_NAME}: ${message}`;

export interface SingerSinkOptions {
  /** At most this many records per stream (`--test`: 1); further records are dropped. */
  maxRecordsPerStream?: number;
  /** Called once every selected stream has reached `maxRecordsPerStream`. */
  onSampled?: () => void;
  /** True once the tap is stopping (SIGTERM) or stdout is gone: nothing more is written. */
  stopped?: () => boolean;
}

/**
 * The engine's output as Singer messages: every selected stream's SCHEMA when the sync starts
 * (so before any RECORD, and a table exists even with no rows), RECORDs with `time_extracted`,
 * and after each checkpoint a STATE holding every bookmark: the checkpointed stream's, translated,
 * and the others as they were (streams not synced in this run are carried through unchanged).
 */
export class SingerSink implements SyncSink {
  private readonly bookmarks: Bookmarks;
  private readonly announced = new Set<string>();
  private readonly counts = new Map<string, number>();
  private sampled = false;
  /** A record was dropped (--test): a later STATE would claim it was delivered. */
  private dropped = false;
  /** Bookmarks changed since the last STATE written. */
  private unwritten = false;

  constructor(
    private readonly out: Output,
    private readonly streams: Map<string, SingerStream>,
    bookmarks: Bookmarks,
    private readonly opts: SingerSinkOptions = {},
  ) {
    this.bookmarks = structuredClone(bookmarks);
  }

  private get stopped(): boolean {
    return this.out.isClosed || !!this.opts.stopped?.();
  }

  /** The STATE value as it stands. */
  get state() {
    return { bookmarks: structuredClone(this.bookmarks) };
  }

  private async announce(stream: string): Promise<void> {
    if (this.announced.has(stream)) return;
    const s = this.streams.get(stream);
    if (!s) throw new Error(`Stream ${stream} was not selected`);
    this.announced.add(stream);
    await this.out.line(schemaMessage(s));
  }

  async record(stream: string, data: Record<string, unknown>): Promise<void> {
    if (this.stopped) return;
    const max = this.opts.maxRecordsPerStream;
    const n = (this.counts.get(stream) ?? 0) + 1;
    if (max !== undefined && n > max) {
      this.dropped = true;
      return;
    }
    this.counts.set(stream, n);
    await this.announce(stream);
    await this.out.line(recordMessage(stream, data, new Date().toISOString()));
    if (max !== undefined && !this.sampled && [...this.streams.keys()].every((s) => (this.counts.get(s) ?? 0) >= max)) {
      this.sampled = true;
      this.opts.onSampled?.();
    }
  }

  async checkpoint(stream: string, state: StreamState): Promise<void> {
    // Once --test has dropped a record, any checkpoint may cover it: write no STATE it did not earn.
    if (this.stopped || this.dropped) return;
    const decl = streamByName(stream);
    if (!decl) return;
    // A full-table stream with nothing to resume (projects) keeps no bookmark.
    if (!decl.cursorField && !Object.keys(state).length && !(stream in this.bookmarks)) return;
    this.bookmarks[stream] = toSingerBookmark(decl, state);
    this.unwritten = true;
  }

  /** One STATE for a round of checkpoints: every bookmark is in it. */
  async checkpointed(): Promise<void> {
    if (!this.unwritten || this.stopped || this.dropped) return;
    this.unwritten = false;
    await this.out.line(stateMessage(this.bookmarks));
  }

  log(level: LogLevel, message: string): void {
    this.out.log(logLine(level, message));
  }

  async status(stream: string, status: StreamStatus): Promise<void> {
    if (status === 'STARTED') {
      if (!this.stopped) await this.announce(stream);
      return;
    }
    if (status !== 'RUNNING') this.out.log(logLine(status === 'COMPLETE' ? 'INFO' : 'WARN', `Stream ${stream}: ${status.toLowerCase()}.`));
  }
}

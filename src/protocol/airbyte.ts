import type { ConnectorError } from '../errors.js';
import { inTree } from '../streams/index.js';
import type { StreamDeclaration } from '../streams/stream.js';
import type { LogLevel, StreamStatus, SyncSink } from '../sync/crawler.js';
import type { StreamState } from '../sync/state.js';
import type { Output } from './output.js';

/** Airbyte protocol messages (airbyte_protocol.yaml) and the sink that writes them. */

export const airbyteStream = (s: StreamDeclaration) => ({
  name: s.name,
  json_schema: s.schema,
  supported_sync_modes: s.cursorField ? ['full_refresh', 'incremental'] : ['full_refresh'],
  source_defined_cursor: !!s.cursorField,
  ...(s.cursorField ? { default_cursor_field: [s.cursorField] } : {}),
  source_defined_primary_key: s.primaryKey.map((k) => [k]),
  // The streams below the pipeline list resume from their state: per project, a cursor and, while
  // a sync of the project is unfinished, a marker of the pipelines it completed. Resumable, the
  // platform keeps a full-refresh stream's state between the attempts of one job (and drops it
  // for the next job). workflow_runs resumes from its per-project cursor, usage from its
  // per-organization state (the windows done, the export still pending). projects and
  // flaky_tests are one request a project: they start again.
  is_resumable: inTree(s) || !!s.cursorField,
});

export const traceError = (e: ConnectorError) => ({
  type: 'TRACE',
  trace: {
    type: 'ERROR',
    emitted_at: Date.now(),
    error: {
      message: e.message,
      ...(e.internal ? { internal_message: e.internal } : {}),
      failure_type: e.failureType,
      ...(e.failureType === 'system_error' && e.stack ? { stack_trace: e.stack } : {}),
    },
  },
});

export const logMessage = (level: LogLevel | 'FATAL', message: string) => ({ type: 'LOG', log: { level, message } });

export const connectionStatus = (ok: boolean, message?: string) => ({
  type: 'CONNECTION_STATUS',
  connectionStatus: { status: ok ? 'SUCCEEDED' : 'FAILED', ...(message ? { message } : {}) },
});

export class AirbyteSink implements SyncSink {
  private readonly running = new Set<string>();

  constructor(private readonly out: Output) {}

  record(stream: string, data: Record<string, unknown>) {
    return this.out.line({ type: 'RECORD', record: { stream, data, emitted_at: Date.now() } });
  }

  checkpoint(stream: string, state: StreamState, recordCount: number) {
    return this.out.line({
      type: 'STATE',
      state: {
        type: 'STREAM',
        stream: { stream_descriptor: { name: stream }, stream_state: state },
        sourceStats: { recordCount },
      },
    });
  }

  log(level: LogLevel, message: string) {
    return this.out.line(logMessage(level, message));
  }

  status(stream: string, status: StreamStatus, reasons?: unknown[]) {
    if (status === 'STARTED' || status === 'RUNNING') this.running.add(stream);
    else this.running.delete(stream);
    return this.out.line({
      type: 'TRACE',
      trace: { type: 'STREAM_STATUS', emitted_at: Date.now(), stream_status: { stream_descriptor: { name: stream }, status, ...(reasons ? { reasons } : {}) } },
    });
  }

  async rateLimited(untilMs: number) {
    for (const stream of this.running) {
      await this.status(stream, 'RUNNING', [{ type: 'RATE_LIMITED', rate_limited: { quota_reset: Math.round(untilMs) } }]);
    }
  }
}

import { HttpError, StoppedError, type CircleCIClient } from '../circleci/client.js';
import { projectExists, projectNotFound, tokenAccepted, tokenRejected } from '../circleci/probes.js';
import type { Json, StreamDeclaration } from '../streams/stream.js';
import { cursorValue, type StreamCursor } from './cursors.js';

/** What reading one project stream needs from the crawler. */
export interface ProjectReaderOptions {
  stream: StreamDeclaration;
  cursor: StreamCursor;
  incremental: boolean;
  project: string;
  client: CircleCIClient;
  /** start_date, epoch ms. */
  startDate: number;
  /** The oldest time whose unfinished records are still followed (cursors.ts `horizon`). */
  horizon: number;
  signal?: AbortSignal;
  emit(record: Json): Promise<void>;
  warn(message: string): Promise<void>;
}

/**
 * Reads a stream that hangs directly below a project, outside the pipeline walk (Insights), with
 * the same cursor arithmetic as the walk (cursors.ts): records at or after the threshold are
 * emitted, those that may still change hold the next cursor back, the signpost keeps what was
 * created during the sync. One record per key per read.
 *
 * True when the stream was read to the end, so its cursor may move. False when CircleCI answered
 * 404 (Insights not available for this project: CircleCI Server before 4.x, or not for this
 * plan): one WARN, and the project's state for the stream is kept. A 404 because the project
 * itself is not there (a wrong slug) or the token is rejected fails as it does in the walk.
 */
export async function readProjectStream(o: ProjectReaderOptions): Promise<boolean> {
  const { stream, cursor, client } = o;
  const seen = new Set<string>();
  const fromState = o.incremental && cursor.threshold > o.startDate;
  const since = fromState ? cursor.threshold : o.startDate;
  const records = stream.readProject!({
    project: o.project,
    since,
    fromState,
    now: () => client.serverNow(),
    warn: o.warn,
    get: (path, query) => client.get(path, query),
    pages: (path, query) => client.pages(path, query),
  });
  try {
    for await (const record of records) {
      if (o.signal?.aborted) throw new StoppedError();
      const key = JSON.stringify(stream.primaryKey.map((k) => record[k]));
      if (seen.has(key)) continue;
      seen.add(key);
      if (stream.cursorField) {
        const value = cursorValue(record, stream.cursorField);
        // A record of its own (no pipeline above it): it counts as its own pipeline for rescans.
        if (!cursor.accept(value, value, stream.mayChange?.(record) ?? false, o.horizon)) continue;
      }
      await o.emit(record);
    }
    return true;
  } catch (e) {
    if (!(e instanceof HttpError && e.status === 404)) throw e;
    // CircleCI answers 404 for a missing project and a bad token too: those are the user's to fix.
    if (!(await projectExists(client, o.project))) throw (await tokenAccepted(client)) ? projectNotFound(o.project) : tokenRejected();
    await o.warn(
      `${o.project}: ${stream.name} skipped: GET ${e.endpoint} answered 404, so CircleCI's Insights are not available for this project ` +
        '(CircleCI Server before 4.x, or the project has none); its state is kept and the next sync asks again.',
    );
    return false;
  }
}

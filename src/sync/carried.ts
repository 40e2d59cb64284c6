import { STREAMS, childrenOf } from '../streams/index.js';
import type { Context, StreamDeclaration } from '../streams/stream.js';
import type { StreamCursor } from './cursors.js';

/**
 * The rules of streams whose records carry another record's cursor: jobs, job details and test
 * results carry the created_at of the workflow they are listed under. One vocabulary:
 * - the *owner* is the record whose cursor they carry (a workflow);
 * - the streams *carried* by an owner's stream are the children that declare cursorFromParent,
 *   and those below them that do too;
 * - below one owner, a carried stream is *admitted* when its own cursor arithmetic accepts the
 *   owner: decided once for the owner's whole subtree, before any of its lists is asked for;
 * - a request below an admitted owner is *settled* when an earlier sync read its answer in final
 *   form (it settled before that sync looked, and has not answered 404 since): not asked again;
 * - a stream that can be settled *keeps its signpost* after every sync that emitted, so the next
 *   one knows when the previous one looked.
 */

const carriers = (s: StreamDeclaration): StreamDeclaration[] =>
  childrenOf(s.name).filter((c) => c.cursorFromParent).flatMap((c) => [c, ...carriers(c)]);
const CARRIED = new Map(STREAMS.map((s) => [s, carriers(s)]));

/** The streams that carry this stream's cursor (workflows: jobs, job details, tests). */
export const carriedBy = (owner: StreamDeclaration): StreamDeclaration[] => CARRIED.get(owner) ?? carriers(owner);

/** What admission looks at: the owner's cursor value and whether it may still change, and its pipeline. */
export interface Owner {
  value: number;
  mayChange: boolean;
  pipelineTime: number;
  pipelineNumber?: number;
}

/**
 * Whether a carried stream's records below this owner are to be emitted: the pipeline is inside
 * the stream's scan, not completed by an interrupted sync, and the stream's cursor accepts the
 * owner (recording what that contributes to its next cursor). `horizon`: see cursors.ts.
 */
export function admitted(cursor: StreamCursor, owner: Owner, horizon: number): boolean {
  return owner.pipelineTime >= cursor.floor && !cursor.done(owner.pipelineNumber) && cursor.accept(owner.value, owner.pipelineTime, owner.mayChange, horizon);
}

/** Whether what `stream` answers below this context was read final by an earlier sync. */
export const settled = (stream: StreamDeclaration, cursor: StreamCursor, ctx: Context): boolean =>
  !!stream.settledAt && cursor.readFinal(stream.settledAt(ctx), stream.path(ctx));

/** Whether the stream keeps its signpost after every sync that emitted (see `settled`). */
export const keepsSignpost = (stream: StreamDeclaration): boolean => !!stream.settledAt;

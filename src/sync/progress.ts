/**
 * Which pipelines of a project are completely synced. Pipelines arrive newest first and finish
 * in any order (their children are fetched concurrently); the synced range is the unbroken run of
 * finished pipelines from the first one listed. Only that run may be checkpointed.
 */
export interface PipelineSlot {
  number?: number;
  /** Order of listing across all projects: the requests of slots listed earlier go first. */
  seq: number;
  /** Child lists still being fetched. */
  pending: number;
  /** The pipeline's own visit is over (its record is out, its children spawned). */
  visited: boolean;
  /**
   * Something below it was not fetched (the sync was stopped before a child list was asked for):
   * the pipeline is never claimed as synced, so a resumed sync reads it again.
   */
  incomplete: boolean;
  done: boolean;
}

export class Progress {
  private static listed = 0;
  private readonly queue: PipelineSlot[] = [];
  /** Newest and oldest pipeline numbers of the unbroken finished run. */
  top?: number;
  through?: number;
  /** False once a pipeline without a number breaks the run: nothing more can be claimed. */
  private claimable = true;
  finished = 0;

  constructor(private readonly onAdvance: () => void) {}

  add(number: number | undefined): PipelineSlot {
    const slot: PipelineSlot = { number, seq: ++Progress.listed, pending: 0, visited: false, incomplete: false, done: false };
    this.queue.push(slot);
    return slot;
  }

  /** Call when a visit ends or a child list is done; finishes the slot when nothing is pending. */
  settle(slot: PipelineSlot): void {
    if (slot.done || slot.incomplete || !slot.visited || slot.pending > 0) return;
    slot.done = true;
    let advanced = false;
    while (this.queue[0]?.done) {
      const head = this.queue.shift()!;
      this.finished++;
      if (!this.claimable) continue;
      if (head.number === undefined || (this.through !== undefined && head.number >= this.through)) {
        this.claimable = false;
        continue;
      }
      this.top ??= head.number;
      this.through = head.number;
      advanced = true;
    }
    if (advanced) this.onAdvance();
  }
}

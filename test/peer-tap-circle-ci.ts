/**
 * A model of singer-io/tap-circle-ci 1.1.0's sync (sync.py, streams/pipelines.py,
 * streams/workflows.py, streams/jobs.py) run over HTTP against the mock: which records it emits
 * and every STATE it writes, in its order, so a test can stop it anywhere and hand its last STATE
 * to this connector exactly as a user switching would.
 *
 * What it keeps of the peer: stream-major order (each stream over every project, in config order),
 * rotation to `currently_syncing` on start, pipelines listed in full and filtered client-side
 * (`updated_at >= bookmark`, bookmark written for every project only when the stream ends),
 * workflows per pipeline (`created_at >= max(bookmark, start_date)`, bookmark and
 * `workflows.currently_syncing` written, then STATE, after every pipeline; cleared at the end of
 * each project), microsecond timestamps. Left out: job records (FULL_TABLE, and this connector reads
 * every job since start_date after the switch anyway); the jobs stream only leaves `"jobs": {}`.
 */
import type { Message } from './helpers.js';

export interface PeerRun {
  /** Every STATE value it wrote, in order; the last one is what a platform keeps after a stop. */
  states: Message[];
  /** The raw API items it emitted, by stream. */
  records: { pipelines: Message[]; workflows: Message[] };
  /** Whether it ran to its end. */
  finished: boolean;
}

/** singer.utils.strftime: `%Y-%m-%dT%H:%M:%S.%fZ`. */
const strftime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

class Stop extends Error {}

/**
 * One run of the peer from `state`; `stopAfterWorkflowStates`: stop (as a kill would) once its
 * workflows stream has written that many STATEs in this run.
 */
export async function runPeer(opts: { baseUrl: string; token: string; projects: string[]; startDate: string; state?: Message; stopAfterWorkflowStates?: number }): Promise<PeerRun> {
  const state: Message = structuredClone(opts.state ?? {});
  const out: PeerRun = { states: [], records: { pipelines: [], workflows: [] }, finished: false };
  const writeState = () => out.states.push(structuredClone(state));
  const bookmarks = (stream: string): Message => ((state.bookmarks ??= {})[stream] ??= {});
  const start = Date.parse(opts.startDate);
  let workflowStates = 0;

  const pages = async function* (path: string): AsyncGenerator<Message[]> {
    let token: string | null | undefined;
    do {
      const url = new URL(`${opts.baseUrl}${path}`);
      if (token) url.searchParams.set('page-token', token);
      const res = await fetch(url, { headers: { 'Circle-Token': opts.token } });
      if (res.status !== 200) throw new Error(`peer model: ${res.status} on ${path}`);
      const body = (await res.json()) as { items: Message[]; next_page_token?: string | null };
      if (!body.items.length) return;
      yield body.items;
      token = body.next_page_token;
    } while (token);
  };

  const pipelineIds = new Map<string, string[]>();
  const streams: Record<string, (project: string) => Promise<void>> = {
    async pipelines(project) {
      const from = Date.parse(bookmarks('pipelines')[project] ?? opts.startDate);
      let max = from;
      const ids: string[] = [];
      for await (const items of pages(`/project/${project}/pipeline`)) {
        for (const p of items) {
          ids.push(p.id);
          const t = Date.parse(p.updated_at);
          if (t >= from) {
            out.records.pipelines.push(p);
            max = Math.max(max, t);
          }
        }
      }
      pipelineIds.set(project, ids);
      bookmarks('pipelines')[project] = strftime(max);
    },
    async workflows(project) {
      let ids = pipelineIds.get(project);
      if (!ids) {
        // prefetch_pipeline_ids: listed again, sorted by id.
        ids = [];
        for await (const items of pages(`/project/${project}/pipeline`)) ids.push(...items.map((p) => p.id as string));
        ids.sort();
      }
      const last = bookmarks('workflows').currently_syncing;
      const from = last ? Math.max(0, ids.indexOf(last)) : 0;
      for (const id of ids.slice(from)) {
        const floor = Math.max(Date.parse(bookmarks('workflows')[id] ?? opts.startDate), start);
        let max = floor;
        for await (const items of pages(`/pipeline/${id}/workflow`)) {
          for (const w of items) {
            const t = Date.parse(w.created_at);
            if (t >= floor) {
              out.records.workflows.push(w);
              max = Math.max(max, t);
            }
          }
        }
        bookmarks('workflows')[id] = strftime(max);
        bookmarks('workflows').currently_syncing = id;
        writeState();
        if (++workflowStates === opts.stopAfterWorkflowStates) throw new Stop();
      }
      delete bookmarks('workflows').currently_syncing;
    },
    async jobs() {
      delete bookmarks('jobs').currently_syncing;
    },
  };

  // singer.Catalog.get_selected_streams: start with the stream it was syncing.
  const order = ['pipelines', 'workflows', 'jobs'];
  const at = Math.max(0, order.indexOf(state.currently_syncing));
  try {
    for (const stream of [...order.slice(at), ...order.slice(0, at)]) {
      state.currently_syncing = stream;
      writeState();
      for (const project of opts.projects) await streams[stream](project);
      writeState();
    }
  } catch (e) {
    if (e instanceof Stop) return out;
    throw e;
  }
  state.currently_syncing = null;
  writeState();
  out.finished = true;
  return out;
}

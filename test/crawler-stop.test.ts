/**
 * A stop while the output is backed up (issue 17, item 1), in-process so the moment is exact: the
 * sink stops taking records (as a full stdout pipe does), the crawl runs until every one of its
 * tasks waits on the sink, then it is stopped (what SIGTERM does) and the sink is drained. No
 * pipeline whose children were never fetched may be claimed as synced: a resumed sync from the
 * checkpoints the stopped one wrote completes the ground truth. Real HTTP to the mock.
 */
import { CircleCIClient } from '../src/circleci/client.js';
import { parseConfig } from '../src/config.js';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { makeClient } from '../src/sync/engine.js';
import { crawl, type SyncSink } from '../src/sync/crawler.js';
import type { StreamState, SyncState } from '../src/sync/state.js';
import { TEST_TOKEN, byKey, type Message, type StreamName } from './helpers.js';

const DAY = 86_400_000;
const STREAMS: StreamName[] = ['pipelines', 'workflows', 'jobs', 'job_details', 'tests'];

/** A sink that, once `holdAfter` records are in, takes no more until released: a reader that stopped reading. */
class BackedUpSink implements SyncSink {
  records: Record<string, Message[]> = Object.fromEntries(STREAMS.map((s) => [s, []]));
  state: SyncState = {};
  private waiting: (() => void)[] = [];
  private held = false;
  private taken = 0;
  onHold?: () => void;
  constructor(private holdAfter = Number.POSITIVE_INFINITY) {}
  get blocked(): number {
    return this.waiting.length;
  }
  async record(stream: string, data: Message): Promise<void> {
    this.records[stream].push(data);
    if (!this.held && ++this.taken < this.holdAfter) return;
    this.held = true;
    await new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      this.onHold?.();
    });
  }
  checkpoint(stream: string, state: StreamState): void {
    this.state[stream] = structuredClone(state);
  }
  log(): void {}
  status(): void {}
  /** The reader reads again: every waiting record goes through, in order, and no more are held. */
  release(): void {
    this.held = false;
    this.holdAfter = Number.POSITIVE_INFINITY;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

/** Counts requests not yet answered (queued for a slot included). */
function counting(client: CircleCIClient): { client: CircleCIClient; pending: () => number; onSettle: (f: () => void) => void } {
  let pending = 0;
  let listener: () => void = () => {};
  const get = client.get.bind(client);
  client.get = async (...args: Parameters<CircleCIClient['get']>) => {
    pending++;
    try {
      return await get(...args);
    } finally {
      pending--;
      listener();
    }
  };
  return { client, pending: () => pending, onSettle: (f) => (listener = f) };
}

describe('a sync stopped while its output is backed up', () => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test.each([30, 120, 300])('stopped once %i records are out and every task waits on the output: the resumed sync completes the ground truth', async (holdAfter) => {
    const world = new World({ seed: 53, historyDays: 2, pipelinesPerDay: 12 });
    mock = await startMockServer({ world, token: TEST_TOKEN, jobPageSize: 3 });
    const startDate = new Date(world.now().getTime() - 2 * DAY);
    const config = parseConfig({ token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl });
    const selection = new Map(STREAMS.map((s) => [s, { mode: 'incremental' as const }]));

    const stop = new AbortController();
    const sink = new BackedUpSink(holdAfter);
    const { client, pending, onSettle } = counting(makeClient(config, undefined, undefined, stop.signal));
    // Everything waits on the output once no request is outstanding and the event loop has turned
    // (what follows an answer, up to the next record, runs without waiting on anything else).
    const quiet = new Promise<void>((resolve) => {
      const check = () => {
        if (sink.blocked === 0 || pending() > 0) return;
        setImmediate(() => {
          if (sink.blocked > 0 && pending() === 0) resolve();
        });
      };
      sink.onHold = check;
      onSettle(check);
    });
    const first = crawl({ config, client, selection, state: {}, sink, signal: stop.signal });
    await quiet;
    stop.abort();
    sink.release();
    await first;
    // The stop left a checkpoint of what was completed, and something was left to do.
    const marked = STREAMS.filter((s) => Object.values(sink.state[s] ?? {}).some((c) => c.resume));
    expect(marked.length).toBeGreaterThan(0);

    const resumed = new BackedUpSink();
    await crawl({ config, client: makeClient(config), selection, state: sink.state, sink: resumed });
    const truth = world.groundTruth(startDate) as unknown as Record<StreamName, Message[]>;
    truth.tests = truth.tests.map((t) => ({ ...t, _file: t.file ?? '' }));
    for (const s of STREAMS) {
      const union = byKey(s, [...sink.records[s], ...resumed.records[s]]);
      const expected = byKey(s, truth[s]);
      expect({ s, missing: [...expected.keys()].filter((k) => !union.has(k)) }).toEqual({ s, missing: [] });
    }
  });
});

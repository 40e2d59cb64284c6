/**
 * Scaling out over several connections (docs/operations.md, "When one sync is not enough"): state is one
 * entry per stream and project, so a project moves from one connection to another by carrying
 * its entries. The other connection's next sync then reads that project incrementally, with the
 * same requests and records as if it had stayed; without the entries it would read its whole
 * history again.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { AIRBYTE_CLI, TEST_TOKEN, byKey, configuredCatalog, lastStates, recordsOf, runCli, tempFiles, type Message } from './helpers.js';
import { invalidMessages } from './validate.js';

const DAY = 86_400_000;
const API = 'gh/acme/api';
const WEB = 'bb/acme/web';
const OPS = 'gh/acme/ops';
const STREAMS = ['pipelines', 'workflows'] as const;
const CATALOG = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental' });

let world: World;
let mock: MockServer;
let startDate: Date;

beforeAll(async () => {
  world = new World({ seed: 41, historyDays: 60, pipelinesPerDay: 6, projects: [API, WEB, OPS] });
  startDate = new Date(world.now().getTime() - 60 * DAY);
  mock = await startMockServer({ world, token: TEST_TOKEN });
});

afterAll(() => mock.close());

/** One connection's sync: its projects, the state the platform kept for it. */
async function sync(slugs: string[], state: Message[]) {
  const files = tempFiles({
    config: { token: TEST_TOKEN, project_slugs: slugs, start_date: startDate.toISOString(), base_url: mock.baseUrl, lookback_days: 7 },
    catalog: CATALOG,
    ...(state.length ? { state } : {}),
  });
  mock.resetCounters();
  const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog, ...(state.length ? ['--state', files.state] : [])]);
  expect({ code: r.code, invalid: invalidMessages(r.messages) }).toEqual({ code: 0, invalid: [] });
  return { messages: r.messages, state: lastStates(r.messages, state), requests: [...mock.counters.log] };
}

/** The requests a sync made about one project: its pipeline list, and the workflow lists of its pipelines. */
function requestsAbout(slug: string, requests: Array<{ path: string }>): string[] {
  const pipelines = new Set(world.groundTruth(startDate).pipelines.filter((p) => p.project_slug === slug).map((p) => String(p.id)));
  return requests
    .map((l) => l.path)
    .filter((path) => {
      if (path.startsWith(`/api/v2/project/${slug}/`)) return true;
      const wf = /^\/api\/v2\/pipeline\/([^/?]+)\/workflow/.exec(path);
      return !!wf && pipelines.has(decodeURIComponent(wf[1]));
    });
}

const recordsAbout = (slug: string, messages: Message[], stream: string) => byKey(stream, recordsOf(messages, stream).filter((r) => r.project_slug === slug));
/** Records in key order: concurrent projects and pipelines make the output order vary. */
const sorted = (m: Map<string, Message>) => [...m].sort(([a], [b]) => a.localeCompare(b)).map(([, r]) => r);
const entryOf = (state: Message[], stream: string, slug: string) => state.find((s) => s.stream.stream_descriptor.name === stream)?.stream.stream_state[slug];

/** Moves `slug`'s entries from one connection's state to another's; both stay valid state arrays. */
function move(slug: string, from: Message[], to: Message[]): { from: Message[]; to: Message[] } {
  const next = { from: structuredClone(from), to: structuredClone(to) };
  for (const stream of STREAMS) {
    const src = next.from.find((s) => s.stream.stream_descriptor.name === stream)!;
    const dst = next.to.find((s) => s.stream.stream_descriptor.name === stream)!;
    dst.stream.stream_state[slug] = src.stream.stream_state[slug];
    delete src.stream.stream_state[slug];
  }
  return next;
}

test("a project's state entries carried into another connection's state: its next sync reads the project incrementally, exactly as the first connection would have", async () => {
  // Two connections: A syncs api and web, B syncs ops.
  const a1 = await sync([API, WEB], []);
  const b1 = await sync([OPS], []);
  const firstWebRequests = requestsAbout(WEB, a1.requests).length;
  const firstWebRecords = recordsAbout(WEB, a1.messages, 'pipelines').size;
  expect(firstWebRecords).toBeGreaterThan(300);
  for (const stream of STREAMS) expect(entryOf(a1.state, stream, WEB)).toBeDefined();

  world.advance(2 * DAY); // new pipelines arrive, running workflows finish

  // The control: web stays in A.
  const stayed = await sync([API, WEB], a1.state);
  // The move: web's entries go from A's state to B's, and web from A's project_slugs to B's.
  const moved = move(WEB, a1.state, b1.state);
  const b2 = await sync([OPS, WEB], moved.to);
  const a2 = await sync([API], moved.from);

  // B reads web with the same requests and the same records as A would have.
  const webRequests = requestsAbout(WEB, b2.requests);
  expect(webRequests.sort()).toEqual(requestsAbout(WEB, stayed.requests).sort());
  expect(webRequests.length).toBeLessThan(firstWebRequests / 3);
  for (const stream of STREAMS) {
    const got = recordsAbout(WEB, b2.messages, stream);
    expect(got.size).toBeGreaterThan(0);
    expect({ stream, records: sorted(got) }).toEqual({ stream, records: sorted(recordsAbout(WEB, stayed.messages, stream)) });
    // ...and web's cursors move on in B as they would have in A.
    expect({ stream, entry: entryOf(b2.state, stream, WEB) }).toEqual({ stream, entry: entryOf(stayed.state, stream, WEB) });
  }
  expect(recordsAbout(WEB, b2.messages, 'pipelines').size).toBeLessThan(firstWebRecords / 3);
  // Every web pipeline B emits is at or after the cursor web had in A.
  const cursor = Date.parse(entryOf(a1.state, 'pipelines', WEB).updated_at);
  for (const r of recordsAbout(WEB, b2.messages, 'pipelines').values()) expect(Date.parse(r.updated_at)).toBeGreaterThanOrEqual(cursor);

  // A no longer reads web, and its state no longer holds it.
  expect(requestsAbout(WEB, a2.requests)).toEqual([]);
  for (const stream of STREAMS) expect(entryOf(a2.state, stream, WEB)).toBeUndefined();

  // Without the carried entries, B would have read web's whole history again.
  const fresh = await sync([OPS, WEB], b1.state);
  expect(recordsAbout(WEB, fresh.messages, 'pipelines').size).toBeGreaterThanOrEqual(firstWebRecords);
  expect(requestsAbout(WEB, fresh.requests).length).toBeGreaterThanOrEqual(firstWebRequests);
});

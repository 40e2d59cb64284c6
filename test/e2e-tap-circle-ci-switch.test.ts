/**
 * Switching from singer-io's tap-circle-ci after a run of it was stopped: its last STATE, as it
 * writes it in the middle of its workflows stream (see peer-tap-circle-ci.ts), handed to each face
 * as --state, then incremental syncs of ours. Nothing the peer never read may be lost: the union
 * of what the peer and our syncs emitted holds every record of the mock's ground truth.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { TEST_TOKEN, keyOf, type Message, type StreamName } from './helpers.js';
import { airbyte, singer } from './faces.js';
import { runPeer } from './peer-tap-circle-ci.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const STREAMS = ['pipelines', 'workflows', 'jobs'] as const satisfies readonly StreamName[];

describe.each([singer, airbyte])('$name, switched to from tap-circle-ci stopped in its workflows stream', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('no workflow of a project the peer had not reached is lost; the union equals the ground truth', async () => {
    const world = new World({ seed: 43, historyDays: 12, pipelinesPerDay: 4 });
    mock = await startMockServer({ world, token: TEST_TOKEN });
    const projects = world.projectSlugs();
    const startDate = new Date(world.now().getTime() - 10 * DAY).toISOString();
    const peer = { baseUrl: mock.baseUrl, token: TEST_TOKEN, projects, startDate };

    // The peer's last complete run, two days of CI, then a run of it stopped half-way through the
    // second project's workflows (the first project done, the third not reached).
    const first = await runPeer(peer);
    expect(first.finished).toBe(true);
    world.advance(2 * DAY);
    const [a, b, c] = projects.map((p) => world.listPipelines(p).length);
    expect(c).toBeGreaterThan(0);
    const stopped = await runPeer({ ...peer, state: first.states.at(-1), stopAfterWorkflowStates: a + Math.floor(b / 2) });
    expect(stopped.finished).toBe(false);
    const peerState = stopped.states.at(-1)!;
    expect(peerState.currently_syncing).toBe('workflows');
    expect(typeof peerState.bookmarks.workflows.currently_syncing).toBe('string');

    // Our syncs from that state, in tap-circle-ci's config shape.
    const config = { token: TEST_TOKEN, project_slugs: projects.join(' '), start_date: startDate, base_url: mock.baseUrl };
    const ours: Record<string, Message[]>[] = [];
    let state: unknown = peerState;
    for (const wait of [HOUR, DAY]) {
      world.advance(wait);
      const r = await face.sync(config, state, [...STREAMS]);
      ours.push(r.records);
      state = r.state;
    }
    const truth = world.groundTruth(new Date(startDate));

    // The hazard was there: workflows of the unreached project created since the peer's last
    // complete run, which the peer never emitted.
    const peerWorkflows = new Set([...first.records.workflows, ...stopped.records.workflows].map((w) => w.id));
    const unreached = truth.workflows.filter((w) => w.project_slug === projects[2] && !peerWorkflows.has(w.id));
    expect(unreached.length).toBeGreaterThan(0);

    for (const s of STREAMS) {
      const expected = new Set((truth[s] as unknown as Message[]).map((r) => keyOf(s, r)));
      const oursKeys = new Set(ours.flatMap((r) => r[s]).map((r) => keyOf(s, r)));
      // The peer's job records are left out: this connector reads every job since start_date after the switch.
      const union = new Set([...oursKeys, ...(s === 'jobs' ? [] : [...first.records[s], ...stopped.records[s]].map((r) => keyOf(s, r)))]);
      expect({ s, missing: [...expected].filter((k) => !union.has(k)) }).toEqual({ s, missing: [] });
      // Ours emit nothing outside the ground truth.
      expect({ s, extra: [...oursKeys].filter((k) => !expected.has(k)) }).toEqual({ s, extra: [] });
    }
  });
});

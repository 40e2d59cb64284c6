/**
 * CircleCI does not stand still while a sync runs: here the mock's clock runs during every sync
 * (pipelines arrive after the first list page was read, workflows are rerun and finish on
 * pipelines the sync already visited), as a long production sync would see it, compressed.
 * Whatever a sync could not see must be read by a later one: the union of the syncs, last write
 * winning, equals the mock's ground truth. Both faces, through the spawned CLIs.
 */
import { join } from 'node:path';
import { startMockServer, type MockServer } from '../src/mock/server.js';
import { World } from '../src/mock/world.js';
import {
  AIRBYTE_CLI, ROOT, TEST_TOKEN, byKey, configuredCatalog, lastStates, recordsOf, runCli, tempFiles, type Message,
} from './helpers.js';
import { invalidMessages } from './validate.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');
const DAY = 86_400_000;
const STREAMS = ['pipelines', 'workflows'] as const;
/**
 * Five world minutes before each answer: a sync of a few hundred requests spans more than a day,
 * the same on a fast or a loaded machine (the mock counts requests, not wall time).
 */
const CLOCK_STEP_MS = 5 * 60_000;

interface Face {
  name: string;
  /** Runs one sync with the state the previous one left; returns its records and the next state. */
  sync(config: unknown, state: unknown): Promise<{ records: Record<string, Message[]>; state: unknown }>;
}

const airbyte: Face = {
  name: 'Airbyte (source-circleci read)',
  async sync(config, state) {
    const catalog = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental' });
    const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
    const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])]);
    expect(r.code).toBe(0);
    expect(invalidMessages(r.messages)).toEqual([]);
    return {
      records: Object.fromEntries(STREAMS.map((s) => [s, recordsOf(r.messages, s)])),
      state: lastStates(r.messages, (state as Message[] | undefined) ?? []),
    };
  },
};

let singerCatalog: unknown;
const singer: Face = {
  name: 'Singer (tap-circleci)',
  async sync(config, state) {
    const files = tempFiles({ config, catalog: singerCatalog as object, ...(state ? { state } : {}) });
    const r = await runCli(SINGER_CLI, ['--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])]);
    expect(r.code).toBe(0);
    const states = r.messages.filter((m) => m.type === 'STATE');
    return {
      records: Object.fromEntries(STREAMS.map((s) => [s, r.messages.filter((m) => m.type === 'RECORD' && m.stream === s).map((m) => m.record)])),
      state: states.length ? states[states.length - 1].value : state,
    };
  },
};

beforeAll(async () => {
  // The discovered catalog with jobs deselected: these syncs are about the two incremental streams.
  const r = await runCli(SINGER_CLI, ['--discover', '--config', tempFiles({ c: { token: TEST_TOKEN, project_slugs: ['gh/acme/api'] } }).c]);
  const catalog = r.messages[0];
  for (const entry of catalog.streams) {
    const root = entry.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata;
    root.selected = entry.tap_stream_id !== 'jobs';
  }
  singerCatalog = catalog;
});

describe.each([airbyte, singer])('$name under a clock that runs during the sync', (face) => {
  let world: World;
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('four incremental syncs while the clock runs, then one after it stops: no pipeline or workflow missing, every status final', async () => {
    // A world in which a cursor that follows the largest value seen loses workflows for good
    // (checked by hand against such a build).
    world = new World({ seed: 29, historyDays: 9, pipelinesPerDay: 10 });
    mock = await startMockServer({ world, token: TEST_TOKEN, clockStepMs: CLOCK_STEP_MS });
    const startDate = new Date(world.now().getTime() - 8 * DAY);
    const config = { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: startDate.toISOString(), base_url: mock.baseUrl };
    const union = { pipelines: new Map<string, Message>(), workflows: new Map<string, Message>() };
    /** Per sync: when (world clock) it read each pipeline's workflow list, and when it ended. */
    const visits: { workflowListAt: Map<string, number>; end: number; start: number }[] = [];
    let state: unknown;
    for (let round = 0; round < 5; round++) {
      if (round === 4) mock.setClock(0);
      mock.resetCounters();
      const r = await face.sync(config, state);
      for (const s of STREAMS) byKey(s, r.records[s], union[s]);
      state = r.state;
      const log = mock.counters.log;
      const workflowListAt = new Map<string, number>();
      for (const l of log) {
        const m = /^\/api\/v2\/pipeline\/([^/?]+)\/workflow/.exec(l.path);
        if (m && !workflowListAt.has(m[1])) workflowListAt.set(m[1], l.at);
      }
      visits.push({ workflowListAt, start: log[0].at, end: log[log.length - 1].at });
    }

    const truth = world.groundTruth(startDate);
    // The hazard was there: pipelines created during a sync after it began, and workflows created
    // on a pipeline after the same sync had read that pipeline's workflows.
    const running = visits.slice(0, 4);
    const createdMidSync = truth.pipelines.filter((p) => running.some((v) => Date.parse(String(p.created_at)) > v.start && Date.parse(String(p.created_at)) <= v.end));
    const missedByTheirSync = truth.workflows.filter((w) =>
      running.some((v) => {
        const at = v.workflowListAt.get(String(w.pipeline_id));
        return at !== undefined && Date.parse(String(w.created_at)) > at && Date.parse(String(w.created_at)) <= v.end;
      }),
    );
    expect(createdMidSync.length).toBeGreaterThan(0);
    expect(missedByTheirSync.length).toBeGreaterThan(0);

    for (const s of STREAMS) {
      const expected = byKey(s, truth[s] as unknown as Message[]);
      const missing = [...expected.keys()].filter((k) => !union[s].has(k));
      expect({ s, missing }).toEqual({ s, missing: [] });
      expect(union[s].size).toBe(expected.size);
      for (const [k, v] of expected) expect({ s, k, record: union[s].get(k) }).toEqual({ s, k, record: v });
    }
  });
});

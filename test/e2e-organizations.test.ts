/**
 * Whole organizations (issue 19): the projects of `organizations` are discovered at every sync
 * (API v3 on cloud, v1.1's followed projects on CircleCI Server), joined with project_slugs, less
 * exclude_projects, split by partition; a project that appears is synced from start_date in the
 * sync that finds it; one that vanishes is a WARN and keeps its state. Both faces, spawned CLIs.
 */
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { AIRBYTE_CLI, TEST_TOKEN, byKey, runCli, type Message, type StreamName } from './helpers.js';
import { airbyte, singer } from './faces.js';

const DAY = 86_400_000;
const STREAMS: StreamName[] = ['projects', 'pipelines', 'workflows', 'jobs'];
const SLUGS = ['gh/acme/api', 'gh/acme/web', 'gh/acme/legacy-billing', 'gh/other/tool'];

/** The logs of a sync, whichever face ran it (Airbyte LOG messages, Singer's stderr lines). */
async function syncWithLogs(face: typeof airbyte, config: unknown, state: unknown, streams: StreamName[]) {
  const { cli, args } = await face.command(config, state, streams);
  const r = await runCli(cli, args);
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr.slice(-500) }).toEqual({ code: 0, stderr: '' });
  const logs = cli === AIRBYTE_CLI ? r.messages.filter((m) => m.type === 'LOG').map((m) => `${m.log.level} ${m.log.message}`) : r.stderr.split('\n');
  return { ...face.parse(r.messages, state, streams), logs };
}

const projectsOf = (records: Record<string, Message[]>) => [...new Set(records.pipelines.map((p) => p.project_slug as string))].sort();

describe.each([airbyte, singer])('$name: organizations', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('discovered by API v3, excluded by glob, a new project synced from start_date, a vanished one a WARN with its state kept', async () => {
    const now = Date.now();
    const world = new World({
      seed: 71,
      now: new Date(now),
      historyDays: 6,
      pipelinesPerDay: 3,
      projects: [...SLUGS, 'gh/acme/newcomer'],
      projectsCreated: { 'gh/acme/newcomer': new Date(now + DAY).toISOString() },
      archived: { 'gh/acme/web': new Date(now + DAY).toISOString() },
    });
    mock = await startMockServer({ world, token: TEST_TOKEN, v3PageSize: 2 });
    const startDate = new Date(now - 5 * DAY);
    const config = { token: TEST_TOKEN, organizations: ['gh/acme'], exclude_projects: ['gh/acme/legacy-*'], start_date: startDate.toISOString(), base_url: mock.baseUrl };

    const first = await syncWithLogs(face, config, undefined, STREAMS);
    expect(projectsOf(first.records)).toEqual(['gh/acme/api', 'gh/acme/web']);
    expect(first.logs.some((l) => /Organization gh\/acme: 3 projects, every project of the organization \(API v3\)/.test(l))).toBe(true);
    const truth1 = world.groundTruth(startDate);
    const mine = (slug: string) => slug === 'gh/acme/api' || slug === 'gh/acme/web';
    expect(byKey('pipelines', first.records.pipelines)).toEqual(byKey('pipelines', truth1.pipelines.filter((p) => mine(String(p.project_slug))) as unknown as Message[]));

    // Two days on: gh/acme/newcomer exists (with its first pipelines), gh/acme/web is archived.
    world.advance(2 * DAY);
    const second = await syncWithLogs(face, config, first.state, STREAMS);
    const truth2 = world.groundTruth(startDate);
    const newcomer = truth2.pipelines.filter((p) => p.project_slug === 'gh/acme/newcomer');
    expect(newcomer.length).toBeGreaterThan(0);
    expect(byKey('pipelines', second.records.pipelines.filter((p) => p.project_slug === 'gh/acme/newcomer'))).toEqual(byKey('pipelines', newcomer as unknown as Message[]));
    expect(second.logs.filter((l) => /gh\/acme\/web: in the state but not found now/.test(l)).length).toBe(1);
    expect(second.logs.some((l) => /^(ERROR|CRITICAL)/.test(l))).toBe(false);
    // Its state is kept: a later sync that finds it again resumes from it.
    const stateText = JSON.stringify(second.state);
    expect(stateText).toContain('gh/acme/web');
  });

  test('CircleCI Server (no API v3): the followed projects, from API v1.1', async () => {
    const world = new World({ seed: 73, historyDays: 3, pipelinesPerDay: 2, projects: SLUGS, unfollowed: ['gh/acme/web'] });
    mock = await startMockServer({ world, token: TEST_TOKEN, server: true });
    const config = { token: TEST_TOKEN, organizations: ['gh/acme'], start_date: new Date(world.now().getTime() - 2 * DAY).toISOString(), base_url: mock.baseUrl };
    const r = await syncWithLogs(face, config, undefined, ['pipelines']);
    expect(projectsOf(r.records)).toEqual(['gh/acme/api', 'gh/acme/legacy-billing']);
    expect(r.logs.some((l) => /Organization gh\/acme: 2 projects the token's user follows \(API v1\.1/.test(l))).toBe(true);
  });
});

describe.each([airbyte, singer])('$name: partitions over several connections', (face) => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('three connections with the same organizations and count: every project in exactly one, joined with project_slugs', async () => {
    const slugs = Array.from({ length: 12 }, (_, i) => `gh/acme/service-${i + 1}`);
    const world = new World({ seed: 79, historyDays: 2, pipelinesPerDay: 2, projects: [...slugs, 'bb/acme/mobile'] });
    mock = await startMockServer({ world, token: TEST_TOKEN });
    const base = { token: TEST_TOKEN, organizations: ['gh/acme'], project_slugs: ['bb/acme/mobile'], start_date: new Date(world.now().getTime() - 2 * DAY).toISOString(), base_url: mock.baseUrl };
    const shares: string[][] = [];
    for (const index of [0, 1, 2]) {
      const r = await face.sync({ ...base, partition: { index, count: 3 } }, undefined, ['projects']);
      shares.push(r.records.projects.map((p) => p.slug as string).sort());
    }
    expect(shares.every((s) => s.length > 0)).toBe(true);
    // Disjoint and complete: each project comes from exactly one connection.
    expect(shares.flat().sort()).toEqual([...slugs, 'bb/acme/mobile'].sort());
  });
});

describe('a few huge projects among many small ones', () => {
  let mock: MockServer;
  afterEach(async () => mock?.close());

  test('do not hold the rest up: every small project is synced before either huge one is done', async () => {
    const now = Date.now();
    const huge = ['gh/acme/monorepo-1', 'gh/acme/monorepo-2'];
    const small = Array.from({ length: 20 }, (_, i) => `gh/acme/small-${i + 1}`);
    // The small projects were created six hours ago: a few pipelines each, against a month of the huge ones'.
    const world = new World({
      seed: 83,
      now: new Date(now),
      historyDays: 30,
      pipelinesPerDay: 12,
      projects: [...huge, ...small],
      projectsCreated: Object.fromEntries(small.map((s) => [s, new Date(now - 6 * 3_600_000).toISOString()])),
    });
    mock = await startMockServer({ world, token: TEST_TOKEN });
    // The huge ones first, and one request at a time: the most a schedule could favour them.
    const config = { token: TEST_TOKEN, project_slugs: [...huge, ...small], max_concurrency: 1, start_date: new Date(now - 30 * DAY).toISOString(), base_url: mock.baseUrl };
    const { cli, args } = await airbyte.command(config, undefined, ['pipelines', 'workflows', 'jobs']);
    const r = await runCli(cli, args);
    expect(r.code).toBe(0);
    const done = r.messages.filter((m) => m.type === 'LOG' && /^\S+: scanned \d+ pipelines/.test(m.log.message)).map((m) => m.log.message.split(':')[0] as string);
    expect([...done].sort()).toEqual([...huge, ...small].sort());
    const firstHuge = Math.min(...huge.map((h) => done.indexOf(h)));
    expect({ smallAfterAHugeOne: small.filter((s) => done.indexOf(s) > firstHuge) }).toEqual({ smallAfterAHugeOne: [] });
  });
});

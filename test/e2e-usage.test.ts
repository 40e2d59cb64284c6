/**
 * The usage stream (issue 20): CircleCI's Usage Export API read through the spawned CLIs, real
 * HTTP to the mock and its storage host. Rows equal the mock's ground truth (usageRows), typed;
 * multi-part, CSV-hard parts; the token never reaches the storage host; a pending export carried
 * to the next sync; a failed export retried; a 404 organization a WARN; creates paced.
 */
import { join } from 'node:path';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World, ODD_JOB_NAME } from '../mock/world.js';
import { usageRows } from '../mock/usageCsv.js';
import { AIRBYTE_CLI, ROOT, TEST_TOKEN, lastStates, runCli, tempFiles, type Message } from './helpers.js';
import { invalidMessages } from './validate.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');
const DAY = 86_400_000;
const NOW = Date.parse('2026-03-10T15:00:00Z');
const TODAY = Date.parse('2026-03-10T00:00:00Z');
const iso = (t: number) => new Date(t).toISOString();

const USAGE_CATALOG = {
  streams: [
    {
      stream: { name: 'usage', json_schema: {}, supported_sync_modes: ['full_refresh', 'incremental'] },
      sync_mode: 'incremental',
      destination_sync_mode: 'append_dedup',
      cursor_field: ['_window_end'],
      primary_key: [['job_id']],
    },
  ],
};

/** Two organizations: acme (two projects) and other (one). */
const world = () => new World({ seed: 20, now: new Date(NOW), historyDays: 12, pipelinesPerDay: 3, projects: ['gh/acme/api', 'gh/acme/web', 'gh/other/tool'] });

const mocks: MockServer[] = [];
async function mockWith(w: World, usage: Parameters<typeof startMockServer>[0]['usage'] = {}) {
  const m = await startMockServer({ world: w, token: TEST_TOKEN, usage });
  mocks.push(m);
  return m;
}
afterEach(async () => {
  await Promise.all(mocks.splice(0).map((m) => m.close()));
});

const orgId = (w: World, slug: string) => w.organizations().find((o) => o.slug === slug)!.id;

/** What the connector should emit for an organization's window: the mock's typed rows plus its own fields. */
const truth = (w: World, org: string, start: number, end: number, windowEnd = end) =>
  usageRows(w, org, new Date(start), new Date(end)).map((r) => ({ ...r, _organization_id: org, _window_end: iso(windowEnd) }));

async function airbyteRead(config: unknown, state?: unknown, env?: Record<string, string>, mode: 'incremental' | 'full_refresh' = 'incremental') {
  const catalog = mode === 'incremental' ? USAGE_CATALOG : { streams: [{ ...USAGE_CATALOG.streams[0], sync_mode: 'full_refresh', destination_sync_mode: 'overwrite' }] };
  const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
  const r = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])], { env });
  expect({ code: r.code, tail: r.code === 0 ? '' : r.stdout.slice(-800) }).toEqual({ code: 0, tail: '' });
  expect(invalidMessages(r.messages)).toEqual([]);
  const records = r.messages.filter((m) => m.type === 'RECORD').map((m) => m.record.data);
  const logs = r.messages.filter((m) => m.type === 'LOG').map((m) => `${m.log.level} ${m.log.message}`);
  const states = lastStates(r.messages, (state as Message[] | undefined) ?? []);
  const usageState = states.find((s) => s.stream.stream_descriptor.name === 'usage')?.stream.stream_state;
  return { r, records, logs, states, usageState };
}

const sortByJob = (rows: Message[]) => [...rows].sort((a, b) => (a.job_id < b.job_id ? -1 : 1));

describe('usage stream (Airbyte: source-circleci read)', () => {
  test('rows equal the ground truth, typed, from multi-part CSV-hard parts; the storage host sees no token; the next day exports only the new window and the day it rechecks; a full refresh exports again from start_date', async () => {
    const w = world();
    const mock = await mockWith(w, { rowsPerPart: 7, storageFailFirst: 1 });
    const acme = orgId(w, 'gh/acme');
    const start = TODAY - 9 * DAY;
    const config = { token: TEST_TOKEN, base_url: mock.baseUrl, organizations: ['gh/acme'], start_date: iso(start) };

    const first = await airbyteRead(config);
    const expected = truth(w, acme, start, TODAY);
    // The world is worth testing: several parts, the CSV-hard job name, empty cells and both flags.
    expect(expected.length).toBeGreaterThan(14);
    expect(expected.some((r) => r.job_name === ODD_JOB_NAME)).toBe(true);
    expect(expected.some((r) => r.median_cpu_utilization_pct === null)).toBe(true);
    expect(new Set(expected.map((r) => r.is_workflow_successful))).toEqual(new Set([true, false]));
    expect(sortByJob(first.records)).toEqual(sortByJob(expected));
    expect(mock.usageJobs().map((j) => [j.orgId, j.start, j.end])).toEqual([[acme, iso(start), iso(TODAY)]]);
    // One 503 from storage was retried; every part was fetched without a credential.
    expect(first.logs.some((l) => /WARN .*HTTP 503; retry 1/.test(l))).toBe(true);
    expect(mock.storageLog.filter((e) => e.status === 200).length).toBeGreaterThan(2);
    for (const e of mock.storageLog) {
      expect({ path: e.path, auth: e.headers.authorization, token: e.headers['circle-token'], leaked: JSON.stringify(e.headers).includes(TEST_TOKEN) }).toEqual({
        path: e.path,
        auth: undefined,
        token: undefined,
        leaked: false,
      });
    }
    // The day just ended may not be refreshed yet: the state says to export it again.
    expect(first.usageState).toEqual({ [acme]: { _window_end: iso(TODAY), recheck_from: iso(TODAY - DAY), creates: [expect.any(String)] } });

    // A day later: one export, of the rechecked day and the new one.
    w.advance(DAY);
    const second = await airbyteRead(config, first.states);
    expect(mock.usageJobs().slice(1).map((j) => [j.start, j.end])).toEqual([[iso(TODAY - DAY), iso(TODAY + DAY)]]);
    const union = new Map([...first.records, ...second.records].map((r) => [r.job_id, r]));
    const all = truth(w, acme, start, TODAY + DAY);
    expect(sortByJob([...union.values()]).map(({ _window_end: _, ...r }) => r)).toEqual(sortByJob(all).map(({ _window_end: _, ...r }) => r));
    // The rechecked day's rows come again, with the later window end (the newer copy wins on dedup).
    expect(second.records.every((r) => r._window_end === iso(TODAY + DAY))).toBe(true);
    expect(second.usageState[acme]).toMatchObject({ _window_end: iso(TODAY + DAY), recheck_from: iso(TODAY) });

    // A full refresh exports again from start_date, whatever the state says.
    const full = await airbyteRead(config, second.states, undefined, 'full_refresh');
    expect(mock.usageJobs().slice(2).map((j) => [j.start, j.end])).toEqual([[iso(start), iso(TODAY + DAY)]]);
    expect(sortByJob(full.records)).toEqual(sortByJob(truth(w, acme, start, TODAY + DAY)));
  });

  test('a failed export is retried with a new job and its reason reported; a 404 organization is one WARN and the sync succeeds', async () => {
    const w = world();
    const other = orgId(w, 'gh/other');
    const acme = orgId(w, 'gh/acme');
    const mock = await mockWith(w, { failFirst: 1, unavailableOrgs: [other] });
    const start = TODAY - 5 * DAY;
    // acme comes from a listed project (its organization_id), other from "organizations".
    const { records, logs, usageState } = await airbyteRead({ token: TEST_TOKEN, base_url: mock.baseUrl, project_slugs: ['gh/acme/api'], organizations: ['gh/other'], start_date: iso(start) });
    expect(logs.filter((l) => /export .* failed: The export query timed out after 4 hours/.test(l))).toHaveLength(1);
    expect(mock.usageJobs().filter((j) => j.orgId === acme).map((j) => j.state)).toEqual(['failed', 'completed']);
    expect(sortByJob(records)).toEqual(sortByJob(truth(w, acme, start, TODAY)));
    const unavailable = logs.filter((l) => l.includes('usage export is not available'));
    expect(unavailable).toHaveLength(1);
    expect(unavailable[0]).toMatch(/^WARN usage: organization gh\/other: .*404.*CircleCI Server.*plans/);
    expect(Object.keys(usageState)).toEqual([acme]);

    // check names the organizations a sync would export, and creates no export to find out.
    const posts = mock.counters.log.filter((e) => e.method === 'POST').length;
    const files = tempFiles({ config: { token: TEST_TOKEN, base_url: mock.baseUrl, project_slugs: ['gh/acme/api'], organizations: ['gh/other'] } });
    const check = await runCli(AIRBYTE_CLI, ['check', '--config', files.config]);
    expect(check.messages.at(-1)).toEqual({ type: 'CONNECTION_STATUS', connectionStatus: { status: 'SUCCEEDED' } });
    const said = check.messages.filter((m) => m.type === 'LOG' && m.log.message.startsWith('usage'));
    expect(said).toHaveLength(1);
    expect(said[0].log.message).toMatch(/exports gh\/other, gh\/acme\. .*check creates none/);
    expect(mock.counters.log.filter((e) => e.method === 'POST')).toHaveLength(posts);
  });

  test('creates are paced: the configured limit stops a backfill without a 429; a limit reached elsewhere costs one 429 and no more creates until its Retry-After', async () => {
    const w = new World({ seed: 21, now: new Date(NOW), historyDays: 40, pipelinesPerDay: 1, projects: ['gh/acme/api'] });
    const acme = orgId(w, 'gh/acme');
    const mock = await mockWith(w, { readyAfterPolls: 1, createLimit: { count: 1, windowMs: 600_000 } });
    const start = TODAY - 40 * DAY;
    const config = { token: TEST_TOKEN, base_url: mock.baseUrl, organizations: ['gh/acme'], start_date: iso(start), usage_poll_minutes: 0 };
    const status429 = () => mock.counters.log.filter((e) => e.status === 429).length;

    // Told the limit (1 per 600 s): one window of two, then it stops and says why.
    const first = await airbyteRead(config, undefined, { SOURCE_CIRCLECI_USAGE_CREATE_LIMIT: '1/600' });
    expect(mock.usageJobs().map((j) => [j.start, j.end])).toEqual([[iso(start), iso(start + 31 * DAY)]]);
    expect(status429()).toBe(0);
    expect(first.logs.some((l) => /INFO usage: organization gh\/acme: 1 window \(from .*\) wait for the create limit/.test(l))).toBe(true);
    expect(first.usageState[acme]._window_end).toBe(iso(start + 31 * DAY));
    expect(sortByJob(first.records)).toEqual(sortByJob(truth(w, acme, start, start + 31 * DAY)));

    // Not told (CircleCI's 10 an hour assumed): CircleCI's 429 is asked once, its Retry-After kept in the state.
    const second = await airbyteRead(config, first.states);
    expect(status429()).toBe(1);
    expect(mock.usageJobs()).toHaveLength(1);
    expect(Date.parse(second.usageState[acme].create_after)).toBeGreaterThan(Date.now() + 500_000);
    // The next sync does not ask before then.
    await airbyteRead(config, second.states);
    expect(status429()).toBe(1);
    expect(mock.counters.log.filter((e) => e.method === 'POST')).toHaveLength(2);
  });
});

describe('usage stream (Singer: tap-circleci)', () => {
  async function singerSync(config: unknown, state?: unknown) {
    const discovered = (await runCli(SINGER_CLI, ['--discover'])).messages[0];
    const catalog = structuredClone(discovered);
    for (const entry of catalog.streams) entry.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata.selected = entry.tap_stream_id === 'usage';
    const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
    const r = await runCli(SINGER_CLI, ['--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])]);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr.slice(-800) }).toEqual({ code: 0, stderr: '' });
    const states = r.messages.filter((m) => m.type === 'STATE');
    return { records: r.messages.filter((m) => m.type === 'RECORD' && m.stream === 'usage').map((m) => m.record), state: states.at(-1)?.value, stderr: r.stderr, discovered };
  }

  test('opt-in; a pending export is carried in the bookmark to the next sync, which polls it instead of creating one', async () => {
    const w = world();
    const acme = orgId(w, 'gh/acme');
    const mock = await mockWith(w, { readyAfterPolls: 2 });
    const start = TODAY - 4 * DAY;
    const config = { token: TEST_TOKEN, base_url: mock.baseUrl, organizations: ['gh/acme'], start_date: iso(start), usage_poll_minutes: 0 };

    const first = await singerSync(config);
    const entry = first.discovered.streams.find((s: Message) => s.tap_stream_id === 'usage');
    expect(entry.metadata[0].metadata).toMatchObject({ 'selected-by-default': false, 'table-key-properties': ['job_id'], 'valid-replication-keys': ['_window_end'] });
    expect(first.records).toEqual([]);
    expect(first.stderr).toMatch(/export [0-9a-f-]+ of .* is still processing; it is kept in the state and the next sync collects it/);
    const job = mock.usageJobs()[0];
    expect(first.state.bookmarks.usage.partitions).toEqual([
      {
        context: { organization_id: acme },
        pending_job: job.id,
        pending_start: iso(start),
        pending_end: iso(TODAY),
        pending_created: expect.any(String),
        creates: [expect.any(String)],
      },
    ]);

    const second = await singerSync(config, first.state);
    expect(mock.usageJobs()).toHaveLength(1);
    expect(sortByJob(second.records)).toEqual(sortByJob(truth(w, acme, start, TODAY)));
    expect(second.state.bookmarks.usage.partitions).toEqual([
      { context: { organization_id: acme }, replication_key: '_window_end', replication_key_value: iso(TODAY), recheck_from: iso(TODAY - DAY), creates: [expect.any(String)] },
    ]);

    // Without a catalog the stream is left out: no export.
    const files = tempFiles({ config });
    const plain = await runCli(SINGER_CLI, ['--config', files.config]);
    expect(plain.code).toBe(0);
    expect(mock.usageJobs()).toHaveLength(1);
  });
});

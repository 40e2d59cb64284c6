/**
 * The usage stream's pure parts, in-process: window arithmetic, create pacing, the state's
 * parsing, and how a CSV row becomes a typed record.
 */
import { advance, exportFloor, nextCreateAt, nextWindow, oldestStart, windowsLeft } from '../src/sync/usage-windows.js';
import { parseUsageState } from '../src/sync/usage-state.js';
import { parseAirbyteState } from '../src/protocol/airbyte-state.js';
import { parseSingerState } from '../src/protocol/singer-state.js';
import { rowPlan, usageRecord, type BadCells } from '../src/streams/usage.js';
import { parseConfig } from '../src/config.js';
import { usageOrganizations } from '../src/sync/usage-orgs.js';
import type { CircleCIClient } from '../src/circleci/client.js';

const DAY = 86_400_000;
const T = (s: string) => Date.parse(s);
const NOW = T('2026-03-10T15:00:00Z');
const TODAY = T('2026-03-10T00:00:00Z');
const ORG = '747fedb4-1037-45ca-b888-98b077871f0e';

describe('windows', () => {
  test('the floor: start_date, never older than a year back rounded up to a whole day', () => {
    expect(oldestStart(NOW)).toBe(T('2025-03-11T00:00:00Z'));
    expect(exportFloor(T('2020-01-01T00:00:00Z'), NOW)).toBe(T('2025-03-11T00:00:00Z'));
    expect(exportFloor(T('2026-02-01T06:00:00Z'), NOW)).toBe(T('2026-02-01T06:00:00Z'));
  });

  test('a first backfill of a year is 12 windows of at most 31 days, contiguous, the last ending at the start of today', () => {
    const floor = exportFloor(0, NOW);
    const windows = [];
    let progress = {};
    for (let w = nextWindow(progress, floor, NOW); w; w = nextWindow(progress, floor, NOW)) {
      windows.push(w);
      progress = advance(progress, w, NOW);
      expect(windows.length).toBeLessThan(20);
    }
    expect(windows).toHaveLength(12);
    expect(windows[0].start).toBe(floor);
    expect(windows.at(-1)!.end).toBe(TODAY);
    for (const [i, w] of windows.entries()) {
      expect(w.end - w.start).toBeLessThanOrEqual(31 * DAY);
      if (i) expect(w.start).toBe(windows[i - 1].end);
    }
    expect(windowsLeft(floor, NOW)).toBe(12);
    // Done through today, the day just ended rechecked: nothing more today.
    expect(progress).toEqual({ through: TODAY, recheckFrom: TODAY - DAY });
    expect(nextWindow(progress, floor, NOW + 8 * 3_600_000)).toBeUndefined();
  });

  test('a later day exports the rechecked day with the new ones, in one window', () => {
    const progress = { through: TODAY, recheckFrom: TODAY - DAY };
    const w = nextWindow(progress, 0, NOW + 3 * DAY)!;
    expect(w).toEqual({ start: TODAY - DAY, end: TODAY + 3 * DAY });
    expect(advance(progress, w, NOW + 3 * DAY)).toEqual({ through: TODAY + 3 * DAY, recheckFrom: TODAY + 2 * DAY });
  });

  test('a window that ended before the day before its create is settled: no recheck', () => {
    const w = { start: TODAY - 40 * DAY, end: TODAY - 9 * DAY };
    expect(advance({}, w, NOW)).toEqual({ through: TODAY - 9 * DAY });
    expect(advance({}, { start: TODAY - 3 * DAY, end: TODAY - DAY }, NOW)).toEqual({ through: TODAY - DAY });
  });

  test('a start_date later than the state skips ahead; nothing before today is nothing to do', () => {
    expect(nextWindow({ through: TODAY - 20 * DAY }, TODAY - 5 * DAY, NOW)).toEqual({ start: TODAY - 5 * DAY, end: TODAY });
    expect(nextWindow({}, NOW - 3_600_000, NOW)).toBeUndefined();
  });
});

describe('create pacing', () => {
  const limit = { count: 9, windowMs: 3_600_000 };
  test('under the limit: now; at it: when the oldest counted create leaves the window; a Retry-After comes first if later', () => {
    expect(nextCreateAt([], limit, NOW)).toBe(NOW);
    const eight = Array.from({ length: 8 }, (_, i) => NOW - 50 * 60_000 + i * 60_000);
    expect(nextCreateAt(eight, limit, NOW)).toBe(NOW);
    const nine = [...eight, NOW - 1000];
    expect(nextCreateAt(nine, limit, NOW)).toBe(NOW - 50 * 60_000 + 3_600_000);
    // Creates older than the window do not count.
    expect(nextCreateAt([...nine.slice(1), NOW - 2 * 3_600_000], limit, NOW)).toBe(NOW);
    expect(nextCreateAt([], limit, NOW, NOW + 120_000)).toBe(NOW + 120_000);
  });
});

describe('usage state', () => {
  const good = {
    [ORG.toUpperCase()]: {
      _window_end: '2026-03-10T00:00:00Z',
      recheck_from: '2026-03-09T00:00:00.000Z',
      pending_job: 'b5d2c1e4-0000-4000-8000-000000000001',
      pending_start: '2026-03-10T00:00:00.000Z',
      pending_end: '2026-03-11T00:00:00.000Z',
      pending_created: '2026-03-11T09:00:00.000Z',
      creates: ['2026-03-11T09:00:00Z'],
    },
  };

  test('normalised: lowercase organization ids, ISO times', () => {
    expect(parseUsageState(good, 'here')).toEqual({
      [ORG]: { ...good[ORG.toUpperCase()], _window_end: '2026-03-10T00:00:00.000Z', creates: ['2026-03-11T09:00:00.000Z'] },
    });
  });

  test.each([
    ['a project slug as key', { 'gh/acme/api': { _window_end: '2026-03-10T00:00:00Z' } }, /keyed by organization id .* "gh\/acme\/api" is not one/],
    ['a cursor that is not a date-time', { [ORG]: { _window_end: 'yesterday' } }, /_window_end = "yesterday", which is not a date-time/],
    ['half a pending export', { [ORG]: { pending_job: 'x' } }, /has pending_job but not pending_start, pending_end, pending_created/],
    ['an unknown key', { [ORG]: { updated_at: '2026-03-10T00:00:00Z' } }, /unknown key "updated_at"/],
    ['creates that are not times', { [ORG]: { creates: 'now' } }, /creates = "now", which is not a list of date-times/],
    ['not an object', [1], /must be an object keyed by organization id/],
  ])('%s: a config error naming the problem and the fix', (_, value, message) => {
    expect(() => parseUsageState(value, 'here')).toThrow(message);
    expect(() => parseUsageState(value, 'here')).toThrow(/Fix or remove the state file/);
  });

  test('through both faces: an Airbyte STREAM state and a Singer bookmark partitioned by organization id', () => {
    const airbyte = parseAirbyteState([{ type: 'STREAM', stream: { stream_descriptor: { name: 'usage' }, stream_state: { [ORG]: { _window_end: '2026-03-10T00:00:00.000Z' } } } }]);
    expect(airbyte).toEqual({ usage: { [ORG]: { _window_end: '2026-03-10T00:00:00.000Z' } } });
    const singer = parseSingerState(
      { bookmarks: { usage: { partitions: [{ context: { organization_id: ORG }, replication_key: '_window_end', replication_key_value: '2026-03-10T00:00:00.000Z', recheck_from: '2026-03-09T00:00:00.000Z' }] } } },
      [],
    );
    expect(singer.state).toEqual({ usage: { [ORG]: { _window_end: '2026-03-10T00:00:00.000Z', recheck_from: '2026-03-09T00:00:00.000Z' } } });
    expect(() => parseSingerState({ bookmarks: { usage: { partitions: [{ context: { project_slug: 'gh/acme/api' }, replication_key_value: '2026-03-10T00:00:00Z' }] } } }, [])).toThrow(
      /has no context.organization_id/,
    );
    expect(() => parseSingerState({ bookmarks: { usage: { replication_key: '_window_end', replication_key_value: '2026-03-10T00:00:00Z' } } }, ['gh/acme/api'])).toThrow(/bookmarked per organization/);
  });
});

describe('a CSV row as a record', () => {
  test('typed by the schema: numbers, Y/N, empty as null, zone-less times as UTC, unknown columns dropped', () => {
    const bad: BadCells = { count: 0 };
    const row: Record<string, string> = {
      job_id: 'j1',
      job_name: ' build, "x"\nnext ',
      pipeline_number: '42',
      total_credits: '12.5',
      is_unregistered_user: 'Y',
      is_workflow_successful: 'N',
      median_cpu_utilization_pct: '',
      job_run_started_at: '2026-03-09 10:00:00.5',
      job_run_stopped_at: '2026-03-09T10:05:00+02:00',
      job_run_date: '2026-03-09',
      parallelism: 'four',
      brand_new_column: 'x',
    };
    // In another order than the schema's, as a header may be.
    const header = Object.keys(row).reverse();
    const r = usageRecord(header.map((h) => row[h]), rowPlan(header), ORG, '2026-03-10T00:00:00.000Z', bad);
    expect(r).toEqual({
      _organization_id: ORG,
      _window_end: '2026-03-10T00:00:00.000Z',
      job_id: 'j1',
      job_name: ' build, "x"\nnext ',
      pipeline_number: 42,
      total_credits: 12.5,
      is_unregistered_user: true,
      is_workflow_successful: false,
      median_cpu_utilization_pct: null,
      job_run_started_at: '2026-03-09T10:00:00.500Z',
      job_run_stopped_at: '2026-03-09T10:05:00+02:00',
      job_run_date: '2026-03-09',
      parallelism: null,
    });
    expect(bad).toEqual({ count: 1, first: { column: 'parallelism', value: 'four' } });
  });
});

describe('settings', () => {
  const base = { token: 'tok-0123456789abcdefgh', project_slugs: ['gh/acme/api'] };
  const remote = { ...base, base_url: 'https://circleci.com/api/v2' };
  const local = { ...base, base_url: 'http://127.0.0.1:9/api/v2' };

  test('usage_poll_minutes: default 30, 0 allowed, out of range named with its fix', () => {
    expect(parseConfig(remote, new Date(NOW), {}).usagePollMs).toBe(30 * 60_000);
    expect(parseConfig({ ...remote, usage_poll_minutes: 0 }, new Date(NOW), {}).usagePollMs).toBe(0);
    expect(() => parseConfig({ ...remote, usage_poll_minutes: -1 }, new Date(NOW), {})).toThrow(/"usage_poll_minutes" .*from 0 to 1440/);
  });

  test('SOURCE_CIRCLECI_USAGE_CREATE_LIMIT: stricter is honoured anywhere, looser only against this machine, a bad value named', () => {
    const env = (v: string) => ({ SOURCE_CIRCLECI_USAGE_CREATE_LIMIT: v });
    expect(parseConfig(remote, new Date(NOW), {}).usageCreateLimit).toEqual({ count: 9, windowMs: 3_600_000 });
    expect(parseConfig(remote, new Date(NOW), env('5/3600')).usageCreateLimit).toEqual({ count: 5, windowMs: 3_600_000 });
    const loose = parseConfig(remote, new Date(NOW), env('2/1'));
    expect(loose.usageCreateLimit).toEqual({ count: 9, windowMs: 3_600_000 });
    expect(loose.warnings.join(' ')).toMatch(/SOURCE_CIRCLECI_USAGE_CREATE_LIMIT \(2\/1\) is looser .* ignored/);
    expect(parseConfig(local, new Date(NOW), env('2/1.5')).usageCreateLimit).toEqual({ count: 2, windowMs: 1500 });
    expect(() => parseConfig(remote, new Date(NOW), env('ten an hour'))).toThrow(/SOURCE_CIRCLECI_USAGE_CREATE_LIMIT is "ten an hour": set it to "<creates>\/<seconds>"/);
  });
});

describe('which organizations', () => {
  const A = '8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f';
  const B = '0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5';
  // circleci/<org-id>/... slugs and resolved organizations name their ids: no request is made.
  const noClient = { get: () => Promise.reject(new Error('no request expected')) } as unknown as CircleCIClient;
  const listed = { projectSlugs: [`circleci/${A}/p1`, `circleci/${A}/p2`, `circleci/${B}/p3`], excludeProjects: [] as string[] };

  test('from listed projects and configured organizations, once each', async () => {
    const orgs = await usageOrganizations(listed, noClient, [{ id: B.toUpperCase(), slug: 'gh/acme' }], () => undefined);
    expect(orgs).toEqual([
      { id: B, name: 'gh/acme' },
      { id: A, name: A },
    ]);
  });

  test('with partition, each organization is exported by exactly one connection', async () => {
    const shares = await Promise.all([0, 1, 2].map((index) => usageOrganizations({ ...listed, partition: { index, count: 3 } }, noClient, [], () => undefined)));
    const ids = shares.flat().map((o) => o.id);
    expect(ids.sort()).toEqual([A, B].sort());
  });

  test('an excluded project does not bring its organization', async () => {
    const orgs = await usageOrganizations({ ...listed, excludeProjects: [`circleci/${B}/*`] }, noClient, [], () => undefined);
    expect(orgs.map((o) => o.id)).toEqual([A]);
  });
});

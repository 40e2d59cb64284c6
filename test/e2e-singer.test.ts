/**
 * The Singer face (tap-circleci) through the built CLI against the mock CircleCI API on 127.0.0.1:
 * the conformance checklist of singer-meltano.md §6, selection, state, stray flags, signals, and
 * equality with the Airbyte face.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { AIRBYTE_CLI, ALL_FULL, ROOT, TEST_TOKEN, byKey, recordsOf as airbyteRecordsOf, runCli, runCommand, tempFiles, type Message } from './helpers.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');
const DAY = 86_400_000;
const HOUR = 3_600_000;
/** The streams selected by default (job_details and tests are opt-in), and every stream. */
const STREAMS = ['projects', 'pipelines', 'workflows', 'jobs'] as const;
const ALL_STREAMS = ['projects', 'pipelines', 'workflows', 'jobs', 'job_details', 'tests', 'workflow_runs', 'flaky_tests', 'usage'];
const CURSOR: Record<string, string | undefined> = { pipelines: 'updated_at', workflows: 'created_at', jobs: '_workflow_created_at', job_details: '_workflow_created_at', tests: '_workflow_created_at', workflow_runs: 'created_at', usage: '_window_end' };
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ allErrors: true, strict: false }));

let world: World;
let mock: MockServer;
let startDate: Date;
/** A full sync (no catalog, no state) of `world`: its messages, stderr and exit code, and its requests to the mock. */
let full: Message[];
let fullRun: { code: number | null; stderr: string };
let fullRequests = 0;

const configFor = (extra: Record<string, unknown> = {}, m: MockServer = mock, w: World = world) => ({
  token: TEST_TOKEN,
  project_slugs: w.projectSlugs(),
  start_date: startDate.toISOString(),
  base_url: m.baseUrl,
  ...extra,
});

// ---- what a Singer consumer checks

/** Every line is a Singer message; SCHEMA precedes RECORDs; records validate; keys unique and non-null; STATE re-readable. */
function conformance(messages: Message[]): string[] {
  const problems: string[] = [];
  const schemas = new Map<string, { validate: ValidateFunction; keys: string[]; props: Set<string> }>();
  const seen = new Map<string, Set<string>>();
  for (const [i, m] of messages.entries()) {
    const where = `line ${i + 1}`;
    const type = typeof m.type === 'string' ? m.type.toUpperCase() : '';
    if (type === 'SCHEMA') {
      if (typeof m.stream !== 'string' || typeof m.schema !== 'object' || !Array.isArray(m.key_properties) || !Array.isArray(m.bookmark_properties)) {
        problems.push(`${where}: SCHEMA without stream, schema, key_properties or bookmark_properties`);
        continue;
      }
      const props = new Set(Object.keys(m.schema.properties ?? {}));
      for (const k of [...m.key_properties, ...m.bookmark_properties]) if (!props.has(k)) problems.push(`${where}: ${m.stream} key ${k} not in its schema`);
      schemas.set(m.stream, { validate: ajv.compile(m.schema), keys: m.key_properties, props });
    } else if (type === 'RECORD') {
      const s = schemas.get(m.stream);
      if (!s) {
        problems.push(`${where}: RECORD of ${m.stream} before its SCHEMA`);
        continue;
      }
      if (typeof m.time_extracted !== 'string' || !RFC3339.test(m.time_extracted)) problems.push(`${where}: time_extracted ${m.time_extracted}`);
      if (!s.validate(m.record)) problems.push(`${where}: ${m.stream} record ${m.record?.id}: ${ajv.errorsText(s.validate.errors)}`);
      const extra = Object.keys(m.record ?? {}).filter((k) => !s.props.has(k));
      if (extra.length) problems.push(`${where}: ${m.stream} record has fields not in its SCHEMA: ${extra.join(', ')}`);
      if (s.keys.some((k) => m.record?.[k] === null || m.record?.[k] === undefined)) problems.push(`${where}: ${m.stream} record with a null key`);
      const key = s.keys.map((k) => String(m.record[k])).join('|');
      const keys = seen.get(m.stream) ?? new Set<string>();
      if (keys.has(key)) problems.push(`${where}: ${m.stream} key ${key} emitted twice`);
      keys.add(key);
      seen.set(m.stream, keys);
    } else if (type === 'STATE') {
      if (typeof m.value !== 'object' || m.value === null || typeof m.value.bookmarks !== 'object') problems.push(`${where}: STATE without value.bookmarks`);
      if (JSON.stringify(m.value).includes('progress_markers')) problems.push(`${where}: STATE with progress_markers`);
    } else {
      problems.push(`${where}: not a Singer message: ${JSON.stringify(m).slice(0, 120)}`);
    }
  }
  return problems;
}

const recordsOf = (messages: Message[], stream: string) => messages.filter((m) => m.type === 'RECORD' && m.stream === stream).map((m) => m.record as Message);
const schemasOf = (messages: Message[]) => messages.filter((m) => m.type === 'SCHEMA');
const statesOf = (messages: Message[]) => messages.filter((m) => m.type === 'STATE');
const finalState = (messages: Message[]) => statesOf(messages).at(-1)?.value;

/** A stream's bookmark as {slug: replication_key_value}. */
function partitionValues(state: Message | undefined, stream: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of state?.bookmarks?.[stream]?.partitions ?? []) if (p.replication_key_value) out[p.context.project_slug] = p.replication_key_value;
  return out;
}

/** Where the next sync emits from, per project: the oldest of the bookmark, its signpost and unfinished_from. */
function emitsFrom(state: Message | undefined, stream: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of state?.bookmarks?.[stream]?.partitions ?? []) {
    if (!p.replication_key_value) continue;
    out[p.context.project_slug] = Math.min(...[p.replication_key_value, p.signpost, p.unfinished_from].filter(Boolean).map((v: string) => Date.parse(v)));
  }
  return out;
}

/** The spawned tap; for a sync, every stdout line must pass the conformance checks. */
async function tap(args: string[], opts: Parameters<typeof runCli>[2] = {}) {
  const r = await runCli(SINGER_CLI, args, opts);
  if (!args.some((a) => /^(--discover|-d|--about)$/.test(a))) expect(conformance(r.messages)).toEqual([]);
  return r;
}

/** A sync; files are written to a temp folder. */
async function sync(opts: { config?: unknown; catalog?: unknown; state?: unknown; extra?: string[] } = {}) {
  const files = tempFiles({
    config: opts.config ?? configFor(),
    ...(opts.catalog ? { catalog: opts.catalog } : {}),
    ...(opts.state ? { state: opts.state } : {}),
  });
  return tap([
    '--config', files.config,
    ...(opts.catalog ? ['--catalog', files.catalog] : []),
    ...(opts.state ? ['--state', files.state] : []),
    ...(opts.extra ?? []),
  ]);
}

/** Plain-text commands (--help, --version, --about markdown): stdout is not JSON there. */
const runText = (args: string[]) => runCommand(process.execPath, [SINGER_CLI, ...args]);

async function discover(): Promise<Message> {
  const r = await tap(['--discover']);
  expect(r.code).toBe(0);
  expect(r.messages).toHaveLength(1);
  return r.messages[0];
}

/** Roughly what Meltano writes: every node an explicit `selected`, stream rules copied onto the entry. */
function meltanoCatalog(discovered: Message, select: string[], metadata: Record<string, Record<string, unknown>> = {}): Message {
  const glob = (p: string) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  const include = select.filter((p) => !p.startsWith('!')).map(glob);
  const exclude = select.filter((p) => p.startsWith('!')).map((p) => glob(p.slice(1)));
  const catalog = structuredClone(discovered);
  for (const entry of catalog.streams) {
    const name = entry.tap_stream_id;
    let any = false;
    for (const m of entry.metadata) {
      if (m.breadcrumb.length === 0) continue;
      const path = `${name}.${m.breadcrumb.filter((_: string, i: number) => i % 2 === 1).join('.')}`;
      m.metadata.selected = include.some((r) => r.test(path)) && !exclude.some((r) => r.test(path));
      any ||= m.metadata.selected;
    }
    const root = entry.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata;
    root.selected = any;
    Object.assign(root, metadata[name] ?? {});
    entry.selected = any;
    if (root['replication-method']) entry.replication_method = root['replication-method'];
  }
  return catalog;
}

beforeAll(async () => {
  world = new World({ seed: 7, historyDays: 30, pipelinesPerDay: 4 });
  mock = await startMockServer({ world, token: TEST_TOKEN, jobPageSize: 3 });
  startDate = new Date(world.now().getTime() - 20 * DAY);
  const r = await runCli(SINGER_CLI, ['--config', tempFiles({ c: configFor() }).c]);
  fullRequests = mock.counters.total;
  full = r.messages;
  fullRun = r;
});

afterAll(async () => {
  await mock.close();
});

describe('discover, about, version, help', () => {
  test('--discover prints a catalog: ids, one [] breadcrumb, one per property, automatic keys, replication', async () => {
    const catalog = await discover();
    expect(catalog.streams.map((s: Message) => s.tap_stream_id)).toEqual(ALL_STREAMS);
    for (const s of catalog.streams) {
      expect(s.tap_stream_id).toMatch(/^[a-z_0-9]+$/);
      expect(s.stream).toBe(s.tap_stream_id);
      const roots = s.metadata.filter((m: Message) => m.breadcrumb.length === 0);
      expect(roots).toHaveLength(1);
      const root = roots[0].metadata;
      expect(root['table-key-properties']).toEqual(s.key_properties);
      expect(root.inclusion).toBe('available');
      const props = Object.keys(s.schema.properties);
      const crumbs = s.metadata.filter((m: Message) => m.breadcrumb.length > 0).map((m: Message) => m.breadcrumb);
      expect(crumbs).toEqual(props.map((p) => ['properties', p]));
      const cursor = CURSOR[s.tap_stream_id];
      if (cursor) {
        expect(root['valid-replication-keys']).toEqual([cursor]);
        expect(root['forced-replication-method']).toBeUndefined();
        expect(s.replication_method).toBe('INCREMENTAL');
        expect(s.replication_key).toBe(cursor);
      } else {
        expect(root['forced-replication-method']).toBe('FULL_TABLE');
        expect(root['valid-replication-keys']).toBeUndefined();
        expect(s.replication_method).toBe('FULL_TABLE');
        expect(s.replication_key).toBeUndefined();
      }
      const automatic = new Set([...s.key_properties, ...(cursor ? [cursor] : [])]);
      for (const m of s.metadata.filter((x: Message) => x.breadcrumb.length > 0)) {
        expect({ field: m.breadcrumb[1], inclusion: m.metadata.inclusion }).toEqual({ field: m.breadcrumb[1], inclusion: automatic.has(m.breadcrumb[1]) ? 'automatic' : 'available' });
      }
    }
    expect(catalog.streams.find((s: Message) => s.tap_stream_id === 'jobs').key_properties).toEqual(['id', '_workflow_id']);
  });

  test('--discover works with stray --catalog/--state, a config without a token, in any flag order and form', async () => {
    const files = tempFiles({ config: { project_slugs: 'gh/acme/api' }, catalog: '{"streams": [', state: 'not json' });
    const expected = await discover();
    for (const args of [
      ['--config', files.config, '--discover', '--catalog', files.catalog, '--state', files.state],
      [`--state=${files.state}`, '-d', `--config=${files.config}`, '-p', files.catalog],
      ['--discover', '--config', '/nowhere/config.json'],
    ]) {
      const r = await tap(args);
      expect({ args, code: r.code }).toEqual({ args, code: 0 });
      expect(r.messages).toEqual([expected]);
    }
    // No API call was made.
    expect(mock.counters.log.filter((l) => l.path.includes('/me'))).toEqual([]);
  });

  test('--about --format json: name, version, capabilities, settings schema with the token secret', async () => {
    const r = await tap(['--about', '--format', 'json', '--config', '/nowhere.json']);
    expect(r.code).toBe(0);
    expect(r.messages).toHaveLength(1);
    const about = r.messages[0];
    expect(about.name).toBe('tap-circleci');
    expect(about.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof about.description).toBe('string');
    expect(about.capabilities).toEqual(expect.arrayContaining(['catalog', 'discover', 'state', 'about', 'test']));
    expect(about.settings.properties.token).toMatchObject({ type: 'string', secret: true, writeOnly: true });
    expect(about.settings.required).toEqual(['token']);
    expect(Object.keys(about.settings.properties)).toEqual(['token', 'project_slugs', 'organizations', 'exclude_projects', 'partition', 'start_date', 'base_url', 'lookback_days', 'max_concurrency', 'allow_insecure_http', 'usage_poll_minutes']);
    expect(JSON.stringify(about)).not.toMatch(/airbyte_secret/);
    const eq = await tap(['--about', '--format=json']);
    expect(eq.messages).toEqual([about]);
  });

  test('--about --format markdown, --about, --version and --help print text and exit 0', async () => {
    const md = await runText(['--format=markdown', '--about']);
    expect(md.code).toBe(0);
    expect(md.stdout).toMatch(/^# `tap-circleci`/);
    expect(md.stdout).toMatch(/\| Setting \| Required \| Default \| Description \|/);
    expect(md.stdout).toMatch(/\| token \| True \| None \| .*\(secret\) \|/);
    expect(md.stdout).toMatch(/\| lookback_days \| False \| 7 \|/);
    const text = await runText(['--about']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Name: tap-circleci/);
    const version = await runText(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^tap-circleci \d+\.\d+\.\d+\n$/);
    const help = await runText(['--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--config', '--discover', '--catalog', '--properties', '--state', '--about', '--format', '--test', '--version']) expect(help.stdout).toContain(flag);
  });

  test('a usage mistake is one CRITICAL line on stderr, exit 1, nothing on stdout', async () => {
    // Each mistake's message is checked in-process (test/unit-args.test.ts); here, how the tap ends
    // on one found while parsing and on one found after it (no --config to sync with).
    for (const args of [['--bogus'], []]) {
      const r = await runText(args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 1, stdout: '' });
      expect(r.stderr).toMatch(/^CRITICAL tap-circleci: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

describe('sync', () => {
  test('--help and the log of a run without a catalog name what it syncs: the default streams; job_details, tests, the Insights streams and usage only when selected', async () => {
    // The run above sent SCHEMA for exactly STREAMS; what the tap says must match it.
    const note = /^INFO tap-circleci: No catalog given: (.*)$/m.exec(fullRun.stderr)?.[1] ?? '';
    const help = (await runCommand(process.execPath, [SINGER_CLI, '--help'])).stdout.replace(/\s+/g, ' ');
    for (const text of [note, help]) {
      expect(text).not.toMatch(/every stream/);
      expect(text).toContain(`${STREAMS.slice(0, -1).join(', ')} and ${STREAMS.at(-1)}`);
      expect(text).toMatch(/job_details and tests .*workflow_runs and flaky_tests .*and usage .*(need a catalog|only when a catalog)/);
    }
  });

  test('with no catalog the streams selected by default are synced with every field; SCHEMA first, STATE after its records; equals the ground truth', async () => {
    expect(conformance(full)).toEqual([]);
    expect(fullRun.code).toBe(0);
    // One SCHEMA per stream, each before that stream's first RECORD, with every property.
    expect(schemasOf(full).map((m) => m.stream)).toEqual([...STREAMS]);
    for (const s of schemasOf(full)) {
      expect(s.bookmark_properties).toEqual(CURSOR[s.stream] ? [CURSOR[s.stream]] : []);
      expect(Object.keys(s.schema.properties).length).toBeGreaterThan(5);
    }
    expect(fullRun.stderr).toMatch(/^INFO tap-circleci: /m);
    const truth = world.groundTruth(startDate);
    for (const s of STREAMS) {
      const records = recordsOf(full, s);
      expect(records.length).toBeGreaterThan(0);
      const expected = byKey(s, truth[s] as unknown as Message[]);
      const actual = byKey(s, records);
      expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [k, v] of expected) expect({ s, k, record: actual.get(k) }).toEqual({ s, k, record: v });
    }
    // A bookmark per project for the incremental streams; no STATE is ahead of its records.
    const final = finalState(full);
    expect(final.currently_syncing ?? null).toBeNull();
    for (const s of ['pipelines', 'workflows']) {
      const values = partitionValues(final, s);
      expect(Object.keys(values).sort()).toEqual([...world.projectSlugs()].sort());
      for (const p of final.bookmarks[s].partitions) expect(p.replication_key).toBe(CURSOR[s]);
      for (const slug of world.projectSlugs()) {
        const firstFinal = full.findIndex((m) => m.type === 'STATE' && partitionValues(m.value, s)[slug] === values[slug]);
        let lastRecord = -1;
        full.forEach((m, i) => {
          if (m.type === 'RECORD' && m.stream === s && m.record.project_slug === slug) lastRecord = i;
        });
        expect({ s, slug, after: firstFinal > lastRecord }).toEqual({ s, slug, after: true });
      }
    }
    expect(statesOf(full).at(-1)).toBe(full.at(-1));
  });

  test('the records equal the Airbyte face\'s for the same config and world', async () => {
    const files = tempFiles({ config: configFor(), catalog: ALL_FULL });
    const airbyte = await runCli(AIRBYTE_CLI, ['read', '--config', files.config, '--catalog', files.catalog]);
    expect(airbyte.code).toBe(0);
    for (const s of ['pipelines', 'workflows', 'jobs']) {
      const a = byKey(s, airbyteRecordsOf(airbyte.messages, s));
      const b = byKey(s, recordsOf(full, s));
      expect(b.size).toBe(a.size);
      for (const [k, v] of a) expect({ s, k, record: b.get(k) }).toEqual({ s, k, record: v });
    }
  });

  test('the discovered catalog re-loads as --properties (older taps\' name of --catalog), selecting everything', async () => {
    // --catalog is what every catalog sync below passes (the discovered catalog, selections changed).
    const catalog = await discover();
    const files = tempFiles({ config: configFor(), catalog });
    const r = await tap(['--config', files.config, '--properties', files.catalog]);
    expect(r.code).toBe(0);
    for (const s of STREAMS) expect(recordsOf(r.messages, s).length).toBe(recordsOf(full, s).length);
    expect(schemasOf(r.messages)).toEqual(schemasOf(full));
  });

  test('a deselected stream produces nothing: no SCHEMA, no RECORD, no bookmark', async () => {
    const catalog = await discover();
    catalog.streams.find((s: Message) => s.tap_stream_id === 'jobs').metadata[0].metadata.selected = false;
    const r = await sync({ catalog });
    expect(r.code).toBe(0);
    expect(schemasOf(r.messages).map((m) => m.stream)).toEqual(['projects', 'pipelines', 'workflows']);
    expect(recordsOf(r.messages, 'jobs')).toEqual([]);
    expect(recordsOf(r.messages, 'workflows').length).toBe(recordsOf(full, 'workflows').length);
    expect(Object.keys(finalState(r.messages).bookmarks).sort()).toEqual(['pipelines', 'workflows']);
  });

  test('a deselected property is absent from SCHEMA and RECORD; keys and replication keys stay', async () => {
    const catalog = await discover();
    const deselect = (stream: string, field: string) => {
      const entry = catalog.streams.find((s: Message) => s.tap_stream_id === stream);
      entry.metadata.find((m: Message) => m.breadcrumb[1] === field).metadata.selected = false;
    };
    deselect('pipelines', 'vcs');
    deselect('pipelines', 'trigger_parameters');
    deselect('pipelines', 'id'); // a key: kept
    deselect('workflows', 'name');
    deselect('workflows', 'created_at'); // the replication key: kept
    deselect('jobs', '_workflow_id'); // a key: kept
    deselect('jobs', 'dependencies');
    // A nested field (Meltano writes breadcrumbs for nested properties too).
    catalog.streams.find((s: Message) => s.tap_stream_id === 'pipelines').metadata.push({ breadcrumb: ['properties', 'trigger', 'properties', 'actor'], metadata: { selected: false } });
    const r = await sync({ catalog });
    expect(r.code).toBe(0);
    const schema = (s: string) => Object.keys(schemasOf(r.messages).find((m) => m.stream === s)!.schema.properties);
    const gone: Record<string, string[]> = { pipelines: ['vcs', 'trigger_parameters'], workflows: ['name'], jobs: ['dependencies'] };
    const kept: Record<string, string[]> = { pipelines: ['id', 'updated_at', 'number'], workflows: ['id', 'created_at', 'status'], jobs: ['id', '_workflow_id', 'name'] };
    for (const s of Object.keys(gone)) {
      for (const f of gone[s]) expect({ s, f, inSchema: schema(s).includes(f) }).toEqual({ s, f, inSchema: false });
      for (const f of kept[s]) expect({ s, f, inSchema: schema(s).includes(f) }).toEqual({ s, f, inSchema: true });
      const records = recordsOf(r.messages, s);
      expect(records.length).toBe(recordsOf(full, s).length);
      expect(records.filter((rec) => gone[s].some((f) => f in rec))).toEqual([]);
      expect(records.every((rec) => kept[s].every((f) => f in rec))).toBe(true);
    }
    const trigger = schemasOf(r.messages).find((m) => m.stream === 'pipelines')!.schema.properties.trigger;
    expect(Object.keys(trigger.properties)).not.toContain('actor');
    expect(Object.keys(trigger.properties)).toContain('type');
    const pipelines = recordsOf(r.messages, 'pipelines');
    expect(pipelines.filter((p) => p.trigger && 'actor' in p.trigger)).toEqual([]);
    expect(pipelines.some((p) => p.trigger && 'type' in p.trigger)).toBe(true);
    expect(recordsOf(full, 'pipelines').some((p) => p.trigger && 'actor' in p.trigger)).toBe(true);
  });

  test('a Meltano catalog: explicit selected everywhere, top-level copies, column selection, FULL_TABLE honoured', async () => {
    const discovered = await discover();
    const catalog = meltanoCatalog(discovered, ['pipelines.*', 'workflows.id', 'workflows.status', '!jobs.*'], {
      pipelines: { 'replication-method': 'FULL_TABLE' },
    });
    // Only the top-level copy says workflows is selected.
    const wf = catalog.streams.find((s: Message) => s.tap_stream_id === 'workflows');
    const wfRoot = wf.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata;
    delete wfRoot.selected;
    wfRoot['selected-by-default'] = false;
    expect(wf.selected).toBe(true);
    // A pipelines bookmark far in the future: FULL_TABLE ignores it for what it emits.
    const future = '2999-01-01T00:00:00.000Z';
    const state = {
      bookmarks: {
        pipelines: { partitions: world.projectSlugs().map((slug) => ({ context: { project_slug: slug }, replication_key: 'updated_at', replication_key_value: future })) },
      },
    };
    const r = await sync({ catalog, state });
    expect(r.code).toBe(0);
    expect(schemasOf(r.messages).map((m) => m.stream)).toEqual(['pipelines', 'workflows']);
    expect(recordsOf(r.messages, 'pipelines').length).toBe(recordsOf(full, 'pipelines').length);
    expect(recordsOf(r.messages, 'jobs')).toEqual([]);
    const workflows = recordsOf(r.messages, 'workflows');
    expect(workflows.length).toBe(recordsOf(full, 'workflows').length);
    expect(new Set(workflows.flatMap((w) => Object.keys(w)))).toEqual(new Set(['id', 'status', 'created_at']));
    // The FULL_TABLE stream's bookmark is still written, and it did not go backwards.
    const final = finalState(r.messages);
    expect(partitionValues(final, 'pipelines')).toEqual(Object.fromEntries(world.projectSlugs().map((s) => [s, future])));
    expect(Object.keys(partitionValues(final, 'workflows')).sort()).toEqual([...world.projectSlugs()].sort());
  });

  test('jobs: INCREMENTAL by _workflow_created_at with a bookmark, FULL_TABLE without one; LOG_BASED is refused', async () => {
    const incremental = await sync({ catalog: meltanoCatalog(await discover(), ['jobs.*'], { jobs: { 'replication-method': 'INCREMENTAL', 'replication-key': '_workflow_created_at' } }) });
    expect(incremental.code).toBe(0);
    expect(recordsOf(incremental.messages, 'jobs').length).toBe(recordsOf(full, 'jobs').length);
    const last = incremental.messages.filter((m) => m.type === 'STATE').at(-1)!.value;
    expect(Object.keys(partitionValues(last, 'jobs')).sort()).toEqual([...world.projectSlugs()].sort());
    const fullTable = await sync({ catalog: meltanoCatalog(await discover(), ['jobs.*'], { jobs: { 'replication-method': 'FULL_TABLE' } }) });
    expect(fullTable.code).toBe(0);
    expect(recordsOf(fullTable.messages, 'jobs').length).toBe(recordsOf(full, 'jobs').length);
    const bad = meltanoCatalog(await discover(), ['pipelines.*'], { pipelines: { 'replication-method': 'LOG_BASED' } });
    const refused = await sync({ catalog: bad });
    expect(refused.code).toBe(1);
    expect(refused.messages).toEqual([]);
    expect(refused.stderr).toMatch(/CRITICAL tap-circleci: Stream "pipelines" has replication-method "LOG_BASED"/);
  });

  test('--test: at most one record per stream; --test=schema: SCHEMA only', async () => {
    mock.resetCounters();
    const r = await sync({ extra: ['--test'] });
    expect(r.code).toBe(0);
    for (const s of STREAMS) expect({ s, n: recordsOf(r.messages, s).length }).toEqual({ s, n: 1 });
    // It stopped early: in-flight requests end, nothing new starts.
    expect(mock.counters.total).toBeLessThan(fullRequests / 2);
    const schemaOnly = await sync({ extra: ['--test=schema'] });
    expect(schemaOnly.code).toBe(0);
    expect(schemaOnly.messages.map((m) => m.type)).toEqual(STREAMS.map(() => 'SCHEMA'));
  });

  test('a catalog selecting nothing syncs nothing and says so', async () => {
    const r = await sync({ catalog: meltanoCatalog(await discover(), ['!*.*']) });
    expect(r.code).toBe(0);
    expect(r.messages).toEqual([]);
    expect(r.stderr).toMatch(/selects no streams/);
  });
});

describe('config', () => {
  test('--config ENV reads TAP_CIRCLECI_* variables', async () => {
    const r = await tap(['--config', 'ENV', '--test'], {
      env: {
        TAP_CIRCLECI_TOKEN: TEST_TOKEN,
        TAP_CIRCLECI_PROJECT_SLUGS: JSON.stringify(world.projectSlugs()),
        TAP_CIRCLECI_START_DATE: startDate.toISOString(),
        TAP_CIRCLECI_BASE_URL: mock.baseUrl,
        TAP_CIRCLECI_MAX_CONCURRENCY: '4',
      },
    });
    expect(r.code).toBe(0);
    for (const s of STREAMS) expect(recordsOf(r.messages, s)).toHaveLength(1);
  });

  test('a tap-circle-ci config (space-separated slugs) works unchanged, merged with a second --config', async () => {
    const files = tempFiles({
      peer: { token: TEST_TOKEN, project_slugs: world.projectSlugs().join(' '), start_date: startDate.toISOString() },
      local: { base_url: mock.baseUrl },
    });
    const r = await tap(['-c', files.peer, `--config=${files.local}`]);
    expect(r.code).toBe(0);
    for (const s of STREAMS) expect(recordsOf(r.messages, s).length).toBe(recordsOf(full, s).length);
    // Later files win.
    const override = tempFiles({ wrong: { base_url: 'http://127.0.0.1:9/api/v2' } });
    const r2 = await tap(['-c', files.peer, '-c', override.wrong, '-c', files.local, '--test']);
    expect(r2.code).toBe(0);
  });

  test('a broken config is one CRITICAL line naming the field; the token never appears', async () => {
    const files = tempFiles({ c: { token: TEST_TOKEN, project_slugs: ['not-a-slug'], base_url: mock.baseUrl } });
    const r = await tap(['--config', files.c]);
    expect(r.code).toBe(1);
    expect(r.messages).toEqual([]);
    expect(r.stderr).toMatch(/CRITICAL tap-circleci: Project slug "not-a-slug"/);
  });
});

describe('state', () => {
  test('rounds of incremental syncs: records at or after where the bookmarks say to emit from, bookmarks never go backwards, the union is complete', async () => {
    const w = new World({ seed: 23, historyDays: 20, pipelinesPerDay: 5 });
    const m = await startMockServer({ world: w, token: TEST_TOKEN, jobPageSize: 4 });
    try {
      const start = new Date(w.now().getTime() - 15 * DAY);
      const config = configFor({ start_date: start.toISOString() }, m, w);
      const union: Record<string, Map<string, Message>> = Object.fromEntries(STREAMS.map((s) => [s, new Map()]));
      let state: Message | undefined;
      for (const step of [0, 6 * HOUR, 30 * HOUR, 3 * HOUR, 72 * HOUR]) {
        w.advance(step);
        const r = await sync({ config, ...(state ? { state } : {}) });
        expect(r.code).toBe(0);
        for (const s of ['pipelines', 'workflows'] as const) {
          const before = partitionValues(state, s);
          const from = emitsFrom(state, s);
          for (const rec of recordsOf(r.messages, s)) {
            const b = from[rec.project_slug];
            if (b !== undefined) expect({ s, id: rec.id, atOrAfter: Date.parse(rec[CURSOR[s]!]) >= b }).toEqual({ s, id: rec.id, atOrAfter: true });
          }
          // Bookmarks never go backwards, in any STATE of the run.
          for (const st of statesOf(r.messages)) {
            for (const [slug, v] of Object.entries(partitionValues(st.value, s))) {
              if (before[slug]) expect({ s, slug, forward: Date.parse(v) >= Date.parse(before[slug]) }).toEqual({ s, slug, forward: true });
            }
          }
        }
        for (const s of STREAMS) byKey(s, recordsOf(r.messages, s), union[s]);
        state = finalState(r.messages);
      }
      const truth = w.groundTruth(start);
      for (const s of STREAMS) {
        const expected = byKey(s, truth[s] as unknown as Message[]);
        expect([...union[s].keys()].sort()).toEqual([...expected.keys()].sort());
        for (const [k, v] of expected) expect({ s, k, record: union[s].get(k) }).toEqual({ s, k, record: v });
      }
    } finally {
      await m.close();
    }
  });

  test('bookmarks of streams not synced in this run are carried through unchanged, in every STATE', async () => {
    const carried = {
      workflows: { partitions: [{ context: { project_slug: world.projectSlugs()[0] }, replication_key: 'created_at', replication_key_value: '2020-01-01T00:00:00.000Z', rescan_from: '2019-12-31T00:00:00.000Z' }] },
      contexts: { replication_key: 'created_at', replication_key_value: '2021-05-05T00:00:00Z' },
      jobs: { partitions: [] },
    };
    const r = await sync({ catalog: meltanoCatalog(await discover(), ['pipelines.*']), state: { bookmarks: carried, currently_syncing: null } });
    expect(r.code).toBe(0);
    expect(statesOf(r.messages).length).toBeGreaterThan(0);
    for (const st of statesOf(r.messages)) {
      expect(st.value.bookmarks.workflows).toEqual(carried.workflows);
      expect(st.value.bookmarks.contexts).toEqual(carried.contexts);
      expect(st.value.bookmarks.jobs).toEqual(carried.jobs);
    }
    expect(Object.keys(partitionValues(finalState(r.messages), 'pipelines')).sort()).toEqual([...world.projectSlugs()].sort());
  });

  test('tap-circle-ci\'s state file is accepted: pipelines per project, workflows from it, converted to partitions', async () => {
    const slugs = world.projectSlugs();
    const pipelines = recordsOf(full, 'pipelines');
    // Each project's bookmark: the median updated_at of its pipelines, in tap-circle-ci's microsecond format.
    const bookmark = (slug: string) => {
      const times = pipelines.filter((p) => p.project_slug === slug).map((p) => p.updated_at as string).sort();
      return times[Math.floor(times.length / 2)].replace(/\.(\d{3})Z$/, '.$1000Z');
    };
    const peerPipelines = Object.fromEntries(slugs.map((s) => [s, bookmark(s)]));
    const newestWorkflow = new Date(world.now().getTime() - 2 * DAY).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    const peerState = {
      currently_syncing: null,
      bookmarks: {
        pipelines: peerPipelines,
        workflows: { '64f4fd25-0000-4000-8000-f5451f14781e': newestWorkflow, '862f7748-0000-4000-8000-42be962288c6': '2020-01-01T00:00:00.000000Z', currently_syncing: null },
        jobs: {},
      },
    };
    const r = await sync({ config: { ...configFor(), project_slugs: slugs.join(' ') }, state: peerState });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/State from tap-circle-ci detected/);
    for (const rec of recordsOf(r.messages, 'pipelines')) expect(Date.parse(rec.updated_at)).toBeGreaterThanOrEqual(Date.parse(peerPipelines[rec.project_slug]));
    const pipelinesCount = recordsOf(r.messages, 'pipelines').length;
    expect(pipelinesCount).toBeGreaterThan(0);
    expect(pipelinesCount).toBeLessThan(pipelines.length);
    for (const rec of recordsOf(r.messages, 'workflows')) {
      const floor = Math.min(Date.parse(peerPipelines[rec.project_slug]), Date.parse(newestWorkflow));
      expect(Date.parse(rec.created_at)).toBeGreaterThanOrEqual(floor);
    }
    expect(recordsOf(r.messages, 'workflows').length).toBeLessThan(recordsOf(full, 'workflows').length);
    expect(recordsOf(r.messages, 'jobs').length).toBe(recordsOf(full, 'jobs').length);
    // Written back as partitions, never behind what tap-circle-ci had.
    const final = finalState(r.messages);
    expect(final.currently_syncing ?? null).toBeNull();
    for (const [slug, v] of Object.entries(partitionValues(final, 'pipelines'))) expect(Date.parse(v)).toBeGreaterThanOrEqual(Date.parse(peerPipelines[slug]));
    expect(Object.keys(partitionValues(final, 'workflows')).sort()).toEqual([...slugs].sort());
    expect(JSON.stringify(final)).not.toContain('64f4fd25');
  });

  test('a state file in a wrong shape is a CRITICAL error naming the problem', async () => {
    const r = await sync({ state: { bookmarks: { pipelines: { partitions: [{ replication_key_value: '2026-01-01T00:00:00Z' }] } } } });
    expect(r.code).toBe(1);
    expect(r.messages).toEqual([]);
    expect(r.stderr).toMatch(/CRITICAL tap-circleci: .*context.project_slug/);
  });
});

describe('stopping', () => {
  let slow: MockServer;
  beforeAll(async () => {
    // The same world, slowly: a full sync takes long enough to be interrupted in the middle.
    slow = await startMockServer({ world, token: TEST_TOKEN, jobPageSize: 3, latencyMs: 15 });
  });
  afterAll(async () => {
    await slow.close();
  });

  test('SIGTERM after the first RECORD ends the tap cleanly: complete lines, no stack trace, STATEs valid', async () => {
    slow.resetCounters();
    let sent = false;
    const r = await tap(['--config', tempFiles({ c: configFor({ max_concurrency: 2 }, slow) }).c], {
      onStdoutLine: (line, kill) => {
        if (!sent && line.includes('"type":"RECORD"')) {
          sent = true;
          kill('SIGTERM');
        }
      },
    });
    expect(sent).toBe(true);
    // Meltano (before 3.4.1) counts `config test` as passed only if the tap dies by the signal.
    expect({ signal: r.signal, code: r.code }).toEqual({ signal: 'SIGTERM', code: null });
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stderr).toMatch(/SIGTERM/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(recordsOf(r.messages, 'jobs').length).toBeLessThan(recordsOf(full, 'jobs').length);
    expect(slow.counters.total).toBeLessThan(fullRequests);
  });

  test('EPIPE: a reader that goes away after three lines ends the tap promptly, with one line on stderr and a non-zero exit', async () => {
    slow.resetCounters();
    const files = tempFiles({ c: configFor({ max_concurrency: 2 }, slow) });
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [SINGER_CLI, '--config', files.c], { stdio: ['ignore', 'pipe', 'pipe'] });
      let lines = 0;
      let stderrText = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        lines += d.split('\n').length - 1;
        if (lines >= 3) child.stdout.destroy();
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderrText += d));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c, stderr: stderrText }));
    });
    // The sync did not complete: say so with the exit code (1), and in words, not with a stack.
    expect(code).toBe(1);
    expect(stderr).toMatch(/stdout was closed by its reader/);
    expect(stderr).not.toMatch(/EPIPE|Error:|\n\s+at /);
    expect(stderr).not.toContain(TEST_TOKEN);
    expect(slow.counters.total).toBeLessThan(fullRequests / 2);
  });
});

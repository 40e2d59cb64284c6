/**
 * What Airbyte's Connector Acceptance Tests check beyond CAT 0.11.5. .ci/run (and
 * `npm run test:acceptance:cat`) runs the real CAT 0.11.5 against the image; this module adds
 * what newer CATs and the current protocol check and 0.11.5 does not, so that together they
 * cover the current CAT: validate_state_messages (sourceStats.recordCount exact),
 * validate_stream_statuses, test_primary_keys_data_type, is_resumable, and the newer forms of
 * test_two_sequential_reads and test_read_sequential_slices. Plus the project's own rules on
 * every run: each stdout line a valid AirbyteMessage of the current protocol, no token anywhere.
 *
 * - The checks are pure functions over messages, catalogs and specs; each returns the problems it
 *   found (empty: the rule holds). test/acceptance-rules.test.ts feeds each one a deliberately
 *   broken fixture to show it fails.
 * - `planAcceptance` turns acceptance-test-config.yml into a list of named checks; a check runs
 *   the connector as it needs through an `AcceptanceContext` (reads are shared between checks).
 * - Where CAT reads secrets/config.json, the context starts the bundled mock CircleCI API
 *   (integration_tests/acceptance_mock.json: fixed seed and clock) and hands the connector
 *   integration_tests/sample_config.json with the mock's token and base_url. Other config files
 *   (incremental_config.json) are sent to the mock too: it stands in for circleci.com.
 *
 * Nothing here reads outside the repository.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';
import { startMockServer, type MockServer } from '../../mock/server.js';
import { World } from '../../mock/world.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;
export type Message = Record<string, Json>;
/** What a check found wrong; empty when its rule holds. */
export type Problems = string[];

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CONFIG_FILE = join(ROOT, 'acceptance-test-config.yml');

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const newAjv = () => addFormats(new Ajv({ allErrors: true, strict: false, validateSchema: false }));
const ajv = newAjv();
const messageValidator = ajv.compile(JSON.parse(readFileSync(join(ROOT, 'test/schemas/airbyte-message.schema.json'), 'utf8')));

/** ajv's errors, naming the offending property of additionalProperties errors. */
const errorsText = (errors: Json[] | null | undefined) =>
  (errors ?? [])
    .slice(0, 3)
    .map((e) => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`)
    .join('; ');

const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const short = (v: unknown, n = 160) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > n ? `${s.slice(0, n)}…` : s;
};
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Every occurrence of `key` anywhere in `node` (like dpath's `**\/key`), with its path. */
export function findKey(node: Json, key: string, path: string[] = []): Array<{ path: string[]; value: Json; parent: Record<string, Json> }> {
  const out: Array<{ path: string[]; value: Json; parent: Record<string, Json> }> = [];
  if (Array.isArray(node)) node.forEach((v, i) => out.push(...findKey(v, key, [...path, String(i)])));
  else if (isObject(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push({ path: [...path, k], value: v, parent: node });
      out.push(...findKey(v, key, [...path, k]));
    }
  }
  return out;
}


/** Whether `fieldPath` (["a","b"]) is declared under the schema's properties (through oneOf/anyOf variants too). */
export function schemaHasPath(schema: Json, fieldPath: string[]): boolean {
  if (fieldPath.length === 0) return true;
  if (!isObject(schema)) return false;
  const [head, ...rest] = fieldPath;
  if (isObject(schema.properties) && head in schema.properties && schemaHasPath(schema.properties[head], rest)) return true;
  for (const k of ['oneOf', 'anyOf']) if (Array.isArray(schema[k]) && schema[k].some((v: Json) => schemaHasPath(v, fieldPath))) return true;
  return false;
}


// =================================================================================================
// Output of one connector run

export interface RunOutput {
  command: string;
  code: number | null;
  stdout: string;
  stderr: string;
  messages: Message[];
  /** stdout lines that are not JSON objects (the platform would treat them as logs). */
  nonJson: string[];
  ms: number;
}

export function parseOutput(command: string, stdout: string, stderr: string, code: number | null, ms: number): RunOutput {
  const messages: Message[] = [];
  const nonJson: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const m = JSON.parse(line);
      if (isObject(m)) messages.push(m);
      else nonJson.push(line);
    } catch {
      nonJson.push(line);
    }
  }
  return { command, code, stdout, stderr, messages, nonJson, ms };
}

export const ofType = (messages: Message[], type: string) => messages.filter((m) => m.type === type);
export const recordsOf = (messages: Message[]) => ofType(messages, 'RECORD').map((m) => m.record as Message);
export const statesOf = (messages: Message[]) => ofType(messages, 'STATE');
const streamOfState = (m: Message): string | undefined => m.state?.stream?.stream_descriptor?.name;

// =================================================================================================
// Protocol (the project's own rules, applied to every run)

/** Every stdout line is one valid AirbyteMessage (test/schemas/airbyte-message.schema.json); no secret appears anywhere. */
export function checkProtocol(out: RunOutput, secrets: string[] = []): Problems {
  const problems: Problems = [];
  for (const l of out.nonJson.slice(0, 3)) problems.push(`${out.command}: stdout line is not a JSON object: ${short(l)}`);
  for (const m of out.messages) {
    if (!messageValidator(m)) {
      problems.push(`${out.command}: invalid AirbyteMessage ${short(m)}: ${ajv.errorsText(messageValidator.errors)}`);
      if (problems.length > 5) break;
    }
  }
  for (const s of secrets) if (s && (out.stdout.includes(s) || out.stderr.includes(s))) problems.push(`${out.command}: a secret from the config appears in the output`);
  return problems;
}

export function checkExitCode(out: RunOutput, expected: 0 | 'non-zero' = 0): Problems {
  if (expected === 0 && out.code !== 0) return [`${out.command} exited with ${out.code}: ${short(out.stderr.trim().split('\n').slice(-3).join(' | '), 400)}`];
  if (expected === 'non-zero' && out.code === 0) return [`${out.command} exited with 0`];
  return [];
}

// =================================================================================================
// spec: the fixtures' configs against the spec (CAT checks only secrets/config.json)

/** test_config_match_spec: the config validates against connectionSpecification (keys starting with _ ignored). */
export function checkConfigMatchesSpec(connectionSpecification: Json, config: Json, label = 'config'): Problems {
  const cleaned = isObject(config) ? Object.fromEntries(Object.entries(config).filter(([k]) => !k.startsWith('_'))) : config;
  let validate;
  try {
    validate = newAjv().compile(connectionSpecification);
  } catch (e) {
    return [`connectionSpecification does not compile: ${(e as Error).message}`];
  }
  return validate(cleaned) ? [] : [`${label} does not match the spec: ${errorsText(validate.errors)}`];
}

// ----- image (test_image_labels, test_image_environment_variables, the Docker contract)

export interface ImageInfo {
  labels: Record<string, string>;
  env: Record<string, string>;
  entrypoint: string[];
  user: string;
  architecture?: string;
}

/** io.airbyte.name == metadata dockerRepository; io.airbyte.version == metadata dockerImageTag. */
export function checkImageLabels(image: ImageInfo, metadata: Json): Problems {
  const data = metadata?.data ?? {};
  const problems: Problems = [];
  if (image.labels['io.airbyte.name'] !== data.dockerRepository) {
    problems.push(`label io.airbyte.name is ${short(image.labels['io.airbyte.name'])}, metadata.yaml dockerRepository is ${short(data.dockerRepository)}`);
  }
  if (image.labels['io.airbyte.version'] !== String(data.dockerImageTag)) {
    problems.push(`label io.airbyte.version is ${short(image.labels['io.airbyte.version'])}, metadata.yaml dockerImageTag is ${short(data.dockerImageTag)}`);
  }
  return problems;
}

/** AIRBYTE_ENTRYPOINT is set and equals the entrypoint joined by spaces; the entrypoint's program is an absolute path; the user is airbyte. */
export function checkImageEntrypoint(image: ImageInfo): Problems {
  const problems: Problems = [];
  const joined = image.entrypoint.join(' ');
  if (!image.entrypoint.length) problems.push('the image has no ENTRYPOINT');
  if (image.env.AIRBYTE_ENTRYPOINT === undefined) problems.push('ENV AIRBYTE_ENTRYPOINT is not set');
  else if (image.env.AIRBYTE_ENTRYPOINT !== joined) problems.push(`AIRBYTE_ENTRYPOINT is ${short(image.env.AIRBYTE_ENTRYPOINT)}, the ENTRYPOINT is ${short(joined)}`);
  const script = image.entrypoint.find((a) => /\.(m?js|py|sh)$/.test(a)) ?? image.entrypoint[0];
  if (script && !isAbsolute(script)) problems.push(`the entrypoint ${short(script)} is not an absolute path`);
  if (image.user !== 'airbyte') problems.push(`the image runs as ${short(image.user || 'root')}, not as the user airbyte`);
  return problems;
}

// =================================================================================================
// discovery: what newer CATs and the current protocol ask of the catalog, and CAT 0.11.5 does not

/** Newer CAT's test_primary_keys_data_type: a primary-key field is not of type object or array. */
export function checkPrimaryKeyTypes(streams: Json[]): Problems {
  const problems: Problems = [];
  for (const s of streams) {
    for (const pk of s.source_defined_primary_key ?? []) {
      const field = (pk as string[]).reduce((node: Json, k: string) => node?.properties?.[k], s.json_schema);
      const types = ([] as string[]).concat(field?.type ?? []);
      if (!field) problems.push(`${s.name}: primary key ${short(pk)} is not in the schema`);
      else if (types.some((t) => t === 'object' || t === 'array')) problems.push(`${s.name}: primary key ${short(pk)} is of type ${short(field.type)}`);
    }
  }
  return problems;
}

/**
 * is_resumable (airbyte-protocol 0.10+; the platform keeps a full-refresh stream's state between
 * the attempts of a job only when it is set): every stream states it; a stream that supports
 * incremental is resumable ("should be set to true if the stream supports incremental"); a
 * resumable stream sets source_defined_cursor.
 */
export function checkResumable(streams: Json[]): Problems {
  const problems: Problems = [];
  for (const s of streams) {
    if (typeof s.is_resumable !== 'boolean') problems.push(`${s.name}: is_resumable is not declared`);
    if (s.supported_sync_modes?.includes('incremental') && s.is_resumable !== true) problems.push(`${s.name}: supports incremental but is not is_resumable`);
    if (s.is_resumable === true && typeof s.source_defined_cursor !== 'boolean') problems.push(`${s.name}: is_resumable without source_defined_cursor`);
  }
  return problems;
}

// =================================================================================================
// configured catalogs

/** CAT's catalog for basic_read at high strictness: every discovered stream, its first sync mode, its own cursor and key. */
export function catalogFromDiscovery(streams: Json[]): Json {
  return {
    streams: streams.map((s) => ({
      stream: s,
      sync_mode: s.supported_sync_modes[0],
      destination_sync_mode: 'append',
      ...(s.default_cursor_field ? { cursor_field: s.default_cursor_field } : {}),
      ...(s.source_defined_primary_key ? { primary_key: s.source_defined_primary_key } : {}),
    })),
  };
}

/** A custom configured catalog with each stream's json_schema (and declarations) taken from discovery. */
export function completeCatalog(custom: Json, discovered: Json[]): { catalog: Json; problems: Problems } {
  const byName = new Map(discovered.map((s) => [s.name, s]));
  const problems: Problems = [];
  const streams = [];
  for (const cs of custom?.streams ?? []) {
    const d = byName.get(cs.stream?.name);
    if (!d) {
      problems.push(`the configured catalog names stream ${short(cs.stream?.name)}, which discover does not list`);
      continue;
    }
    streams.push({ ...cs, stream: { ...cs.stream, json_schema: d.json_schema } });
  }
  return { catalog: { streams }, problems };
}

/** A configured catalog agrees with discovery: known streams, supported modes, cursors and keys that exist. */
export function checkConfiguredCatalog(custom: Json, discovered: Json[], label: string): Problems {
  const byName = new Map(discovered.map((s) => [s.name, s]));
  const problems: Problems = [];
  if (!Array.isArray(custom?.streams) || custom.streams.length === 0) return [`${label}: no streams`];
  for (const cs of custom.streams) {
    const name = cs.stream?.name;
    const d = byName.get(name);
    if (!d) {
      problems.push(`${label}: stream ${short(name)} is not in the discovered catalog`);
      continue;
    }
    if (!d.supported_sync_modes.includes(cs.sync_mode)) problems.push(`${label}: ${name} asks for ${cs.sync_mode}, which it does not support`);
    if (!['append', 'overwrite', 'append_dedup', 'update', 'soft_delete'].includes(cs.destination_sync_mode)) problems.push(`${label}: ${name} has destination_sync_mode ${short(cs.destination_sync_mode)}`);
    if (cs.sync_mode === 'incremental') {
      const cursor = cs.cursor_field ?? d.default_cursor_field;
      if (!cursor?.length) problems.push(`${label}: incremental ${name} has no cursor`);
      else if (!schemaHasPath(d.json_schema, cursor)) problems.push(`${label}: ${name} cursor ${short(cursor)} is not in the stream schema`);
      else if (d.source_defined_cursor && d.default_cursor_field && JSON.stringify(cursor) !== JSON.stringify(d.default_cursor_field)) {
        problems.push(`${label}: ${name} sets cursor ${short(cursor)} but the source defines ${short(d.default_cursor_field)}`);
      }
    }
    for (const pk of cs.primary_key ?? []) if (!schemaHasPath(d.json_schema, pk)) problems.push(`${label}: ${name} primary key ${short(pk)} is not in the stream schema`);
    if (d.source_defined_primary_key && cs.primary_key && JSON.stringify(cs.primary_key) !== JSON.stringify(d.source_defined_primary_key)) {
      problems.push(`${label}: ${name} primary key ${short(cs.primary_key)} differs from the source's ${short(d.source_defined_primary_key)}`);
    }
  }
  return problems;
}

// =================================================================================================
// basic_read: validate_state_messages and validate_stream_statuses (newer CATs; 0.11.5 ignores both keys)

/** Canonical JSON: keys sorted, for set comparisons. */
export function canonical(v: Json): Json {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}

/** validate_state_messages: at least one STATE per configured stream, none LEGACY, a stream_descriptor and sourceStats on each. */
export function checkStateMessages(messages: Message[], catalog: Json): Problems {
  const problems: Problems = [];
  const states = statesOf(messages);
  const configured: string[] = catalog.streams.map((s: Json) => s.stream.name);
  if (states.length < configured.length) problems.push(`${states.length} STATE message(s) for ${configured.length} configured streams`);
  for (const name of configured) if (!states.some((m) => streamOfState(m) === name)) problems.push(`stream ${name} never emitted a STATE`);
  for (const m of states) {
    const type = m.state?.type ?? 'LEGACY';
    if (type === 'LEGACY') problems.push(`a LEGACY state was emitted: ${short(m.state)}`);
    else if (type === 'STREAM' && !isObject(m.state.stream?.stream_descriptor)) problems.push(`a STREAM state without stream.stream_descriptor: ${short(m.state)}`);
    if (!isObject(m.state?.sourceStats) || typeof m.state.sourceStats.recordCount !== 'number') problems.push(`a STATE without sourceStats.recordCount: ${short(m.state)}`);
  }
  // recordCount is the number of the stream's records since its previous STATE (the platform checks it against what it received).
  const since = new Map<string, number>();
  for (const m of messages) {
    if (m.type === 'RECORD') since.set(m.record.stream, (since.get(m.record.stream) ?? 0) + 1);
    else if (m.type === 'STATE' && streamOfState(m)) {
      const name = streamOfState(m)!;
      const count = m.state?.sourceStats?.recordCount;
      if (typeof count === 'number' && count !== (since.get(name) ?? 0)) problems.push(`${name}: a STATE says recordCount ${count}, but ${since.get(name) ?? 0} record(s) came since the previous one`);
      since.set(name, 0);
    }
  }
  return [...new Set(problems)];
}

/** validate_stream_statuses: per configured stream STARTED, RUNNING (as many as it likes, at least one when it has records), then COMPLETE. */
export function checkStreamStatuses(messages: Message[], catalog: Json): Problems {
  const problems: Problems = [];
  const records = recordsOf(messages);
  for (const s of catalog.streams) {
    const name = s.stream.name;
    const statuses = messages
      .filter((m) => m.type === 'TRACE' && m.trace?.type === 'STREAM_STATUS' && m.trace.stream_status?.stream_descriptor?.name === name)
      .map((m) => m.trace.stream_status.status as string);
    const shape = statuses.join(',');
    if (!/^STARTED(,RUNNING)*,COMPLETE$/.test(shape)) problems.push(`${name}: stream statuses ${shape || '(none)'}, expected STARTED, RUNNING…, COMPLETE`);
    else if (records.some((r) => r.stream === name) && !statuses.includes('RUNNING')) problems.push(`${name}: records but no RUNNING status`);
  }
  return problems;
}

// =================================================================================================
// incremental: newer CATs' test_two_sequential_reads (the second read differs) and
// test_read_sequential_slices (re-reads from checkpoints, counted by sourceStats); CAT 0.11.5's
// versions of both look for a cursor in the state instead

/** The state a platform passes to the next read: the last STATE of each stream (STREAM form), as an array. */
export function assembleState(messages: Message[], previous: Record<string, Json> = {}): Message[] {
  const byStream = new Map<string, Json>(Object.entries(previous));
  for (const m of statesOf(messages)) {
    const name = streamOfState(m);
    if (name && m.state.stream.stream_state) byStream.set(name, m.state.stream.stream_state);
  }
  return [...byStream].map(([name, stream_state]) => ({ type: 'STREAM', stream: { stream_descriptor: { name }, stream_state } }));
}

/**
 * The same records, in any order. CAT's naive_diff_records is order-sensitive, so a connector
 * whose concurrent output merely comes out in another order would pass it; this does not.
 */
export function sameRecords(a: Message[], b: Message[]): boolean {
  const key = (rs: Message[]) => rs.map((r) => JSON.stringify(canonical({ stream: r.stream, data: r.data }))).sort();
  return a.length === b.length && JSON.stringify(key(a)) === JSON.stringify(key(b));
}

/** test_two_sequential_reads: the first read has records and a STATE; the second, from its state, produces different data. */
export function checkTwoSequentialReads(first: Message[], second: Message[]): Problems {
  const problems: Problems = [];
  if (statesOf(first).length === 0) problems.push('the first incremental read emitted no STATE');
  if (recordsOf(first).length === 0) problems.push('the first incremental read emitted no records');
  if (problems.length === 0 && sameRecords(recordsOf(first), recordsOf(second))) problems.push('the read from the saved state produced exactly the records of the first read: the state had no effect');
  return problems;
}

const stateValue = (m: Message) => JSON.stringify(m.state?.stream ? m.state.stream.stream_state : m.state);
const countOf = (m: Message): number => m.state?.sourceStats?.recordCount ?? 0;

/**
 * CAT's _get_unique_state_messages_with_record_count: collapse runs of identical consecutive
 * states (summing their counts), drop zero-count ones, and pair each remaining checkpoint with the
 * number of records a read from it must still produce (the records counted after it).
 */
export function checkpointsWithExpectedCounts(states: Message[]): Array<{ state: Message; count: number; expected: number }> {
  let unique: Array<{ state: Message; count: number }>;
  if (states.length <= 1) unique = states.filter((s) => countOf(s)).map((s) => ({ state: s, count: countOf(s) }));
  else {
    unique = [];
    let cur = 0;
    while (cur < states.length - 1) {
      let next = cur + 1;
      while (stateValue(states[cur]) === stateValue(states[next]) && next < states.length - 1) next++;
      unique.push({ state: states[cur], count: sum(states.slice(cur, next).map(countOf)) });
      if (next === states.length - 1 && stateValue(states[cur]) !== stateValue(states[next])) unique.push({ state: states[next], count: countOf(states[next]) });
      cur = next;
    }
  }
  const nonZero = unique.filter((u) => u.count);
  const total = sum(nonZero.map((u) => u.count));
  return nonZero.map((u, i) => ({ ...u, expected: total - sum(nonZero.slice(0, i + 1).map((x) => x.count)) }));
}

/** CAT's batch selector: with fewer than 3 checkpoints only the last; else about 5 spread over them, from the second on. */
export function selectCheckpoints<T>(checkpoints: T[]): T[] {
  if (checkpoints.length < 3) return checkpoints.slice(-1);
  const rate = Math.floor(checkpoints.length / 5) || 1;
  const out: T[] = [];
  for (let i = 1; i < checkpoints.length; i += rate) out.push(checkpoints[i]);
  return out;
}

/** test_read_sequential_slices, one re-read: at least the records counted after the checkpoint, and not the first read's records again. */
export function checkSliceReread(firstRecords: Message[], rereadRecords: Message[], expected: number, label: string): Problems {
  const problems: Problems = [];
  if (rereadRecords.length < expected) problems.push(`${label}: ${rereadRecords.length} record(s), but ${expected} were counted after this checkpoint`);
  if (sameRecords(firstRecords, rereadRecords)) problems.push(`${label}: the re-read produced exactly the first read's records`);
  return problems;
}

// =================================================================================================
// The test configuration and the fixtures

export const SUITES = ['spec', 'connection', 'discovery', 'basic_read', 'full_refresh', 'incremental'] as const;
export type Suite = (typeof SUITES)[number];

export interface TestConfig {
  connector_image: string;
  test_strictness_level?: string;
  acceptance_tests: Partial<Record<Suite, { tests?: Json[]; bypass_reason?: string }>>;
}

export function loadTestConfig(path = CONFIG_FILE): TestConfig {
  return YAML.parse(readFileSync(path, 'utf8'));
}

export function loadMetadata(root = ROOT): Json {
  return YAML.parse(readFileSync(join(root, 'metadata.yaml'), 'utf8'));
}

export interface Fixtures {
  spec: Json;
  sampleConfig: Json;
  invalidConfig: Json;
  configuredCatalog: Json;
  incrementalCatalog: Json;
  sampleState: Json;
  abnormalState: Json;
  expectedRecords: Array<{ stream: string; data: Json; emitted_at?: number }>;
  now: Date;
  /** The organization id of each project of the acceptance world. */
  orgOf: Record<string, string>;
}

/** Streams whose state is kept per organization id (usage export), not per project slug. */
const PER_ORGANIZATION = new Set(['usage']);

/** The integration_tests files agree with each other and with discovery. */
export function checkFixtures(f: Fixtures, discovered: Json[]): Problems {
  const problems: Problems = [];
  const cs = f.spec?.connectionSpecification;
  problems.push(...checkConfigMatchesSpec(cs, f.sampleConfig, 'sample_config.json'));
  // invalid_config.json is well-formed: its connection fails on the credentials, not on a typo.
  problems.push(...checkConfigMatchesSpec(cs, f.invalidConfig, 'invalid_config.json'));
  problems.push(...checkConfiguredCatalog(f.configuredCatalog, discovered, 'configured_catalog.json'));
  problems.push(...checkConfiguredCatalog(f.incrementalCatalog, discovered, 'incremental_catalog.json'));
  const discoveredNames = discovered.map((s) => s.name);
  const fullNames = (f.configuredCatalog?.streams ?? []).map((s: Json) => s.stream?.name);
  for (const n of discoveredNames) if (!fullNames.includes(n)) problems.push(`configured_catalog.json leaves out stream ${n}`);
  const incremental = (f.incrementalCatalog?.streams ?? []).filter((s: Json) => s.sync_mode === 'incremental');
  if (!incremental.length) problems.push('incremental_catalog.json has no incremental stream');
  for (const s of f.incrementalCatalog?.streams ?? []) if (s.sync_mode !== 'incremental') problems.push(`incremental_catalog.json: ${s.stream?.name} is not incremental`);
  const projects: string[] = Array.isArray(f.sampleConfig?.project_slugs) ? f.sampleConfig.project_slugs : [];
  const orgs = [...new Set(projects.map((slug) => f.orgOf[slug]).filter(Boolean))];
  for (const [label, state, future] of [['sample_state.json', f.sampleState, false], ['abnormal_state.json', f.abnormalState, true]] as const) {
    if (!Array.isArray(state)) {
      problems.push(`${label} is not an array of STREAM state messages`);
      continue;
    }
    for (const s of incremental) {
      const name = s.stream.name;
      const entry = state.find((m: Json) => m?.stream?.stream_descriptor?.name === name);
      if (!entry) {
        problems.push(`${label} has no state for incremental stream ${name}`);
        continue;
      }
      if (entry.type !== 'STREAM') problems.push(`${label}: ${name} is not a STREAM state`);
      const cursor = (s.cursor_field ?? discovered.find((d) => d.name === name)?.default_cursor_field ?? [])[0];
      const perProject = entry.stream.stream_state ?? {};
      const slugs = PER_ORGANIZATION.has(name) ? orgs : projects;
      for (const slug of slugs) {
        const value = perProject[slug]?.[cursor];
        if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
          problems.push(`${label}: ${name} has no ${cursor} date-time for ${PER_ORGANIZATION.has(name) ? 'organization' : 'project'} ${slug}`);
          continue;
        }
        const t = Date.parse(value);
        if (future && t <= f.now.getTime() + 365 * 86_400_000) problems.push(`${label}: ${name} ${slug} ${cursor} ${value} is not far in the future`);
        if (!future && t > f.now.getTime()) problems.push(`${label}: ${name} ${slug} ${cursor} ${value} is after the acceptance world's clock`);
      }
      for (const slug of Object.keys(perProject)) if (!slugs.includes(slug)) problems.push(`${label}: ${name} has a state for ${slug}, which sample_config.json does not sync`);
    }
    for (const m of state) {
      const name = m?.stream?.stream_descriptor?.name;
      if (!incremental.some((s: Json) => s.stream.name === name)) problems.push(`${label}: a state for ${short(name)}, which incremental_catalog.json does not sync incrementally`);
    }
  }
  if (!f.expectedRecords.length) problems.push('expected_records.jsonl is empty');
  for (const [i, e] of f.expectedRecords.entries()) {
    if (!isObject(e) || typeof e.stream !== 'string' || !isObject(e.data) || typeof e.emitted_at !== 'number') {
      problems.push(`expected_records.jsonl line ${i + 1} is not {"stream", "data", "emitted_at"}`);
      break;
    }
    if (!discoveredNames.includes(e.stream)) {
      problems.push(`expected_records.jsonl line ${i + 1}: unknown stream ${e.stream}`);
      break;
    }
  }
  return problems;
}

export function loadFixtures(root = ROOT): Fixtures {
  const read = (p: string) => JSON.parse(readFileSync(join(root, p), 'utf8'));
  const env = read('integration_tests/acceptance_mock.json');
  const world = acceptanceWorld(env);
  return {
    spec: read('integration_tests/spec.json'),
    sampleConfig: read('integration_tests/sample_config.json'),
    invalidConfig: read('integration_tests/invalid_config.json'),
    configuredCatalog: read('integration_tests/configured_catalog.json'),
    incrementalCatalog: read('integration_tests/incremental_catalog.json'),
    sampleState: read('integration_tests/sample_state.json'),
    abnormalState: read('integration_tests/abnormal_state.json'),
    expectedRecords: readJsonl(join(root, 'integration_tests/expected_records.jsonl')),
    now: new Date(env.now),
    orgOf: Object.fromEntries(world.projectSlugs().map((slug) => [slug, world.project(slug)!.organization_id])),
  };
}

export function readJsonl(path: string): Json[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// =================================================================================================
// Running the connector

export type Command = 'spec' | 'check' | 'discover' | 'read';
export interface Inputs {
  config?: Json;
  catalog?: Json;
  state?: Json;
}

export interface Connector {
  readonly kind: 'image' | 'local';
  readonly name: string;
  run(command: Command, inputs?: Inputs, opts?: { timeoutMs?: number }): Promise<RunOutput>;
  /** The image's labels, env, entrypoint and user (undefined for the local CLI). */
  inspect(): Promise<ImageInfo | undefined>;
}

/** Writes the inputs as JSON files into a fresh folder readable by anyone (the image's airbyte user is not the owner). */
function writeInputs(inputs: Inputs): { dir: string; names: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'source-circleci-acceptance-'));
  chmodSync(dir, 0o755);
  const names: Record<string, string> = {};
  for (const [k, v] of Object.entries(inputs)) {
    if (v === undefined) continue;
    names[k] = `${k}.json`;
    writeFileSync(join(dir, names[k]), typeof v === 'string' ? v : JSON.stringify(v), { mode: 0o644 });
  }
  return { dir, names };
}

function argsFor(command: Command, names: Record<string, string>, at: string): string[] {
  const args: string[] = [command];
  for (const k of ['config', 'catalog', 'state']) if (names[k]) args.push(`--${k}`, `${at}/${names[k]}`);
  return args;
}

function collect(file: string, args: string[], command: string, timeoutMs: number, onTimeout: () => void, env?: NodeJS.ProcessEnv): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[acceptance] ${command} timed out after ${timeoutMs} ms\n`;
      onTimeout();
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(parseOutput(command, stdout, stderr, code, Date.now() - started));
    });
  });
}

export const DEFAULT_TIMEOUT_MS = 300_000;

/** The built CLI, dist/cli/airbyte.js, run with Node. */
export class LocalConnector implements Connector {
  readonly kind = 'local' as const;
  readonly name: string;
  constructor(readonly cli = join(ROOT, 'dist/cli/airbyte.js')) {
    this.name = `node ${cli}`;
  }
  async run(command: Command, inputs: Inputs = {}, opts: { timeoutMs?: number } = {}): Promise<RunOutput> {
    if (!existsSync(this.cli)) throw new Error(`${this.cli} is missing: run npm run build`);
    const { dir, names } = writeInputs(inputs);
    try {
      return await collect(process.execPath, [this.cli, ...argsFor(command, names, dir)], command, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  async inspect(): Promise<undefined> {
    return undefined;
  }
}

/** The image, as Airbyte runs it: `docker run --rm`, inputs mounted read-only at /secrets, the host's network (the mock listens on 127.0.0.1). */
export class ImageConnector implements Connector {
  readonly kind = 'image' as const;
  constructor(readonly name: string, readonly extraRunArgs: string[] = []) {}
  async run(command: Command, inputs: Inputs = {}, opts: { timeoutMs?: number } = {}): Promise<RunOutput> {
    const { dir, names } = writeInputs(inputs);
    const container = `source-circleci-acceptance-${randomBytes(4).toString('hex')}`;
    const args = ['run', '--rm', '--name', container, '--network', 'host', '-v', `${dir}:/secrets:ro`, ...this.extraRunArgs, this.name, ...argsFor(command, names, '/secrets')];
    try {
      return await collect('docker', args, command, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => spawnSync('docker', ['rm', '-f', container]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  async inspect(): Promise<ImageInfo> {
    return inspectImage(this.name);
  }
}

export function inspectImage(image: string): ImageInfo {
  const r = spawnSync('docker', ['image', 'inspect', image], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker image inspect ${image} failed: ${r.stderr.trim()} (build it: npm run docker:build)`);
  const [info] = JSON.parse(r.stdout);
  const env: Record<string, string> = {};
  for (const e of info.Config.Env ?? []) {
    const i = e.indexOf('=');
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  return { labels: info.Config.Labels ?? {}, env, entrypoint: info.Config.Entrypoint ?? [], user: info.Config.User ?? '', architecture: info.Architecture };
}

// =================================================================================================
// The mock CircleCI account the checks run against

export interface AcceptanceEnv {
  seed: number;
  now: string;
  history_days: number;
  pipelines_per_day: number;
  token: string;
  config: string;
  /** The account's usage export: creates allowed per organization and hour, polls until an export is ready. */
  usage: { creates_per_hour: number; ready_after_polls: number };
}

/** The mock's options for the acceptance account, beyond its world. */
export const acceptanceMockOptions = (env: AcceptanceEnv) => ({
  usage: { createLimit: { count: env.usage.creates_per_hour, windowMs: 3_600_000 }, readyAfterPolls: env.usage.ready_after_polls },
});

export function loadAcceptanceEnv(root = ROOT): AcceptanceEnv {
  return JSON.parse(readFileSync(join(root, 'integration_tests/acceptance_mock.json'), 'utf8'));
}

export function acceptanceWorld(env = loadAcceptanceEnv()): World {
  return new World({ seed: env.seed, now: new Date(env.now), historyDays: env.history_days, pipelinesPerDay: env.pipelines_per_day });
}

export interface AcceptanceMock {
  server: MockServer;
  env: AcceptanceEnv;
  /** secrets/config.json: the sample config with the mock's token and base_url. */
  secretsConfig: Json;
  close(): Promise<void>;
}

export async function startAcceptanceMock(opts: { latencyMs?: number; root?: string } = {}): Promise<AcceptanceMock> {
  const root = opts.root ?? ROOT;
  const env = loadAcceptanceEnv(root);
  const server = await startMockServer({ world: acceptanceWorld(env), ...acceptanceMockOptions(env), token: env.token, host: '127.0.0.1', port: 0, latencyMs: opts.latencyMs });
  const sample = JSON.parse(readFileSync(join(root, env.config), 'utf8'));
  return { server, env, secretsConfig: { ...sample, token: env.token, base_url: server.baseUrl }, close: () => server.close() };
}

// =================================================================================================
// The plan: acceptance-test-config.yml → named checks

export interface Outcome {
  problems: Problems;
  warnings?: Problems;
  /** Why the check did not run (not a failure). */
  skipped?: string;
}

export interface PlannedCheck {
  suite: Suite | 'config';
  name: string;
  run(ctx: AcceptanceContext): Promise<Outcome>;
}

/** What a plan runs against: the connector, the mock, and memoised runs shared between checks. */
export class AcceptanceContext {
  private readonly memo = new Map<string, Promise<unknown>>();
  readonly metadata: Json;

  constructor(
    readonly connector: Connector,
    readonly mock: AcceptanceMock,
    readonly cfg: TestConfig = loadTestConfig(),
    readonly base = ROOT,
  ) {
    this.metadata = loadMetadata(base);
  }

  once<T>(key: string, fn: () => Promise<T>): Promise<T> {
    if (!this.memo.has(key)) this.memo.set(key, fn());
    return this.memo.get(key) as Promise<T>;
  }

  /** A config file named in the test config: secrets/ is the mock's config; any other goes to the mock as well (it stands in for circleci.com). */
  config(path: string): Json {
    if (path.startsWith('secrets/')) return this.mock.secretsConfig;
    const c = this.json(path);
    return { ...c, base_url: this.mock.server.baseUrl };
  }

  json(path: string): Json {
    return JSON.parse(readFileSync(join(this.base, path), 'utf8'));
  }

  get secrets(): string[] {
    return [this.mock.env.token];
  }

  /** Runs the connector; the project's protocol rules (valid messages, no secrets) are checked on every run. */
  async run(command: Command, inputs: Inputs = {}, timeoutMs?: number): Promise<{ out: RunOutput; protocol: Problems }> {
    const out = await this.connector.run(command, inputs, { timeoutMs });
    return { out, protocol: checkProtocol(out, this.secrets) };
  }

  spec(): Promise<{ out: RunOutput; protocol: Problems }> {
    return this.once('spec', () => this.run('spec'));
  }

  discover(configPath = 'secrets/config.json'): Promise<{ out: RunOutput; protocol: Problems; streams: Json[] }> {
    return this.once(`discover:${configPath}`, async () => {
      const r = await this.run('discover', { config: this.config(configPath) });
      const streams = ofType(r.out.messages, 'CATALOG')[0]?.catalog?.streams ?? [];
      return { ...r, streams };
    });
  }
}

const outcome = (problems: Problems, warnings?: Problems): Outcome => ({ problems: [...new Set(problems)], warnings });

/**
 * The checks that complete Airbyte's CAT 0.11.5 (which `npm run test:acceptance:cat` runs) to what
 * current CATs and the current protocol check, driven by acceptance-test-config.yml. Each name
 * says where its rule comes from. Every run is also held to the project's own rules: each stdout
 * line a valid AirbyteMessage of the current protocol, and no token anywhere in the output.
 */
export function planAcceptance(cfg: TestConfig = loadTestConfig(), metadata: Json = loadMetadata()): PlannedCheck[] {
  const plan: PlannedCheck[] = [];
  const add = (suite: PlannedCheck['suite'], name: string, run: PlannedCheck['run']) => plan.push({ suite, name, run });
  const testsOf = (suite: Suite) => (cfg.acceptance_tests?.[suite]?.tests ?? []) as Json[];
  const tag = (suite: Suite, i: number) => (testsOf(suite).length > 1 ? ` [${i + 1}]` : '');
  const timeout = (t: Json) => (t.timeout_seconds ? t.timeout_seconds * 1000 : undefined);

  add('config', 'project: integration_tests files agree with each other, with the spec and with discovery', async (ctx) => {
    const d = await ctx.discover();
    return outcome([...d.protocol, ...checkFixtures(loadFixtures(ctx.base), d.streams)]);
  });
  add('config', 'project: spec, check and discover print valid messages of the current protocol and no token', async (ctx) => {
    const spec = await ctx.spec();
    const check = await ctx.run('check', { config: ctx.config('secrets/config.json') });
    return outcome([...spec.protocol, ...check.protocol, ...(await ctx.discover()).protocol]);
  });

  // ----- discovery
  testsOf('discovery').forEach((t, i) => {
    const s = tag('discovery', i);
    const disc = (ctx: AcceptanceContext) => ctx.discover(t.config_path);
    add('discovery', `primary keys are not objects or arrays (newer CAT: test_primary_keys_data_type)${s}`, async (ctx) => outcome(checkPrimaryKeyTypes((await disc(ctx)).streams)));
    add('discovery', `streams declare is_resumable; incremental ones are resumable (protocol 0.10+: resumable full refresh)${s}`, async (ctx) => outcome(checkResumable((await disc(ctx)).streams)));
  });

  // ----- basic_read
  testsOf('basic_read').forEach((t, i) => {
    const s = tag('basic_read', i);
    const read = (ctx: AcceptanceContext) =>
      ctx.once(`basic_read:${i}`, async () => {
        const d = await ctx.discover(t.config_path);
        const catalog = t.configured_catalog_path ? completeCatalog(ctx.json(t.configured_catalog_path), d.streams).catalog : catalogFromDiscovery(d.streams);
        const r = await ctx.run('read', { config: ctx.config(t.config_path), catalog }, timeout(t));
        return { ...r, catalog };
      });
    if (t.validate_state_messages !== false) {
      add('basic_read', `a STATE per stream, none LEGACY, each with sourceStats.recordCount = its records since the previous STATE (newer CAT: validate_state_messages)${s}`, async (ctx) => {
        const r = await read(ctx);
        return outcome([...r.protocol, ...checkExitCode(r.out), ...checkStateMessages(r.out.messages, r.catalog)]);
      });
    }
    if (t.validate_stream_statuses || Number(metadata?.data?.ab_internal?.ql) >= 400) {
      add('basic_read', `stream statuses STARTED, RUNNING, COMPLETE (newer CAT: validate_stream_statuses)${s}`, async (ctx) => {
        const r = await read(ctx);
        return outcome([...r.protocol, ...checkExitCode(r.out), ...checkStreamStatuses(r.out.messages, r.catalog)]);
      });
    }
  });

  // ----- incremental
  // Newer CATs take cursors from the state messages themselves, so these run on every project of
  // secrets/config.json, where CAT 0.11.5's block needs one project and a cursor path.
  const ALL_PROJECTS = 'secrets/config.json';
  testsOf('incremental').forEach((t, i) => {
    const s = tag('incremental', i);
    const catalogOf = async (ctx: AcceptanceContext) => {
      const d = await ctx.discover(t.config_path);
      const built = completeCatalog(ctx.json(t.configured_catalog_path), d.streams);
      const streams = built.catalog.streams.filter((st: Json) => st.sync_mode === 'incremental');
      if (!streams.length) built.problems.push('the incremental test catalog has no incremental stream');
      return { catalog: { streams }, problems: built.problems };
    };
    add('incremental', `a read from the first read's state gives other records (newer CAT: test_two_sequential_reads, every project)${s}`, async (ctx) => {
      const { catalog, problems } = await catalogOf(ctx);
      const config = ctx.config(ALL_PROJECTS);
      const first = await ctx.run('read', { config, catalog }, timeout(t));
      const second = await ctx.run('read', { config, catalog, state: assembleState(first.out.messages) }, timeout(t));
      return outcome([
        ...problems,
        ...first.protocol,
        ...second.protocol,
        ...checkExitCode(first.out),
        ...checkExitCode(second.out),
        ...checkTwoSequentialReads(first.out.messages, second.out.messages),
      ]);
    });
    if (!t.skip_comprehensive_incremental_tests) {
      add('incremental', `re-reads from intermediate checkpoints give at least the records sourceStats counted after them (newer CAT: test_read_sequential_slices, every project)${s}`, async (ctx) => {
        const { catalog, problems } = await catalogOf(ctx);
        const config = ctx.config(ALL_PROJECTS);
        const notes: string[] = [];
        for (const st of catalog.streams) {
          const one = { streams: [st] };
          const name = st.stream.name;
          const first = await ctx.run('read', { config, catalog: one }, timeout(t));
          problems.push(...first.protocol, ...checkExitCode(first.out));
          const records1 = recordsOf(first.out.messages);
          const states = statesOf(first.out.messages);
          if (!records1.length || !states.length) continue;
          const checkpoints = checkpointsWithExpectedCounts(states);
          if (!checkpoints.length) {
            problems.push(`${name}: no checkpoint with a non-zero recordCount to re-read from`);
            continue;
          }
          const chosen = selectCheckpoints(checkpoints);
          notes.push(`${name}: ${states.length} STATE, ${checkpoints.length} checkpoints with records, re-read from ${chosen.length}`);
          let accumulated: Record<string, Json> = {};
          for (const [j, c] of chosen.entries()) {
            const input = assembleState([c.state], accumulated);
            accumulated = Object.fromEntries(input.map((m) => [m.stream.stream_descriptor.name, m.stream.stream_state]));
            const again = await ctx.run('read', { config, catalog: one, state: input }, timeout(t));
            problems.push(...again.protocol, ...checkExitCode(again.out));
            problems.push(...checkSliceReread(records1, recordsOf(again.out.messages), c.expected, `${name} checkpoint ${j + 1}/${chosen.length}`));
          }
        }
        return outcome(problems, notes);
      });
    }
  });

  return plan;
}
/** Runs a whole plan, in order (for scripts; the jest files run the checks one test each). */
export async function runPlan(ctx: AcceptanceContext, plan = planAcceptance(ctx.cfg, ctx.metadata)): Promise<Array<PlannedCheck & Outcome>> {
  const results: Array<PlannedCheck & Outcome> = [];
  for (const c of plan) results.push({ ...c, ...(await c.run(ctx)) });
  return results;
}

/** The connector a run targets: ACCEPTANCE_TARGET=local for the built CLI, else the image (ACCEPTANCE_IMAGE or connector_image). */
export function connectorFromEnv(cfg: TestConfig = loadTestConfig()): Connector {
  if (process.env.ACCEPTANCE_TARGET === 'local') return new LocalConnector();
  return new ImageConnector(process.env.ACCEPTANCE_IMAGE || cfg.connector_image);
}

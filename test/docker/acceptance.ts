/**
 * Airbyte's Connector Acceptance Tests (CAT), run here: Airbyte's CAT image cannot be pulled on
 * machines without a registry, so this module re-implements the checks it makes on a source,
 * driven by acceptance-test-config.yml, against the built image (`docker run`) or the local CLI.
 *
 * - The checks are pure functions over messages, catalogs and specs; each returns the problems it
 *   found (empty: the rule holds). test/acceptance-rules.test.ts feeds each one a deliberately
 *   broken fixture to show it fails.
 * - `planAcceptance` turns acceptance-test-config.yml into a list of named checks; a check runs
 *   the connector as it needs through an `AcceptanceContext` (reads are shared between checks).
 * - Where CAT reads secrets/config.json, the context starts the bundled mock CircleCI API
 *   (integration_tests/acceptance_mock.json: fixed seed and clock) and hands the connector
 *   integration_tests/sample_config.json with the mock's token and base_url. Other config files
 *   (invalid_config.json) are sent to the mock too: it stands in for circleci.com.
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
import { startMockServer, type MockServer } from '../../src/mock/server.js';
import { World } from '../../src/mock/world.js';

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

/** A `type` key that is a JSON-schema keyword (not a property called "type"). */
const isTypeKeyword = (path: string[], value: Json) =>
  path.at(-2) !== 'properties' && (typeof value === 'string' || (Array.isArray(value) && value.every((t) => typeof t === 'string')));

/** Whether `fieldPath` (["a","b"]) is declared under the schema's properties (through oneOf/anyOf variants too). */
export function schemaHasPath(schema: Json, fieldPath: string[]): boolean {
  if (fieldPath.length === 0) return true;
  if (!isObject(schema)) return false;
  const [head, ...rest] = fieldPath;
  if (isObject(schema.properties) && head in schema.properties && schemaHasPath(schema.properties[head], rest)) return true;
  for (const k of ['oneOf', 'anyOf']) if (Array.isArray(schema[k]) && schema[k].some((v: Json) => schemaHasPath(v, fieldPath))) return true;
  return false;
}

const getPath = (data: Json, path: string[]): Json => path.reduce((v, k) => (isObject(v) ? v[k] : undefined), data);

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
// spec (TestSpec)

export const SECRET_NAMES = [
  'client_token', 'access_token', 'api_token', 'token', 'secret', 'client_secret', 'password', 'key', 'service_account_info',
  'service_account', 'tenant_id', 'certificate', 'jwt', 'credentials', 'app_id', 'appid', 'refresh_token',
];
export const FORBIDDEN_SPEC_KEYWORDS = ['not', 'anyOf', 'patternProperties', 'prefixItems', 'allOf', 'if', 'then', 'else', 'dependentSchemas', 'dependentRequired'];
export const DATE_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$';
export const DATETIME_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$';

/** Exactly one SPEC message with a connectionSpecification object. */
export function checkSpecMessage(messages: Message[]): Problems {
  const specs = ofType(messages, 'SPEC');
  if (specs.length !== 1) return [`spec printed ${specs.length} SPEC messages, expected exactly 1`];
  if (!isObject(specs[0].spec?.connectionSpecification)) return ['the SPEC message has no connectionSpecification object'];
  return [];
}

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

/** test_match_expected: the printed spec equals the spec_path file. */
export function checkSpecMatchesExpected(actual: Json, expected: Json): Problems {
  return JSON.stringify(canonical(actual)) === JSON.stringify(canonical(expected))
    ? []
    : [`the spec differs from the spec_path file: ${describeDiff(expected, actual)}`];
}

/** test_enum_usage: enum lists hold distinct values. */
export function checkEnumUsage(cs: Json): Problems {
  return findKey(cs, 'enum')
    .filter(({ value }) => Array.isArray(value) && new Set(value.map((v: Json) => JSON.stringify(v))).size !== value.length)
    .map(({ path, value }) => `${path.join('/')}: enum has duplicate values ${short(value)}`);
}

/** test_oneof_usage: object parent, variants with properties, exactly one common const property (no default/enum other than the const). */
export function checkOneOfUsage(cs: Json): Problems {
  const problems: Problems = [];
  for (const kw of ['oneOf', 'anyOf']) {
    for (const { path, value: variants, parent } of findKey(cs, kw)) {
      const where = path.join('/');
      if (!Array.isArray(variants)) continue;
      if (parent.type !== 'object') problems.push(`${where}: the parent of ${kw} must have type object`);
      if (!variants.every((v: Json) => isObject(v) && isObject(v.properties))) {
        problems.push(`${where}: every ${kw} variant must be an object with properties`);
        continue;
      }
      const sets = variants.map((v: Json) => new Set(Object.keys(v.properties)));
      const common = [...(sets[0] ?? [])].filter((k) => sets.every((s: Set<string>) => s.has(k)));
      if (!common.length) {
        problems.push(`${where}: the variants share no property`);
        continue;
      }
      const consts = common.filter((k) => variants.every((v: Json) => 'const' in v.properties[k]));
      if (consts.length !== 1) {
        problems.push(`${where}: exactly one common property must carry const in every variant (found ${consts.length})`);
        continue;
      }
      variants.forEach((v: Json, i: number) => {
        const p = v.properties[consts[0]];
        if ('default' in p && p.default !== p.const) problems.push(`${where}/${i}: default of ${consts[0]} must equal its const`);
        if ('enum' in p && !(p.enum.length === 1 && p.enum[0] === p.const)) problems.push(`${where}/${i}: enum of ${consts[0]} must be [const]`);
      });
    }
  }
  return problems;
}

const canHoldSecret = (prop: Json): boolean => {
  const types = Array.isArray(prop.type) ? prop.type : [prop.type];
  return types.some((t: Json) => ['string', 'integer', 'number'].includes(t)) && !prop.const;
};

/** test_secret_is_properly_marked: secret-named fields that can hold a secret are airbyte_secret; others are not. */
export function checkSecretsMarked(cs: Json): Problems {
  const problems: Problems = [];
  const reserved = new Set(['anyOf', 'oneOf', 'allOf', 'not', 'properties', 'items', 'type', 'prefixItems']);
  for (const { path, value, parent } of findKey(cs?.properties ?? {}, 'type')) {
    if (!isTypeKeyword(path, value)) continue;
    const name = [...path.slice(0, -1)].reverse().find((p) => !/^\d+$/.test(p) && !reserved.has(p));
    if (!name || !SECRET_NAMES.includes(name.toLowerCase())) continue;
    const where = path.slice(0, -1).join('/');
    const marked = parent.airbyte_secret === true;
    const possible = canHoldSecret(parent);
    if (possible && !marked) problems.push(`${where}: a field named "${name}" can hold a secret but lacks airbyte_secret: true`);
    if (!possible && marked) problems.push(`${where}: marked airbyte_secret but its type cannot hold a secret`);
  }
  return problems;
}

/** test_property_type_is_not_array: a property's type is one type, or [T, "null"]. */
export function checkPropertyTypeNotArray(cs: Json): Problems {
  return findKey(cs, 'type')
    .filter(({ path, value }) => path.at(-3) === 'properties' && Array.isArray(value))
    .filter(({ value }) => !(value.length === 1 || (value.length === 2 && value.includes('null'))))
    .map(({ path, value }) => `${path.slice(0, -1).join('/')}: type ${short(value)} is neither one type nor [type, "null"]`);
}

/** test_object_not_empty: every object field below the root declares properties (or oneOf). */
export function checkObjectNotEmpty(cs: Json): Problems {
  return findKey(cs, 'type')
    .filter(({ path, value }) => path.length > 1 && isTypeKeyword(path, value) && value === 'object')
    .filter(({ parent }) => !('oneOf' in parent) && !(isObject(parent.properties) && Object.keys(parent.properties).length > 0))
    .map(({ path }) => `${path.slice(0, -1).join('/')}: an object with no properties`);
}

/** test_array_type: array items are one schema of type object/string/number/integer, or an enum. */
export function checkArrayType(cs: Json): Problems {
  const problems: Problems = [];
  for (const { path, value, parent } of findKey(cs, 'type')) {
    if (!isTypeKeyword(path, value)) continue;
    if (!(value === 'array' || (Array.isArray(value) && value.includes('array')))) continue;
    const where = path.slice(0, -1).join('/');
    const items = parent.items;
    if (!isObject(items)) problems.push(`${where}: an array must have one items schema`);
    else if (!('enum' in items) && !['object', 'string', 'number', 'integer'].includes(items.type)) {
      problems.push(`${where}: array items must be of type object, string, number or integer, or an enum (got ${short(items.type)})`);
    }
  }
  return problems;
}

/** test_forbidden_complex_types: none of not/anyOf/patternProperties/prefixItems/allOf/if/then/else/dependentSchemas/dependentRequired. */
export function checkForbiddenComplexTypes(cs: Json): Problems {
  return FORBIDDEN_SPEC_KEYWORDS.flatMap((kw) =>
    findKey(cs, kw)
      .filter(({ path }) => path.at(-2) !== 'properties') // a property that happens to be called "if"
      .map(({ path }) => `${path.join('/')}: the keyword ${kw} is not supported by the Airbyte UI`),
  );
}

/** test_date_pattern / test_date_format: advisory (CAT only warns). */
export function dateFormatWarnings(cs: Json): Problems {
  const warnings: Problems = [];
  for (const { path, value, parent } of findKey(cs, 'format')) {
    if (value === 'date' && parent.pattern !== DATE_PATTERN) warnings.push(`${path.join('/')}: format date without the pattern ${DATE_PATTERN}`);
    if (value === 'date-time' && parent.pattern !== DATETIME_PATTERN) warnings.push(`${path.join('/')}: format date-time without the pattern ${DATETIME_PATTERN}`);
  }
  for (const { path, value, parent } of findKey(cs, 'pattern')) {
    if (value === DATE_PATTERN && parent.format !== 'date') warnings.push(`${path.join('/')}: a date pattern without format: date`);
    if (value === DATETIME_PATTERN && parent.format !== 'date-time') warnings.push(`${path.join('/')}: a date-time pattern without format: date-time`);
  }
  return warnings;
}

/** test_defined_refs_exist_in_json_spec_file: every $ref resolves inside the document. */
export function checkRefsResolve(doc: Json): Problems {
  const problems: Problems = [];
  for (const { path, value } of findKey(doc, '$ref')) {
    if (typeof value !== 'string' || !value.startsWith('#')) {
      problems.push(`${path.join('/')}: $ref ${short(value)} points outside the document`);
      continue;
    }
    const target = value.slice(1).split('/').filter(Boolean).map((s) => decodeURIComponent(s).replace(/~1/g, '/').replace(/~0/g, '~'));
    let node: Json = doc;
    for (const k of target) node = Array.isArray(node) || isObject(node) ? (node as Json)[k] : undefined;
    if (node === undefined) problems.push(`${path.join('/')}: $ref ${value} does not resolve`);
  }
  return problems;
}

/** test_oauth_flow_parameters: advanced_auth's predicate_key and path_in_connector_config entries exist in the spec. */
export function checkOAuthParameters(spec: Json): Problems {
  const auth = spec?.advanced_auth;
  if (!isObject(auth)) return [];
  const cs = spec.connectionSpecification;
  const paths: string[][] = [];
  if (Array.isArray(auth.predicate_key)) paths.push(auth.predicate_key);
  const ocs = auth.oauth_config_specification;
  if (isObject(ocs)) {
    for (const k of ['oauth_user_input_from_connector_config_specification', 'complete_oauth_output_specification', 'complete_oauth_server_output_specification']) {
      for (const v of Object.values(ocs[k]?.properties ?? {})) if (Array.isArray((v as Json)?.path_in_connector_config)) paths.push((v as Json).path_in_connector_config);
    }
  }
  return paths.filter((p) => !schemaHasPath(cs, p)).map((p) => `advanced_auth names /${p.join('/')}, which the connectionSpecification lacks`);
}

/** test_additional_properties_is_true (spec and stream schemas): additionalProperties, where set, is true. */
export function checkAdditionalPropertiesTrue(schema: Json, label = 'schema'): Problems {
  return findKey(schema, 'additionalProperties')
    .filter(({ path }) => path.at(-2) !== 'properties')
    .filter(({ value }) => value !== true)
    .map(({ path, value }) => `${label}: ${path.join('/')} is ${short(value)}; when set it must be true (backward compatibility)`);
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

// ----- backward compatibility (spec and catalog) against a previous image

/** No new required field, no changed or narrowed type, no removed enum value in the connectionSpecification. */
export function specBreakingChanges(previous: Json, current: Json, path: string[] = []): Problems {
  const problems: Problems = [];
  if (!isObject(previous) || !isObject(current)) return problems;
  const where = `/${path.join('/')}`;
  const types = (s: Json) => new Set<string>(Array.isArray(s.type) ? s.type : s.type ? [s.type] : []);
  const before = types(previous);
  const after = types(current);
  if (before.size && [...before].some((t) => !after.has(t))) problems.push(`${where}: type ${short(previous.type)} became ${short(current.type)}`);
  const newRequired = (current.required ?? []).filter((r: string) => !(previous.required ?? []).includes(r));
  if (newRequired.length) problems.push(`${where}: new required field(s) ${newRequired.join(', ')}`);
  if (Array.isArray(previous.enum)) {
    const removed = previous.enum.filter((v: Json) => !(current.enum ?? []).some((c: Json) => JSON.stringify(c) === JSON.stringify(v)));
    if (removed.length) problems.push(`${where}: enum value(s) ${short(removed)} removed`);
  }
  for (const [k, v] of Object.entries(previous.properties ?? {})) {
    if (isObject(current.properties) && k in current.properties) problems.push(...specBreakingChanges(v, current.properties[k], [...path, k]));
  }
  return problems;
}

/** No stream removed, no column removed or retyped, no cursor or primary key changed. */
export function catalogBreakingChanges(previous: Json[], current: Json[]): Problems {
  const problems: Problems = [];
  const now = new Map(current.map((s) => [s.name, s]));
  for (const p of previous) {
    const c = now.get(p.name);
    if (!c) {
      problems.push(`stream ${p.name} was removed`);
      continue;
    }
    for (const [col, def] of Object.entries<Json>(p.json_schema?.properties ?? {})) {
      const cur = c.json_schema?.properties?.[col];
      if (!cur) problems.push(`${p.name}.${col} was removed`);
      else if (JSON.stringify(def.type) !== JSON.stringify(cur.type)) problems.push(`${p.name}.${col}: type ${short(def.type)} became ${short(cur.type)}`);
    }
    if (JSON.stringify(p.default_cursor_field ?? null) !== JSON.stringify(c.default_cursor_field ?? null)) problems.push(`${p.name}: default_cursor_field changed`);
    if (JSON.stringify(p.source_defined_primary_key ?? null) !== JSON.stringify(c.source_defined_primary_key ?? null)) problems.push(`${p.name}: primary key changed`);
    const lostModes = (p.supported_sync_modes ?? []).filter((m: string) => !(c.supported_sync_modes ?? []).includes(m));
    if (lostModes.length) problems.push(`${p.name}: sync mode(s) ${lostModes.join(', ')} no longer supported`);
  }
  return problems;
}

// =================================================================================================
// connection (TestConnection)

export type ConnectionStatus = 'succeed' | 'failed' | 'exception';

/** succeed/failed: exactly one CONNECTION_STATUS with that status; exception: exactly one TRACE with an error message. */
export function checkConnection(out: RunOutput, status: ConnectionStatus): Problems {
  const statuses = ofType(out.messages, 'CONNECTION_STATUS');
  const traces = ofType(out.messages, 'TRACE').filter((m) => m.trace?.type === 'ERROR');
  if (status === 'exception') {
    const problems: Problems = [];
    if (traces.length !== 1 || typeof traces[0].trace.error?.message !== 'string') problems.push(`check printed ${traces.length} TRACE ERROR messages, expected exactly 1 with error.message`);
    if (out.code === 0) problems.push('check exited with 0 on an exception');
    return problems;
  }
  const want = status === 'succeed' ? 'SUCCEEDED' : 'FAILED';
  if (statuses.length !== 1) return [`check printed ${statuses.length} CONNECTION_STATUS messages, expected exactly 1${traces.length ? ` (TRACE: ${short(traces[0].trace.error?.message)})` : ''}`];
  const got = statuses[0].connectionStatus?.status;
  const problems: Problems = got === want ? [] : [`check said ${got}${statuses[0].connectionStatus?.message ? ` (${short(statuses[0].connectionStatus.message)})` : ''}, expected ${want}`];
  if (out.code !== 0) problems.push(`check exited with ${out.code}; a ${want} status exits 0`);
  if (want === 'FAILED' && !statuses[0].connectionStatus?.message) problems.push('a FAILED status should say why (message)');
  return problems;
}

// =================================================================================================
// discovery (TestDiscovery)

/** Exactly one CATALOG, with streams, unique names. */
export function checkDiscoverMessage(messages: Message[]): Problems {
  const catalogs = ofType(messages, 'CATALOG');
  if (catalogs.length !== 1) return [`discover printed ${catalogs.length} CATALOG messages, expected exactly 1`];
  const streams = catalogs[0].catalog?.streams;
  if (!Array.isArray(streams) || streams.length === 0) return ['the catalog has no streams'];
  const names = streams.map((s: Json) => s.name);
  const dups = names.filter((n: string, i: number) => names.indexOf(n) !== i);
  return dups.length ? [`duplicate stream names: ${[...new Set(dups)].join(', ')}`] : [];
}

/** Each stream's json_schema is a valid draft-07 schema with no $ref and no allOf/not. */
export function checkStreamSchemas(streams: Json[]): Problems {
  const problems: Problems = [];
  const meta = newAjv();
  for (const s of streams) {
    if (!isObject(s.json_schema)) {
      problems.push(`${s.name}: json_schema is not an object`);
      continue;
    }
    if (!meta.validateSchema(s.json_schema)) problems.push(`${s.name}: json_schema is not a valid draft-07 schema: ${meta.errorsText(meta.errors)}`);
    for (const { path } of findKey(s.json_schema, '$ref')) if (path.at(-2) !== 'properties') problems.push(`${s.name}: ${path.join('/')}: $ref is not allowed in a stream schema`);
    for (const kw of ['allOf', 'not']) {
      for (const { path } of findKey(s.json_schema, kw)) if (path.at(-2) !== 'properties') problems.push(`${s.name}: ${path.join('/')}: ${kw} is not allowed in a stream schema`);
    }
  }
  return problems;
}

const JSON_TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'];
const AIRBYTE_TYPES = ['timestamp_with_timezone', 'timestamp_without_timezone', 'time_with_timezone', 'time_without_timezone', 'integer', 'big_integer', 'big_number'];

/** test_catalog_has_supported_data_types: JSON types only; airbyte_type, where set, is a known one. */
export function checkSupportedDataTypes(streams: Json[]): Problems {
  const problems: Problems = [];
  for (const s of streams) {
    for (const { path, value } of findKey(s.json_schema, 'type')) {
      if (!isTypeKeyword(path, value)) continue;
      const bad = (Array.isArray(value) ? value : [value]).filter((t: string) => !JSON_TYPES.includes(t));
      if (bad.length) problems.push(`${s.name}: ${path.join('/')}: unsupported type ${bad.join(', ')}`);
    }
    for (const { path, value } of findKey(s.json_schema, 'airbyte_type')) {
      if (path.at(-2) !== 'properties' && !AIRBYTE_TYPES.includes(value)) problems.push(`${s.name}: ${path.join('/')}: unknown airbyte_type ${short(value)}`);
    }
  }
  return problems;
}

/** test_defined_cursors_exist_in_schema and test_primary_keys_exist_in_schema. */
export function checkCursorsAndKeysExist(streams: Json[]): Problems {
  const problems: Problems = [];
  for (const s of streams) {
    if (s.default_cursor_field?.length && !schemaHasPath(s.json_schema, s.default_cursor_field)) {
      problems.push(`${s.name}: default_cursor_field ${short(s.default_cursor_field)} is not in its json_schema`);
    }
    for (const pk of s.source_defined_primary_key ?? []) {
      if (!schemaHasPath(s.json_schema, pk)) problems.push(`${s.name}: primary key ${short(pk)} is not in its json_schema`);
    }
  }
  return problems;
}

/** test_streams_has_sync_modes, plus the protocol's rules on the declared modes. */
export function checkSyncModes(streams: Json[]): Problems {
  const problems: Problems = [];
  for (const s of streams) {
    const modes = s.supported_sync_modes;
    if (!Array.isArray(modes) || modes.length === 0) problems.push(`${s.name}: supported_sync_modes is empty`);
    else if (modes.some((m: string) => !['full_refresh', 'incremental'].includes(m))) problems.push(`${s.name}: unknown sync mode in ${short(modes)}`);
    if (s.is_resumable !== undefined && s.source_defined_cursor === undefined) problems.push(`${s.name}: is_resumable requires source_defined_cursor`);
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
// basic_read (TestBasicRead)

/** At least one record; every configured stream has records unless listed in empty_streams; no record of an unconfigured stream. */
export function checkRecordsPresent(messages: Message[], catalog: Json, emptyStreams: string[] = []): Problems {
  const records = recordsOf(messages);
  if (records.length === 0) return ['the read produced no records'];
  const configured = catalog.streams.map((s: Json) => s.stream.name);
  const problems: Problems = [];
  for (const name of configured) {
    if (!emptyStreams.includes(name) && !records.some((r) => r.stream === name)) problems.push(`stream ${name} produced no records (and is not in empty_streams)`);
  }
  const strays = [...new Set(records.map((r) => r.stream).filter((s) => !configured.includes(s)))];
  if (strays.length) problems.push(`records of streams the catalog does not configure: ${strays.join(', ')}`);
  return problems;
}

/** Schema conformance: records validate against their stream schema (formats checked); with failOnExtraColumns, no undeclared top-level field; each record shares a field with the schema. */
export function checkRecordsMatchSchema(messages: Message[], catalog: Json, failOnExtraColumns = true): Problems {
  const problems: Problems = [];
  const validators = new Map<string, ReturnType<Ajv['compile']>>();
  const declared = new Map<string, Set<string>>();
  const v = newAjv();
  for (const s of catalog.streams) {
    const schema = structuredClone(s.stream.json_schema);
    if (failOnExtraColumns) schema.additionalProperties = false;
    validators.set(s.stream.name, v.compile(schema));
    declared.set(s.stream.name, new Set(Object.keys(s.stream.json_schema?.properties ?? {})));
  }
  const reported = new Set<string>();
  for (const r of recordsOf(messages)) {
    const validate = validators.get(r.stream);
    if (!validate || reported.has(r.stream)) continue;
    if (!Object.keys(r.data ?? {}).some((k) => declared.get(r.stream)!.has(k))) {
      problems.push(`${r.stream}: a record shares no field with the schema: ${short(r.data)}`);
      reported.add(r.stream);
    } else if (!validate(r.data)) {
      problems.push(`${r.stream}: record ${short(r.data, 100)} does not match the schema: ${errorsText(validate.errors)}`);
      reported.add(r.stream); // CAT reports the first failing record of each stream
    }
  }
  return problems;
}

/**
 * Primary-key values are scalars (not objects or arrays) and, per key path, not all null (CAT);
 * this project also wants every record's key present and non-null.
 */
export function checkPrimaryKeyValues(messages: Message[], catalog: Json): Problems {
  const problems: Problems = [];
  const records = recordsOf(messages);
  for (const s of catalog.streams) {
    const keys: string[][] = s.primary_key ?? s.stream.source_defined_primary_key ?? [];
    const mine = records.filter((r) => r.stream === s.stream.name);
    if (!mine.length) continue;
    for (const key of keys) {
      const values = mine.map((r) => getPath(r.data, key));
      const label = `${s.stream.name}.${key.join('.')}`;
      if (values.every((x) => x === null || x === undefined)) problems.push(`${label}: no record has a value for this primary key`);
      else if (values.some((x) => x === null || x === undefined)) problems.push(`${label}: ${values.filter((x) => x === null || x === undefined).length} record(s) with a null primary key`);
      if (values.some((x) => isObject(x) || Array.isArray(x))) problems.push(`${label}: primary key values must be scalars, found an object or array`);
    }
  }
  return problems;
}

export interface ExpectRecords {
  exact_order?: boolean;
  extra_fields?: boolean;
  extra_records?: boolean;
  ignored_fields?: Record<string, Array<{ name: string }>>;
}

/** Canonical JSON: keys sorted, for set comparisons. */
export function canonical(v: Json): Json {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}
const hashable = (data: Json, ignored: string[] = []) => {
  const c = structuredClone(data);
  for (const f of ignored) {
    const path = f.split('/').filter(Boolean);
    const parent = getPath(c, path.slice(0, -1));
    if (isObject(parent)) delete parent[path.at(-1)!];
  }
  return JSON.stringify(canonical(c));
};

function describeDiff(expected: Json, actual: Json): string {
  if (isObject(expected) && isObject(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])];
    const differing = keys.filter((k) => JSON.stringify(canonical(expected[k])) !== JSON.stringify(canonical(actual[k])));
    return differing.map((k) => `${k}: expected ${short(expected[k], 80)}, got ${short(actual[k], 80)}`).join('; ');
  }
  return `expected ${short(expected)}, got ${short(actual)}`;
}

/** expect_records: every expected record is produced (whole record, after ignored fields); extra records and fields per the options. */
export function checkExpectedRecords(messages: Message[], expected: Array<{ stream: string; data: Json }>, opts: ExpectRecords = {}): Problems {
  const problems: Problems = [];
  const actual = recordsOf(messages);
  const streams = [...new Set(expected.map((e) => e.stream))];
  for (const stream of streams) {
    const ignored = (opts.ignored_fields?.[stream] ?? []).map((f) => f.name);
    const exp = expected.filter((e) => e.stream === stream).map((e) => e.data);
    let act = actual.filter((r) => r.stream === stream).map((r) => r.data);
    if (opts.extra_fields) {
      // Drop fields the expected records do not have (CAT: remove_extra_fields), matched by position or by first expected record.
      const allowed = new Set(exp.flatMap((e) => Object.keys(e)));
      act = act.map((a) => Object.fromEntries(Object.entries(a).filter(([k]) => allowed.has(k))));
    }
    if (opts.exact_order) {
      for (let i = 0; i < exp.length; i++) {
        if (i >= act.length) {
          problems.push(`${stream}: ${exp.length - act.length} expected record(s) missing at the end`);
          break;
        }
        if (hashable(exp[i], ignored) !== hashable(act[i], ignored)) {
          problems.push(`${stream}: record ${i} differs from the expected one in order: ${describeDiff(exp[i], act[i])}`);
          break;
        }
      }
      continue;
    }
    const actSet = new Set(act.map((a) => hashable(a, ignored)));
    const expSet = new Set(exp.map((e) => hashable(e, ignored)));
    const missing = exp.filter((e) => !actSet.has(hashable(e, ignored)));
    if (missing.length) {
      const sameId = missing[0].id !== undefined ? act.find((a) => a.id === missing[0].id) : undefined;
      problems.push(`${stream}: ${missing.length} of ${exp.length} expected records were not produced, e.g. ${short(missing[0], 120)}${sameId ? ` (got ${describeDiff(missing[0], sameId)})` : ''}`);
    }
    if (opts.extra_records === false) {
      const extra = act.filter((a) => !expSet.has(hashable(a, ignored)));
      if (extra.length) problems.push(`${stream}: ${extra.length} record(s) beyond the expected ones (extra_records is off), e.g. ${short(extra[0], 120)}`);
    }
  }
  const unexpected = [...new Set(actual.map((r) => r.stream))].filter((s) => !streams.includes(s));
  if (opts.extra_records === false && unexpected.length) problems.push(`records of streams with no expected records: ${unexpected.join(', ')}`);
  return problems;
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

/** The catalog CAT uses for test_airbyte_trace_message_on_failure. */
export const BOGUS_CATALOG = {
  streams: [
    {
      stream: {
        name: '__AIRBYTE__stream_that_does_not_exist',
        json_schema: { type: 'object', properties: { f1: { type: 'string' } } },
        supported_sync_modes: ['full_refresh'],
      },
      sync_mode: 'INVALID',
      destination_sync_mode: 'INVALID',
    },
  ],
};

/** test_airbyte_trace_message_on_failure: a read with a bogus catalog prints at least one TRACE ERROR. */
export function checkTraceOnFailure(out: RunOutput): Problems {
  const errors = ofType(out.messages, 'TRACE').filter((m) => m.trace?.type === 'ERROR');
  const problems: Problems = [];
  if (errors.length === 0) problems.push('a read with an invalid catalog printed no TRACE ERROR');
  if (out.code === 0) problems.push('a read with an invalid catalog exited with 0');
  return problems;
}

// =================================================================================================
// full_refresh (TestFullRefresh.test_sequential_reads)

const keyOf = (data: Json, keys: string[][]) => JSON.stringify(keys.map((k) => getPath(data, k) ?? null));

/** Two reads: every emitted_at of the second is later than all of the first; the first's records (by primary key, else whole) are a subset of the second's. */
export function checkSequentialFullRefresh(first: Message[], second: Message[], catalog: Json, ignoredFields: Record<string, Array<{ name: string }>> = {}): Problems {
  const problems: Problems = [];
  const r1 = recordsOf(first);
  const r2 = recordsOf(second);
  if (r1.length && r2.length) {
    const max1 = Math.max(...r1.map((r) => r.emitted_at));
    const min2 = Math.min(...r2.map((r) => r.emitted_at));
    if (!(min2 > max1)) problems.push(`emitted_at did not increase: the second read's earliest ${min2} is not after the first read's latest ${max1}`);
  }
  for (const s of catalog.streams) {
    const name = s.stream.name;
    const keys: string[][] | undefined = s.primary_key ?? s.stream.source_defined_primary_key;
    const ser = (d: Json) => (keys?.length ? keyOf(d, keys) : hashable(d, (ignoredFields[name] ?? []).map((f) => f.name)));
    const set2 = new Set(r2.filter((r) => r.stream === name).map((r) => ser(r.data)));
    const missing = r1.filter((r) => r.stream === name).map((r) => ser(r.data)).filter((k) => !set2.has(k));
    if (missing.length) problems.push(`${name}: ${missing.length} record(s) of the first read are missing from the second, e.g. ${short(missing[0])}`);
  }
  return problems;
}

// =================================================================================================
// incremental (TestIncremental)

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

/** test_state_with_abnormally_large_values: no records, at least one STATE. */
export function checkAbnormalStateRead(messages: Message[]): Problems {
  const problems: Problems = [];
  const records = recordsOf(messages);
  if (records.length) problems.push(`a read from the abnormal (future) state produced ${records.length} record(s), e.g. ${records[0].stream} ${short(records[0].data, 100)}`);
  if (statesOf(messages).length === 0) problems.push('a read from the abnormal (future) state emitted no STATE');
  return problems;
}

/** High strictness: every incremental stream of the catalog has a future state (or is listed in missing_streams with a bypass_reason). */
export function checkFutureStateCoverage(catalog: Json, futureState: Json, missing: Array<{ name: string; bypass_reason?: string }> = []): Problems {
  const problems: Problems = [];
  if (!Array.isArray(futureState)) return ['the future state is not an array of STREAM state messages'];
  const covered = new Set(futureState.map((m: Json) => m?.stream?.stream_descriptor?.name));
  for (const s of catalog.streams.filter((x: Json) => x.sync_mode === 'incremental')) {
    const name = s.stream.name;
    const bypass = missing.find((m) => m.name === name);
    if (covered.has(name)) continue;
    if (!bypass) problems.push(`incremental stream ${name} has no abnormal state (add it, or list it in missing_streams with a bypass_reason)`);
    else if (!bypass.bypass_reason) problems.push(`missing_streams: ${name} needs a bypass_reason at high strictness`);
  }
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

/** The configuration itself: high strictness's demands, and every file it names exists (secrets/ excepted: the runner provides it). */
export function checkTestConfig(cfg: TestConfig, exists: (relPath: string) => boolean): Problems {
  const problems: Problems = [];
  if (typeof cfg?.connector_image !== 'string' || !cfg.connector_image) problems.push('connector_image is not set');
  if (!isObject(cfg?.acceptance_tests)) return [...problems, 'acceptance_tests is missing (the legacy "tests:" layout is not supported)'];
  const high = cfg.test_strictness_level === 'high';
  for (const suite of SUITES) {
    const s = cfg.acceptance_tests[suite];
    if (!s) {
      if (high) problems.push(`high strictness: the ${suite} suite is missing`);
      continue;
    }
    if (!s.tests?.length && !s.bypass_reason) problems.push(`${suite}: no tests and no bypass_reason`);
    for (const [i, t] of (s.tests ?? []).entries()) {
      const where = `${suite}[${i}]`;
      for (const key of ['config_path', 'configured_catalog_path', 'spec_path']) {
        if (typeof t[key] === 'string' && !t[key].startsWith('secrets/') && !exists(t[key])) problems.push(`${where}: ${key} ${t[key]} does not exist`);
      }
      if (t.expect_records?.path && !exists(t.expect_records.path)) problems.push(`${where}: expect_records.path ${t.expect_records.path} does not exist`);
      if (t.future_state?.future_state_path && !exists(t.future_state.future_state_path)) problems.push(`${where}: future_state_path ${t.future_state.future_state_path} does not exist`);
      if (high && suite === 'basic_read') {
        if (t.configured_catalog_path) problems.push(`${where}: high strictness forbids a custom configured_catalog_path in basic_read`);
        if (!t.expect_records && !t.bypass_reason) problems.push(`${where}: high strictness needs expect_records (or a bypass_reason)`);
        if (t.expect_records && !t.expect_records.path && !t.expect_records.bypass_reason) problems.push(`${where}: expect_records needs a path or a bypass_reason`);
        for (const e of t.empty_streams ?? []) if (!e.bypass_reason) problems.push(`${where}: empty stream ${e.name} needs a bypass_reason`);
      }
      if (high && suite === 'incremental' && !t.future_state?.future_state_path && !t.future_state?.bypass_reason) {
        problems.push(`${where}: high strictness needs future_state.future_state_path (or a bypass_reason)`);
      }
    }
  }
  const statuses = (cfg.acceptance_tests.connection?.tests ?? []).map((t: Json) => t.status);
  for (const want of ['succeed', 'failed']) if (!statuses.includes(want)) problems.push(`connection: no test with status ${want}`);
  return problems;
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
}

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
  const slugs: string[] = Array.isArray(f.sampleConfig?.project_slugs) ? f.sampleConfig.project_slugs : [];
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
      for (const slug of slugs) {
        const value = perProject[slug]?.[cursor];
        if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
          problems.push(`${label}: ${name} has no ${cursor} date-time for project ${slug}`);
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

export function imageExists(image: string): boolean {
  return spawnSync('docker', ['image', 'inspect', image], { stdio: 'ignore' }).status === 0;
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
}

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
  const server = await startMockServer({ world: acceptanceWorld(env), token: env.token, host: '127.0.0.1', port: 0, latencyMs: opts.latencyMs });
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

/** The checks acceptance-test-config.yml asks for, in order, each with a stable name. */
export function planAcceptance(cfg: TestConfig = loadTestConfig(), metadata: Json = loadMetadata()): PlannedCheck[] {
  const plan: PlannedCheck[] = [];
  const add = (suite: PlannedCheck['suite'], name: string, run: PlannedCheck['run']) => plan.push({ suite, name, run });
  const testsOf = (suite: Suite) => (cfg.acceptance_tests?.[suite]?.tests ?? []) as Json[];
  const tag = (suite: Suite, i: number) => (testsOf(suite).length > 1 ? ` [${i + 1}]` : '');
  const timeout = (t: Json) => (t.timeout_seconds ? t.timeout_seconds * 1000 : undefined);

  add('config', 'acceptance-test-config.yml meets high strictness and names files that exist', async (ctx) =>
    outcome(checkTestConfig(ctx.cfg, (p) => existsSync(join(ctx.base, p)))),
  );
  add('config', 'integration_tests files agree with each other and with discovery', async (ctx) => {
    const d = await ctx.discover();
    return outcome(checkFixtures(loadFixtures(ctx.base), d.streams));
  });

  // ----- spec
  testsOf('spec').forEach((t, i) => {
    const cfgPath = t.config_path ?? 'secrets/config.json';
    const specOf = async (ctx: AcceptanceContext) => {
      const r = await ctx.spec();
      return { ...r, spec: ofType(r.out.messages, 'SPEC')[0]?.spec ?? {} };
    };
    const cs = async (ctx: AcceptanceContext) => (await specOf(ctx)).spec.connectionSpecification ?? {};
    const s = tag('spec', i);
    add('spec', `spec prints exactly one valid SPEC and exits 0${s}`, async (ctx) => {
      const r = await specOf(ctx);
      return outcome([...r.protocol, ...checkExitCode(r.out), ...checkSpecMessage(r.out.messages)]);
    });
    add('spec', `the config matches the spec (test_config_match_spec)${s}`, async (ctx) => outcome(checkConfigMatchesSpec(await cs(ctx), ctx.config(cfgPath), cfgPath)));
    if (t.spec_path) {
      add('spec', `the spec equals ${t.spec_path} (test_match_expected)${s}`, async (ctx) => outcome(checkSpecMatchesExpected((await specOf(ctx)).spec, ctx.json(t.spec_path))));
    }
    add('spec', `enums hold distinct values (test_enum_usage)${s}`, async (ctx) => outcome(checkEnumUsage(await cs(ctx))));
    add('spec', `oneOf blocks follow the rules (test_oneof_usage)${s}`, async (ctx) => outcome(checkOneOfUsage(await cs(ctx))));
    add('spec', `secrets are marked airbyte_secret (test_secret_is_properly_marked)${s}`, async (ctx) => outcome(checkSecretsMarked(await cs(ctx))));
    add('spec', `property types are one type or [type, null] (test_property_type_is_not_array)${s}`, async (ctx) => outcome(checkPropertyTypeNotArray(await cs(ctx))));
    add('spec', `no empty objects (test_object_not_empty)${s}`, async (ctx) => outcome(checkObjectNotEmpty(await cs(ctx))));
    add('spec', `arrays have one simple item type (test_array_type)${s}`, async (ctx) => outcome(checkArrayType(await cs(ctx))));
    add('spec', `no forbidden keywords (test_forbidden_complex_types)${s}`, async (ctx) => outcome(checkForbiddenComplexTypes(await cs(ctx))));
    add('spec', `date fields have matching pattern and format (test_date_pattern, test_date_format; advisory)${s}`, async (ctx) => outcome([], dateFormatWarnings(await cs(ctx))));
    add('spec', `every $ref resolves (test_defined_refs_exist_in_json_spec_file)${s}`, async (ctx) => outcome(checkRefsResolve(await cs(ctx))));
    add('spec', `OAuth parameters exist in the spec (test_oauth_flow_parameters)${s}`, async (ctx) => outcome(checkOAuthParameters((await specOf(ctx)).spec)));
    add('spec', `additionalProperties is true where set (test_additional_properties_is_true)${s}`, async (ctx) => outcome(checkAdditionalPropertiesTrue(await cs(ctx), 'connectionSpecification')));
    add('spec', `image labels match metadata.yaml (test_image_labels)${s}`, async (ctx) => {
      const info = await ctx.connector.inspect();
      return info ? outcome(checkImageLabels(info, ctx.metadata)) : { problems: [], skipped: 'the local CLI has no image labels' };
    });
    add('spec', `AIRBYTE_ENTRYPOINT equals the absolute ENTRYPOINT, user airbyte (test_image_environment_variables)${s}`, async (ctx) => {
      const info = await ctx.connector.inspect();
      return info ? outcome(checkImageEntrypoint(info)) : { problems: [], skipped: 'the local CLI has no image' };
    });
    add('spec', `the spec is backward compatible with the previous version (test_backward_compatibility)${s}`, async (ctx) =>
      backwardCompatibility(ctx, t, async (prev) => {
        const prevSpec = ofType((await prev.run('spec')).messages, 'SPEC')[0]?.spec?.connectionSpecification;
        return specBreakingChanges(prevSpec, await cs(ctx));
      }),
    );
  });

  // ----- connection
  testsOf('connection').forEach((t, i) => {
    add('connection', `check with ${t.config_path} → ${t.status} (test_check)${tag('connection', i)}`, async (ctx) => {
      const r = await ctx.run('check', { config: ctx.config(t.config_path) }, timeout(t));
      return outcome([...r.protocol, ...checkConnection(r.out, t.status)]);
    });
  });

  // ----- discovery
  testsOf('discovery').forEach((t, i) => {
    const s = tag('discovery', i);
    const disc = (ctx: AcceptanceContext) => ctx.discover(t.config_path);
    add('discovery', `discover prints exactly one CATALOG with unique stream names (test_discover)${s}`, async (ctx) => {
      const d = await disc(ctx);
      return outcome([...d.protocol, ...checkExitCode(d.out), ...checkDiscoverMessage(d.out.messages)]);
    });
    add('discovery', `stream schemas are valid draft-07 with no $ref, allOf or not${s}`, async (ctx) => outcome(checkStreamSchemas((await disc(ctx)).streams)));
    add('discovery', `stream schemas use supported data types (test_catalog_has_supported_data_types)${s}`, async (ctx) => outcome(checkSupportedDataTypes((await disc(ctx)).streams)));
    add('discovery', `cursor fields and primary keys exist in the schemas${s}`, async (ctx) => outcome(checkCursorsAndKeysExist((await disc(ctx)).streams)));
    add('discovery', `every stream has sync modes (test_streams_has_sync_modes)${s}`, async (ctx) => outcome(checkSyncModes((await disc(ctx)).streams)));
    add('discovery', `additionalProperties is true where set in stream schemas${s}`, async (ctx) =>
      outcome((await disc(ctx)).streams.flatMap((st: Json) => checkAdditionalPropertiesTrue(st.json_schema, st.name))),
    );
    add('discovery', `the catalog is backward compatible with the previous version (test_backward_compatibility)${s}`, async (ctx) =>
      backwardCompatibility(ctx, t, async (prev) => {
        const prevStreams = ofType((await prev.run('discover', { config: ctx.config(t.config_path) })).messages, 'CATALOG')[0]?.catalog?.streams ?? [];
        return catalogBreakingChanges(prevStreams, (await disc(ctx)).streams);
      }),
    );
  });

  // ----- basic_read
  testsOf('basic_read').forEach((t, i) => {
    const s = tag('basic_read', i);
    const empty = (t.empty_streams ?? []).map((e: Json) => e.name);
    const read = (ctx: AcceptanceContext) =>
      ctx.once(`basic_read:${i}`, async () => {
        const d = await ctx.discover(t.config_path);
        const catalog = t.configured_catalog_path ? completeCatalog(ctx.json(t.configured_catalog_path), d.streams).catalog : catalogFromDiscovery(d.streams);
        const r = await ctx.run('read', { config: ctx.config(t.config_path), catalog }, timeout(t));
        return { ...r, catalog };
      });
    add('basic_read', `the read succeeds with valid messages and records for every stream (test_read)${s}`, async (ctx) => {
      const r = await read(ctx);
      return outcome([...r.protocol, ...checkExitCode(r.out), ...checkRecordsPresent(r.out.messages, r.catalog, empty)]);
    });
    add('basic_read', `records match their stream schema${t.fail_on_extra_columns === false ? '' : ', no extra columns'}${s}`, async (ctx) => {
      const r = await read(ctx);
      return outcome(checkRecordsMatchSchema(r.out.messages, r.catalog, t.fail_on_extra_columns !== false));
    });
    add('basic_read', `primary-key values are present scalars${s}`, async (ctx) => {
      const r = await read(ctx);
      return outcome(checkPrimaryKeyValues(r.out.messages, r.catalog));
    });
    if (t.expect_records?.path) {
      add('basic_read', `the records are ${t.expect_records.path}${t.expect_records.extra_records === false ? ' exactly' : ''} (expect_records)${s}`, async (ctx) => {
        const r = await read(ctx);
        return outcome(checkExpectedRecords(r.out.messages, readJsonl(join(ctx.base, t.expect_records.path)), t.expect_records));
      });
    }
    if (t.validate_state_messages !== false) {
      add('basic_read', `a STATE per stream, none LEGACY, each with sourceStats (validate_state_messages)${s}`, async (ctx) => {
        const r = await read(ctx);
        return outcome(checkStateMessages(r.out.messages, r.catalog));
      });
    }
    if (t.validate_stream_statuses || Number(metadata?.data?.ab_internal?.ql) >= 400) {
      add('basic_read', `stream statuses STARTED, RUNNING, COMPLETE (validate_stream_statuses)${s}`, async (ctx) => {
        const r = await read(ctx);
        return outcome(checkStreamStatuses(r.out.messages, r.catalog));
      });
    }
    if (t.expect_trace_message_on_failure !== false) {
      add('basic_read', `a bogus catalog yields a TRACE ERROR (test_airbyte_trace_message_on_failure)${s}`, async (ctx) => {
        const r = await ctx.run('read', { config: ctx.config(t.config_path), catalog: BOGUS_CATALOG }, timeout(t));
        return outcome([...r.protocol, ...checkTraceOnFailure(r.out)]);
      });
    }
  });

  // ----- full_refresh
  testsOf('full_refresh').forEach((t, i) => {
    add('full_refresh', `two sequential reads: later emitted_at, first read ⊆ second by key (test_sequential_reads)${tag('full_refresh', i)}`, async (ctx) => {
      const d = await ctx.discover(t.config_path);
      const built = t.configured_catalog_path ? completeCatalog(ctx.json(t.configured_catalog_path), d.streams) : { catalog: catalogFromDiscovery(d.streams), problems: [] };
      const catalog = { streams: built.catalog.streams.map((st: Json) => ({ ...st, sync_mode: 'full_refresh', destination_sync_mode: 'overwrite' })) };
      const first = await ctx.run('read', { config: ctx.config(t.config_path), catalog }, timeout(t));
      await new Promise((r) => setTimeout(r, 1000));
      const second = await ctx.run('read', { config: ctx.config(t.config_path), catalog }, timeout(t));
      return outcome([
        ...built.problems,
        ...first.protocol,
        ...second.protocol,
        ...checkExitCode(first.out),
        ...checkExitCode(second.out),
        ...checkSequentialFullRefresh(first.out.messages, second.out.messages, catalog, t.ignored_fields),
      ]);
    });
  });

  // ----- incremental
  testsOf('incremental').forEach((t, i) => {
    const s = tag('incremental', i);
    const catalogOf = async (ctx: AcceptanceContext) => {
      const d = await ctx.discover(t.config_path);
      const built = completeCatalog(ctx.json(t.configured_catalog_path), d.streams);
      const streams = built.catalog.streams.filter((st: Json) => st.sync_mode === 'incremental');
      if (!streams.length) built.problems.push('the incremental test catalog has no incremental stream');
      return { catalog: { streams }, problems: built.problems };
    };
    add('incremental', `a read from the first read's state differs from it (test_two_sequential_reads)${s}`, async (ctx) => {
      const { catalog, problems } = await catalogOf(ctx);
      const config = ctx.config(t.config_path);
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
      add('incremental', `re-reads from intermediate checkpoints meet the recordCount expectations (test_read_sequential_slices)${s}`, async (ctx) => {
        const { catalog, problems } = await catalogOf(ctx);
        const config = ctx.config(t.config_path);
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
    if (t.future_state?.future_state_path) {
      add('incremental', `the abnormal state covers every incremental stream (high strictness)${s}`, async (ctx) => {
        const { catalog, problems } = await catalogOf(ctx);
        return outcome([...problems, ...checkFutureStateCoverage(catalog, ctx.json(t.future_state.future_state_path), t.future_state.missing_streams)]);
      });
      add('incremental', `a read from the abnormal state yields no records and a STATE (test_state_with_abnormally_large_values)${s}`, async (ctx) => {
        const { catalog, problems } = await catalogOf(ctx);
        const r = await ctx.run('read', { config: ctx.config(t.config_path), catalog, state: ctx.json(t.future_state.future_state_path) }, timeout(t));
        return outcome([...problems, ...r.protocol, ...checkExitCode(r.out), ...checkAbnormalStateRead(r.out.messages)]);
      });
    }
    add('incremental', `a read from integration_tests/sample_state.json succeeds and re-reads less than a full read${s}`, async (ctx) => {
      const { catalog, problems } = await catalogOf(ctx);
      const config = ctx.config(t.config_path);
      const full = await ctx.run('read', { config, catalog }, timeout(t));
      const r = await ctx.run('read', { config, catalog, state: ctx.json('integration_tests/sample_state.json') }, timeout(t));
      problems.push(...r.protocol, ...checkExitCode(r.out), ...checkStateMessages(r.out.messages, catalog));
      const n = recordsOf(r.out.messages).length;
      const all = recordsOf(full.out.messages).length;
      if (n === 0 || n >= all) problems.push(`a read from sample_state.json produced ${n} records, a full read ${all}: expected some, and fewer`);
      return outcome(problems);
    });
  });

  return plan;
}

/**
 * CAT compares against <dockerRepository>:<previous_connector_version, default latest>, unless
 * disable_for_version names the version under test. Here a previous image is used only when it is
 * present locally (nothing can be pulled); without one the check is skipped, saying so.
 */
async function backwardCompatibility(ctx: AcceptanceContext, t: Json, compare: (previous: Connector) => Promise<Problems>): Promise<Outcome> {
  const bc = t.backward_compatibility_tests_config ?? {};
  const version = String(ctx.metadata?.data?.dockerImageTag);
  if (bc.disable_for_version !== undefined && String(bc.disable_for_version) === version) return { problems: [], skipped: `disabled for version ${version} (disable_for_version)` };
  const previous = `${ctx.metadata?.data?.dockerRepository}:${bc.previous_connector_version ?? 'latest'}`;
  if (!imageExists(previous)) return { problems: [], skipped: `no previous image ${previous} on this machine` };
  return outcome(await compare(new ImageConnector(previous)));
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

import { configError } from '../errors.js';
import { STREAMS, streamByName } from '../streams/index.js';
import type { JsonSchema, StreamDeclaration } from '../streams/stream.js';
import type { Selection, SyncMode } from '../sync/crawler.js';

/**
 * The Singer catalog: what `--discover` prints, and how a `--catalog`/`--properties` file becomes
 * the engine's selection. Selection follows the Meltano SDK (`_breadcrumb_is_selected`):
 * `unsupported` is never emitted, `automatic` always is (keys and replication keys are automatic
 * whatever the catalog says), otherwise `selected`, then `selected-by-default`, then the parent's value.
 */

export type Breadcrumb = string[];
export interface MetadataEntry {
  breadcrumb: Breadcrumb;
  metadata: Record<string, unknown>;
}

/** What the Singer writer needs to know about a selected stream. */
export interface SingerStream {
  name: string;
  /** The stream's schema, pruned to the selected properties: the SCHEMA message and what records are projected onto. */
  schema: JsonSchema;
  keyProperties: string[];
  bookmarkProperties: string[];
}

export interface SingerSelection {
  /** For the engine: selected streams, their modes, and the pruned schema. */
  selection: Map<string, Selection>;
  streams: Map<string, SingerStream>;
  /** Worth a log line (a forced replication method, an unknown stream). */
  notes: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const FIX = 'Run `tap-circleci --discover` and build the catalog from its output.';

const automaticFields = (s: StreamDeclaration) => new Set([...s.primaryKey, ...(s.cursorField ? [s.cursorField] : [])]);

/** One catalog entry of `--discover`: SDK-style metadata, one `[]` breadcrumb and one per top-level property. */
export function singerCatalogEntry(s: StreamDeclaration) {
  const automatic = automaticFields(s);
  const root: Record<string, unknown> = {
    inclusion: 'available',
    // Streams that cost a request per job are there to pick, not picked for you.
    'selected-by-default': !s.optIn,
    'table-key-properties': s.primaryKey,
    ...(s.cursorField ? { 'valid-replication-keys': [s.cursorField] } : { 'forced-replication-method': 'FULL_TABLE' }),
  };
  const metadata: MetadataEntry[] = [{ breadcrumb: [], metadata: root }];
  for (const field of Object.keys(s.schema.properties ?? {})) {
    metadata.push({
      breadcrumb: ['properties', field],
      metadata: { inclusion: automatic.has(field) ? 'automatic' : 'available', 'selected-by-default': true },
    });
  }
  return {
    tap_stream_id: s.name,
    stream: s.name,
    schema: s.schema,
    key_properties: s.primaryKey,
    replication_method: s.cursorField ? 'INCREMENTAL' : 'FULL_TABLE',
    ...(s.cursorField ? { replication_key: s.cursorField } : {}),
    metadata,
  };
}

export const singerCatalog = () => ({ streams: STREAMS.map(singerCatalogEntry) });

const singerStream = (s: StreamDeclaration, schema: JsonSchema = s.schema): SingerStream => ({
  name: s.name,
  schema,
  keyProperties: s.primaryKey,
  bookmarkProperties: s.cursorField ? [s.cursorField] : [],
});

/** No catalog: every stream selected by default, every field, incremental where the stream has a replication key. */
export function selectAll(): SingerSelection {
  const selection = new Map<string, Selection>();
  const streams = new Map<string, SingerStream>();
  for (const s of STREAMS.filter((s) => !s.optIn)) {
    selection.set(s.name, { mode: s.cursorField ? 'incremental' : 'full_refresh' });
    streams.set(s.name, singerStream(s));
  }
  return { selection, streams, notes: [] };
}

const bool = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);

function isSelected(md: Record<string, unknown> | undefined, parent: boolean, automatic = false): boolean {
  if (!parent) return false;
  if (automatic) return true;
  if (!md) return parent;
  if (md.inclusion === 'unsupported') return false;
  if (md.inclusion === 'automatic') return true;
  return bool(md.selected) ?? bool(md['selected-by-default']) ?? parent;
}

/** The schema with deselected properties removed, recursively through nested objects. */
function prune(schema: JsonSchema, path: Breadcrumb, md: Map<string, Record<string, unknown>>, keep: Set<string>): JsonSchema {
  if (!schema.properties) return schema;
  const properties: Record<string, JsonSchema> = {};
  for (const [field, sub] of Object.entries(schema.properties)) {
    const crumb = [...path, 'properties', field];
    if (!isSelected(md.get(JSON.stringify(crumb)), true, path.length === 0 && keep.has(field))) continue;
    properties[field] = prune(sub, crumb, md, keep);
  }
  const out: JsonSchema = { ...schema, properties };
  if (Array.isArray(schema.required)) out.required = (schema.required as string[]).filter((f) => f in properties);
  return out;
}

/** A `--catalog` or `--properties` file → the engine's selection, checked against what the streams support. */
export function parseSingerCatalog(raw: unknown): SingerSelection {
  if (!isObject(raw) || !Array.isArray(raw.streams)) throw configError(`The catalog must be a JSON object with a "streams" list. ${FIX}`);
  const selection = new Map<string, Selection>();
  const streams = new Map<string, SingerStream>();
  const notes: string[] = [];
  for (const [i, entry] of raw.streams.entries()) {
    if (!isObject(entry)) throw configError(`Catalog entry ${i + 1} is not an object. ${FIX}`);
    const name = entry.tap_stream_id ?? entry.stream;
    if (typeof name !== 'string') throw configError(`Catalog entry ${i + 1} has no tap_stream_id. ${FIX}`);
    const md = new Map<string, Record<string, unknown>>();
    if (entry.metadata !== undefined && !Array.isArray(entry.metadata)) throw configError(`The metadata of catalog stream "${name}" must be a list. ${FIX}`);
    for (const m of (entry.metadata as unknown[] | undefined) ?? []) {
      if (isObject(m) && Array.isArray(m.breadcrumb) && isObject(m.metadata)) md.set(JSON.stringify(m.breadcrumb), m.metadata);
    }
    const root = md.get('[]') ?? {};
    // Meltano also copies the stream's selection onto the entry itself.
    const rootSelected = bool(root.selected) ?? bool(entry.selected);
    const selected = root.inclusion !== 'unsupported' && (rootSelected ?? bool(root['selected-by-default']) ?? false);
    const decl = streamByName(name);
    if (!decl) {
      if (selected) notes.push(`The catalog selects stream "${name}", which this tap does not have (it has ${STREAMS.map((s) => s.name).join(', ')}); ignored.`);
      continue;
    }
    if (!selected) continue;
    if (selection.has(name)) throw configError(`The catalog lists stream "${name}" twice. ${FIX}`);

    const method = root['replication-method'] ?? entry.replication_method;
    let mode: SyncMode = decl.cursorField ? 'incremental' : 'full_refresh';
    if (method !== undefined && method !== null) {
      const m = String(method).toUpperCase();
      if (m === 'FULL_TABLE') mode = 'full_refresh';
      else if (m === 'INCREMENTAL') {
        if (!decl.cursorField) notes.push(`Stream "${name}" is FULL_TABLE only (it has no replication key); its replication-method INCREMENTAL is ignored.`);
      } else {
        throw configError(`Stream "${name}" has replication-method ${JSON.stringify(method)}; use ${decl.cursorField ? 'INCREMENTAL or FULL_TABLE' : 'FULL_TABLE'}.`);
      }
    }
    // Whatever the method: a replication-key that is not the stream's cursor is a mistake to name,
    // not a setting to ignore.
    const key = root['replication-key'] ?? entry.replication_key;
    if (key !== undefined && key !== null && key !== '' && key !== decl.cursorField) {
      throw configError(
        decl.cursorField
          ? `Stream "${name}" is replicated by "${decl.cursorField}"; the catalog asks for replication-key ${JSON.stringify(key)}. Set it to "${decl.cursorField}" or leave it out.`
          : `Stream "${name}" has no replication key (it is FULL_TABLE only); the catalog asks for replication-key ${JSON.stringify(key)}. Leave it out.`,
      );
    }
    const schema = prune(decl.schema, [], md, automaticFields(decl));
    selection.set(name, { mode, schema });
    streams.set(name, singerStream(decl, schema));
  }
  return { selection, streams, notes };
}

import { configError } from '../errors.js';
import { STREAMS, streamByName } from '../streams/index.js';
import type { Selection, SyncMode } from '../sync/crawler.js';

const FIX = 'Run `discover` and build the catalog from its streams.';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An Airbyte ConfiguredAirbyteCatalog, checked against what the streams support. */
export function parseConfiguredCatalog(raw: unknown): Map<string, Selection> {
  if (!isObject(raw) || !Array.isArray(raw.streams)) {
    throw configError(`The catalog must be a JSON object with a "streams" array (a ConfiguredAirbyteCatalog). ${FIX}`);
  }
  const selection = new Map<string, Selection>();
  for (const [i, entry] of raw.streams.entries()) {
    const stream = isObject(entry) && isObject(entry.stream) ? entry.stream : undefined;
    const name = stream?.name;
    if (typeof name !== 'string') throw configError(`Catalog entry ${i + 1} has no stream name. ${FIX}`);
    const decl = streamByName(name);
    if (!decl) {
      throw configError(`The catalog names an unknown stream "${name}"; this source has ${STREAMS.map((s) => s.name).join(', ')}. ${FIX}`);
    }
    const asked = (entry as Record<string, unknown>).sync_mode;
    // A stream without a cursor (projects) asked for incrementally is read in full, as Airbyte's
    // Python CDK does: PyAirbyte asks every stream for incremental, whatever it supports.
    const mode = asked === 'incremental' && !decl.cursorField ? 'full_refresh' : asked;
    const supported: SyncMode[] = decl.cursorField ? ['full_refresh', 'incremental'] : ['full_refresh'];
    if (!supported.includes(mode as SyncMode)) {
      throw configError(`Stream "${name}" does not support sync_mode ${JSON.stringify(mode)}; use ${supported.join(' or ')}. ${FIX}`);
    }
    const cursorField = (entry as Record<string, unknown>).cursor_field;
    if (mode === 'incremental' && Array.isArray(cursorField) && cursorField.length && (cursorField.length !== 1 || cursorField[0] !== decl.cursorField)) {
      throw configError(`Stream "${name}" has a source-defined cursor "${decl.cursorField}"; the catalog asks for ${JSON.stringify(cursorField)}. Set cursor_field to ["${decl.cursorField}"] or leave it out.`);
    }
    if (selection.has(name)) throw configError(`The catalog lists stream "${name}" twice. ${FIX}`);
    selection.set(name, { mode: mode as SyncMode });
  }
  if (selection.size === 0) throw configError(`The catalog selects no streams. ${FIX}`);
  return selection;
}

import { loadSchema, type StreamDeclaration } from './stream.js';

/**
 * CircleCI's Usage Export: one record per job run and its credits, read per organization by
 * sync/usage.ts (an export job per window, its CSV parts downloaded), not below the pipeline list.
 * Opt-in: it costs exports (10 an hour per organization), not requests.
 */
export const usage: StreamDeclaration = {
  name: 'usage',
  schema: loadSchema('usage'),
  primaryKey: ['job_id'],
  cursorField: '_window_end',
  optIn: true,
  scope: 'organization',
  path: () => '/organizations/{org_id}/usage_export_job',
};

type Cell = string | number | boolean | null;

/** Cells that did not read as their column's type (emitted as null, reported once per export): how many, and the first. */
export interface BadCells {
  count: number;
  first?: { column: string; value: string };
}

const ISO_ZONED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
const PLAIN_TIME = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A date-time as an ISO string: one with a zone as CircleCI wrote it (like every other stream's
 * times); one without a zone is UTC (Date.parse would read it as this machine's local time).
 */
function dateTime(v: string): string | undefined {
  if (ISO_ZONED.test(v)) return Number.isNaN(Date.parse(v)) ? undefined : v;
  const text = PLAIN_TIME.test(v) ? `${v.replace(' ', 'T')}Z` : DATE.test(v) ? `${v}T00:00:00Z` : undefined;
  const t = text === undefined ? NaN : Date.parse(text);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

const FLAGS: Record<string, boolean> = { y: true, yes: true, true: true, '1': true, n: false, no: false, false: false, '0': false };

/** How a column's non-empty cell reads (undefined: not of its type), decided once per column from the schema. */
type Reader = (v: string, raw: string) => Cell | undefined;

function readerOf(prop: { type?: string | string[]; format?: unknown }): Reader {
  const types = Array.isArray(prop.type) ? prop.type : [prop.type];
  if (types.includes('integer')) return (v) => (Number.isInteger(Number(v)) ? Number(v) : undefined);
  if (types.includes('number')) return (v) => (Number.isFinite(Number(v)) ? Number(v) : undefined);
  if (types.includes('boolean')) return (v) => FLAGS[v.toLowerCase()];
  if (prop.format === 'date-time') return (v) => dateTime(v);
  if (prop.format === 'date') return (v) => (DATE.test(v) ? v : dateTime(v)?.slice(0, 10));
  return (_v, raw) => raw;
}

/** Which cell of a part's rows feeds which column of the schema, worked out once per part from its header. */
export type RowPlan = Array<{ index: number; column: string; read: Reader }>;

export function rowPlan(header: readonly string[]): RowPlan {
  return COLUMNS.flatMap(([column, read]) => {
    const index = header.indexOf(column);
    return index < 0 ? [] : [{ index, column, read }];
  });
}

/**
 * A CSV row as a usage record: every column of the schema present in the export's header, typed
 * (numbers, Y/N as booleans, dates and date-times as ISO strings, an empty cell as null); columns
 * the export adds tomorrow are dropped; `_organization_id` and `_window_end` added. A cell that
 * does not read as its type is null, and counted in `bad`.
 */
export function usageRecord(values: readonly string[], plan: RowPlan, orgId: string, windowEnd: string, bad: BadCells): Record<string, Cell> {
  const out: Record<string, Cell> = { _organization_id: orgId, _window_end: windowEnd };
  for (const { index, column, read } of plan) {
    const raw = values[index];
    if (raw === undefined) continue;
    const v = raw.trim();
    const value = v === '' ? null : read(v, raw);
    if (value === undefined) {
      bad.count++;
      bad.first ??= { column, value: raw.slice(0, 40) };
      out[column] = null;
    } else out[column] = value;
  }
  return out;
}

const COLUMNS: Array<[string, Reader]> = Object.entries(usage.schema.properties ?? {})
  .filter(([k]) => !k.startsWith('_'))
  .map(([k, prop]) => [k, readerOf(prop as { type?: string | string[]; format?: unknown })]);

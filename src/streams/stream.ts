import { readPackageJson } from '../resources.js';

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  [k: string]: unknown;
};

export type Json = Record<string, unknown>;

/** Where a record sits in the tree: its project and the ancestors it was listed under. */
export interface Context {
  project: string;
  pipeline?: Json;
  workflow?: Json;
  job?: Json;
  /**
   * Set below a record whose cursor its descendants carry (a workflow): the streams whose records
   * below it are to be emitted, decided once for the whole subtree.
   */
  admitted?: ReadonlySet<string>;
}

/**
 * What a stream read per project, outside the pipeline walk, is given: its project, how far back
 * to read, CircleCI's clock, and the API. A 404 on any request means the data is not available
 * for this project (the reader says so and keeps the state).
 */
export interface ProjectRead {
  project: string;
  /** Read records created at or after this (epoch ms): start_date, or the incremental threshold. */
  since: number;
  /** `since` comes from the project's saved cursor (an earlier sync read up to there). */
  fromState: boolean;
  /** CircleCI's clock now (epoch ms). */
  now(): number;
  get(path: string, query?: Record<string, string | undefined>): Promise<unknown>;
  pages(path: string, query?: Record<string, string | undefined>): AsyncIterable<unknown[]>;
  warn(message: string): Promise<void>;
}

/**
 * A stream is a declaration; the crawler does the walking. `parent` names the stream whose
 * records this one is listed under; `path` is the list endpoint for one parent (or project).
 */
export interface StreamDeclaration {
  name: string;
  schema: JsonSchema;
  primaryKey: string[];
  /** Top-level cursor field; none = full refresh only. */
  cursorField?: string;
  /**
   * Every record's cursor value is its parent's (a job carries its workflow's created_at): the
   * crawler decides per parent, before asking for the list, whether its children are wanted.
   */
  cursorFromParent?: boolean;
  parent?: string;
  /** Where this record stands in the context of its children. */
  contextKey?: 'pipeline' | 'workflow' | 'job';
  /** `path` answers one object (a project, a job's details), not a paged list. */
  single?: boolean;
  /** Costs a request or more per job: a Singer sync without a catalog leaves it out. */
  optIn?: boolean;
  /**
   * 'organization': read once per organization by its own reader (sync/usage.ts), not by the
   * crawler; its state is keyed by organization id, not by project slug.
   */
  scope?: 'organization';
  path(ctx: Context): string;
  /** Whether this parent has records of this stream at all (details: numbered build jobs only). */
  wants?(ctx: Context): boolean;
  /**
   * When this stream's records below this parent stopped changing (epoch ms). An incremental sync
   * skips a parent that was settled before the previous sync looked: that sync read it final.
   */
  settledAt?(ctx: Context): number;
  /**
   * Fields the connector adds from the context (jobs carry _pipeline_id, _workflow_id). `list` lives
   * as long as one parent's list, so a record can be numbered among its identical siblings.
   */
  decorate?(item: Json, ctx: Context, list: Map<string, number>): Json;
  /**
   * One record per key per read: a record listed under several parents (a job's details, under
   * each workflow that lists the job) is emitted under one of them only, the one an incremental
   * sync would keep. False: this copy is not the one.
   */
  keep?(record: Json, ctx: Context): boolean;
  /**
   * Records that may still change (non-terminal workflows). An incremental cursor is held at the
   * oldest of them inside the lookback window, so a later sync re-reads them.
   */
  mayChange?(record: Json): boolean;
  /**
   * Streams of a project that are not below its pipelines (Insights): the project's records, each
   * with its connector fields, in any order. The crawler applies the cursor and emits them.
   */
  readProject?(io: ProjectRead): AsyncIterable<Json>;
}

export const loadSchema = (name: string): JsonSchema => readPackageJson<JsonSchema>(`schemas/${name}.json`);

/**
 * Keeps only what the schema declares, recursively: a field CircleCI adds tomorrow never reaches
 * a destination. Objects without declared properties (trigger_parameters) are free-form.
 */
export function project(schema: JsonSchema, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return schema.items ? value.map((v) => project(schema.items as JsonSchema, v)) : value;
  if (!schema.properties) return value;
  const out: Json = {};
  for (const [key, sub] of Object.entries(schema.properties)) {
    const v = (value as Json)[key];
    if (v !== undefined) out[key] = project(sub, v);
  }
  return out;
}

import { loadSchema, type StreamDeclaration } from './stream.js';

/** running, failing and on_hold can still change; every other status is final. */
export const NOT_FINAL = new Set(['running', 'failing', 'on_hold']);

export const workflows: StreamDeclaration = {
  name: 'workflows',
  schema: loadSchema('workflows'),
  primaryKey: ['id'],
  cursorField: 'created_at',
  parent: 'pipelines',
  contextKey: 'workflow',
  path: (ctx) => `/pipeline/${encodeURIComponent(String(ctx.pipeline?.id))}/workflow`,
  mayChange: (w) => NOT_FINAL.has(String(w.status)),
};

import { loadSchema, type StreamDeclaration } from './stream.js';

export const jobs: StreamDeclaration = {
  name: 'jobs',
  schema: loadSchema('jobs'),
  // "Rerun from failed" lists the same job id under the new workflow.
  primaryKey: ['id', '_workflow_id'],
  // Incremental by their workflow: the jobs of every workflow the workflows logic emits (new ones,
  // and unfinished ones until they finish), so a sync asks only for those job lists.
  cursorField: '_workflow_created_at',
  cursorFromParent: true,
  parent: 'workflows',
  contextKey: 'job',
  path: (ctx) => `/workflow/${encodeURIComponent(String(ctx.workflow?.id))}/job`,
  decorate: (job, ctx) => ({
    ...job,
    _pipeline_id: ctx.pipeline?.id ?? null,
    _workflow_id: ctx.workflow?.id,
    _workflow_created_at: ctx.workflow?.created_at ?? null,
  }),
};

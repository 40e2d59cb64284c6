import { loadSchema, type StreamDeclaration } from './stream.js';

export const jobs: StreamDeclaration = {
  name: 'jobs',
  schema: loadSchema('jobs'),
  // "Rerun from failed" lists the same job id under the new workflow.
  primaryKey: ['id', '_workflow_id'],
  parent: 'workflows',
  path: (ctx) => `/workflow/${encodeURIComponent(String(ctx.workflow?.id))}/job`,
  decorate: (job, ctx) => ({ ...job, _pipeline_id: ctx.pipeline?.id ?? null, _workflow_id: ctx.workflow?.id }),
};

import { slugPath } from '../slug-path.js';
import { timeOf } from '../time.js';
import { loadSchema, type StreamDeclaration } from './stream.js';
import { jobProjectSlug, numberedBuild } from './job-children.js';

export const jobDetails: StreamDeclaration = {
  name: 'job_details',
  schema: loadSchema('job_details'),
  primaryKey: ['_project_slug', 'number'],
  // Like jobs: read below every workflow the workflows logic emits, so a job adopted by a rerun
  // from failed is read again (its latest_workflow changes) and a running one until it stops.
  cursorField: '_workflow_created_at',
  cursorFromParent: true,
  parent: 'jobs',
  single: true,
  optIn: true,
  // Approval jobs answer 404 and blocked jobs have no number: neither is asked for.
  wants: (ctx) => numberedBuild(ctx.job),
  path: (ctx) => `/project/${slugPath(ctx.project)}/job/${Number(ctx.job?.job_number)}`,
  // Final once the job stopped and it sits in this workflow: only a newer workflow changes it.
  settledAt: (ctx) => Math.max(timeOf(ctx.job?.stopped_at), timeOf(ctx.workflow?.created_at)),
  // A job a "rerun from failed" adopted is listed by both workflows; its details name the newer
  // one (latest_workflow), and are emitted there only. Details that name none are kept anywhere.
  keep: (details, ctx) => {
    const latest = (details.latest_workflow as { id?: unknown } | null | undefined)?.id;
    return typeof latest !== 'string' || latest === ctx.workflow?.id;
  },
  decorate: (details, ctx) => ({
    ...details,
    _project_slug: jobProjectSlug(ctx),
    _workflow_created_at: ctx.workflow?.created_at ?? null,
  }),
};

import { slugPath } from '../slug-path.js';
import { timeOf } from '../time.js';
import { jobProjectSlug, jobStopped, numberedBuild } from './job-children.js';
import { loadSchema, type Context, type StreamDeclaration } from './stream.js';

/**
 * A job a rerun from failed adopted into a newer workflow started before that workflow existed.
 * Its results belong to the workflow it ran in, and are read there.
 */
const ranIn = (ctx: Context): boolean => !(timeOf(ctx.job?.started_at) < timeOf(ctx.workflow?.created_at));

export const tests: StreamDeclaration = {
  name: 'tests',
  schema: loadSchema('tests'),
  // `file` is often null, and some destinations drop records with a null key column: _file is "" then.
  primaryKey: ['_project_slug', '_job_number', 'classname', 'name', '_file', '_occurrence'],
  cursorField: '_workflow_created_at',
  cursorFromParent: true,
  parent: 'jobs',
  optIn: true,
  // Results are uploaded when a job ends and never change after.
  wants: (ctx) => numberedBuild(ctx.job) && jobStopped(ctx.job) && ranIn(ctx),
  settledAt: (ctx) => timeOf(ctx.job?.stopped_at),
  path: (ctx) => `/project/${slugPath(ctx.project)}/${Number(ctx.job?.job_number)}/tests`,
  decorate: (test, ctx, list) => {
    const file = typeof test.file === 'string' ? test.file : '';
    const same = JSON.stringify([test.classname, test.name, file]);
    const occurrence = list.get(same) ?? 0;
    list.set(same, occurrence + 1);
    return {
      ...test,
      _project_slug: jobProjectSlug(ctx),
      _job_number: ctx.job?.job_number,
      _workflow_id: ctx.workflow?.id ?? null,
      _workflow_created_at: ctx.workflow?.created_at ?? null,
      _file: file,
      _occurrence: occurrence,
    };
  },
};

import { slugPath } from '../slug-path.js';
import { listIn, underscored } from './insights.js';
import { loadSchema, type StreamDeclaration } from './stream.js';

/**
 * A project's flaky tests today (Insights): a snapshot, read whole on every sync (one request per
 * project). CircleCI lists one entry per test of a job of a workflow, so that is the key; a test
 * has no id of its own, and its latest flaky run (workflow_id, job_number) changes as it flakes again.
 */
export const flakyTests: StreamDeclaration = {
  name: 'flaky_tests',
  schema: loadSchema('flaky_tests'),
  primaryKey: ['_project_slug', 'workflow_name', 'job_name', 'classname', 'test_name'],
  optIn: true,
  path: (ctx) => `/insights/${slugPath(ctx.project)}/flaky-tests`,
  async *readProject(io) {
    const path = flakyTests.path({ project: io.project });
    for (const test of listIn(await io.get(path), 'flaky_tests', path)) yield { ...underscored(test), _project_slug: io.project };
  },
};

import { slugPath } from '../slug-path.js';
import { EDGE_MARGIN_MS, INSIGHTS_KEEP_MS, isObject, startDate } from './insights.js';
import { loadSchema, type Json, type StreamDeclaration } from './stream.js';
import { NOT_FINAL } from './workflows.js';

const iso = (t: number) => new Date(t).toISOString();

/** A run as written: credits_used whichever way CircleCI spelled it, and where it was listed. */
export function runRecord(run: Json, project: string, name: string): Json {
  const { 'credits-used': hyphenated, ...rest } = run;
  return { ...rest, credits_used: rest.credits_used ?? hyphenated ?? null, _project_slug: project, _workflow_name: name };
}

/**
 * Every run of every workflow name of a project, from CircleCI's Insights: the names (one list,
 * paged), then per name its runs created since the cursor (newest first, paged). A rerun is a new
 * run with its own created_at, so no lookback is needed; a run still going is read again until it
 * stopped (mayChange), as the workflows stream does.
 */
export const workflowRuns: StreamDeclaration = {
  name: 'workflow_runs',
  schema: loadSchema('workflow_runs'),
  primaryKey: ['id'],
  cursorField: 'created_at',
  optIn: true,
  path: (ctx) => `/insights/${slugPath(ctx.project)}/workflows`,
  mayChange: (r) => r.stopped_at === null || r.stopped_at === undefined || NOT_FINAL.has(String(r.status)),
  async *readProject(io) {
    const names = workflowRuns.path({ project: io.project });
    const found = new Set<string>();
    for await (const items of io.pages(names, { 'all-branches': 'true', 'reporting-window': 'last-90-days' })) {
      for (const item of items) if (isObject(item) && typeof item.name === 'string') found.add(item.name);
    }
    // After an answer: CircleCI's clock (its Date header) is known only then.
    const kept = io.now() - INSIGHTS_KEEP_MS + EDGE_MARGIN_MS;
    if (io.fromState && io.since < kept) {
      await io.warn(
        `${io.project}: workflow_runs was last read up to ${iso(io.since)}, and CircleCI keeps 90 days: runs created before ${iso(kept)} ` +
          'that the last sync did not read are gone. Sync at least every 80 days to keep every run (docs/insights.md).',
      );
    }
    for (const name of found) {
      const query = { 'all-branches': 'true', 'start-date': iso(startDate(io.since, io.now())) };
      for await (const items of io.pages(`${names}/${encodeURIComponent(name)}`, query)) {
        for (const run of items) if (isObject(run)) yield runRecord(run, io.project, name);
      }
    }
  },
};

/**
 * The mock's Insights routes (CircleCI keeps Insights about 90 days), derived from the world's own
 * workflows, jobs and test results, read at the world's clock:
 *
 * - GET /api/v2/insights/{slug}/workflows[?all-branches=true][&page-token=]: the names of the
 *   workflows that ran in the last 90 days, by name, with their metrics; offset pages.
 * - GET /api/v2/insights/{slug}/workflows/{name}?all-branches=true[&start-date=][&end-date=][&page-token=]:
 *   one item per run of that workflow name, newest first (created_at, then id). A run is a workflow
 *   of the world: id = the workflow id, status and stopped_at as the workflow shows them, duration
 *   (seconds) null while it runs, credits 10 a started minute of each job that ran in it (jobs a
 *   "rerun from failed" adopted ran, and were paid, in the earlier workflow). Runs created more than
 *   90 days ago are gone. start-date older than that, end-date without start-date, before it or more
 *   than 90 days after it: 400. Without all-branches=true, only the default branch's runs. Keyset
 *   page tokens (the last run's created_at and id), bound to the query: runs that arrive while a
 *   client pages appear on page 1 only, so nothing repeats or is skipped.
 * - GET /api/v2/insights/{slug}/flaky-tests: no paging. A flaky test is a (workflow name, job name,
 *   classname, test name) that failed at least once in the last 90 days and that the mock deems
 *   flaky (a hash of its identity, a third of them); its latest failure names the workflow and job.
 *
 * `keyStyle` picks the spelling: 'underscore' (credits_used; flaky_tests, test_name, ...: what
 * CircleCI's own clients parse) or 'hyphen' (credits-used, the runs' only other key: an older
 * preview; flaky-tests, test-name, ...: every key of the OpenAPI document's flaky tests). `unavailable` projects answer 404 on every Insights route,
 * as an older CircleCI Server does.
 */
import { hash32 } from './random.js';
import type { World } from './world.js';
import type { Reply } from './server.js';

export const INSIGHTS_DAYS = 90;
const DAY = 86_400_000;
const WINDOW_MS = INSIGHTS_DAYS * DAY;
/** Reruns are created within 5 days of their pipeline (world.ts RERUN_WINDOW_MS): older pipelines have no run inside the window. */
const PIPELINE_SLACK_MS = 6 * DAY;
const CREDITS_PER_MINUTE = 10;

export type InsightsKeyStyle = 'underscore' | 'hyphen';

export interface InsightsRouteOptions {
  keyStyle: InsightsKeyStyle;
  pageSize: number;
  /** Slugs (any alias form) whose Insights answer 404; true: every project's. */
  unavailable: true | readonly string[];
  encode(payload: Record<string, unknown>): string;
  decode(token: string): Record<string, unknown> | undefined;
}

/** One item of GET /insights/{slug}/workflows/{name}, underscored, plus the name it is listed under. */
export interface WorkflowRunItem {
  id: string;
  branch: string | null;
  duration: number | null;
  created_at: string;
  stopped_at: string | null;
  credits_used: number;
  status: string | null;
  is_approval: boolean;
}

/** One flaky test, underscored. */
export interface FlakyTestItem {
  time_wasted: number;
  workflow_created_at: string;
  workflow_id: string;
  classname: string;
  pipeline_number: number;
  workflow_name: string;
  test_name: string;
  job_name: string;
  job_number: number;
  times_flaked: number;
  source: string;
  file: string | null;
}

interface Run extends WorkflowRunItem {
  name: string;
  /** created_at, epoch ms (for ordering and filtering). */
  t: number;
}

const json = (status: number, payload: unknown): Reply => ({ status, body: JSON.stringify(payload) });
const message = (status: number, text: string): Reply => json(status, { message: text });
const hyphenate = (o: object): Record<string, unknown> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/_/g, '-'), v]));

/** Every run of a project CircleCI's Insights still hold at the world's clock, newest first. */
function runsOf(world: World, slug: string): Run[] {
  const now = world.now().getTime();
  const out: Run[] = [];
  for (const p of world.listPipelines(slug)) {
    const created = Date.parse(String(p.created_at));
    if (created < now - WINDOW_MS - PIPELINE_SLACK_MS) break; // newest first
    const vcs = p.vcs as { branch?: string } | undefined;
    const git = (p.trigger_parameters as { git?: { branch?: string } } | undefined)?.git;
    const branch = vcs?.branch ?? git?.branch ?? null;
    for (const wf of world.workflowsOf(p.id) ?? []) {
      const t = Date.parse(String(wf.created_at));
      if (t < now - WINDOW_MS) continue;
      const jobs = world.jobsOf(wf.id) ?? [];
      let credits = 0;
      for (const j of jobs) {
        if (!j.started_at || Date.parse(j.started_at) < t) continue; // never started, or adopted by a rerun
        const seconds = ((j.stopped_at ? Date.parse(j.stopped_at) : now) - Date.parse(j.started_at)) / 1000;
        credits += CREDITS_PER_MINUTE * Math.max(1, Math.ceil(seconds / 60));
      }
      const stopped = wf.stopped_at ?? null;
      out.push({
        name: String(wf.name),
        t,
        id: wf.id,
        branch,
        duration: stopped ? Math.round((Date.parse(stopped) - t) / 1000) : null,
        created_at: String(wf.created_at),
        stopped_at: stopped,
        credits_used: credits,
        status: wf.status ?? null,
        is_approval: jobs.some((j) => j.type === 'approval'),
      });
    }
  }
  return out.sort((a, b) => b.t - a.t || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** The project's flaky tests at the world's clock, by workflow, job, classname and test name. */
function flakyOf(world: World, slug: string): FlakyTestItem[] {
  const now = world.now().getTime();
  const groups = new Map<string, FlakyTestItem>();
  for (const p of world.listPipelines(slug)) {
    if (Date.parse(String(p.created_at)) < now - WINDOW_MS - PIPELINE_SLACK_MS) break;
    for (const wf of world.workflowsOf(p.id) ?? []) {
      const wfTime = Date.parse(String(wf.created_at));
      if (wfTime < now - WINDOW_MS) continue;
      for (const j of world.jobsOf(wf.id) ?? []) {
        // Results belong to the workflow the job ran in (an adopted copy started before it).
        if (j.type !== 'build' || j.job_number === undefined || !j.started_at || Date.parse(j.started_at) < wfTime) continue;
        for (const t of world.jobTests(slug, j.job_number) ?? []) {
          if (t.result !== 'failure') continue;
          const id = [String(wf.name), j.name, t.classname, t.name];
          if (hash32(world.seed, 'flaky', ...id) % 3 !== 0) continue;
          const key = JSON.stringify(id);
          const g = groups.get(key);
          const latest = !g || wfTime > Date.parse(g.workflow_created_at) || (wfTime === Date.parse(g.workflow_created_at) && j.job_number > g.job_number);
          const wasted = (g?.time_wasted ?? 0) + Math.round(t.run_time);
          const flaked = (g?.times_flaked ?? 0) + 1;
          if (!latest && g) {
            g.time_wasted = wasted;
            g.times_flaked = flaked;
            continue;
          }
          groups.set(key, {
            time_wasted: wasted,
            workflow_created_at: String(wf.created_at),
            workflow_id: wf.id,
            classname: t.classname,
            pipeline_number: Number(p.number),
            workflow_name: String(wf.name),
            test_name: t.name,
            job_name: j.name,
            job_number: j.job_number,
            times_flaked: flaked,
            source: t.source,
            file: t.file,
          });
        }
      }
    }
  }
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

export interface InsightsTruth {
  /** Every run Insights hold created at or after `since`, underscored, with the connector's _project_slug and _workflow_name. */
  workflow_runs: (WorkflowRunItem & { _project_slug: string; _workflow_name: string })[];
  /** Every project's flaky tests, underscored, with _project_slug. */
  flaky_tests: (FlakyTestItem & { _project_slug: string })[];
}

/**
 * What a correct sync of these projects holds at the world's clock: runs created at or after
 * `since` (and inside the 90 days), and the flaky tests of today. Projects whose Insights are
 * unavailable are left out by the caller.
 */
export function insightsTruth(world: World, projects: readonly string[], since: Date): InsightsTruth {
  const out: InsightsTruth = { workflow_runs: [], flaky_tests: [] };
  for (const raw of projects) {
    const slug = world.canonicalSlug(raw);
    if (!slug) continue;
    for (const { name, t, ...run } of runsOf(world, slug)) {
      if (t >= since.getTime()) out.workflow_runs.push({ ...run, _project_slug: slug, _workflow_name: name });
    }
    for (const f of flakyOf(world, slug)) out.flaky_tests.push({ ...f, _project_slug: slug });
  }
  return out;
}

const parseTime = (v: string | null): number | undefined | null => {
  if (v === null || v === '') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
};

export function insightsRoutes(world: World, o: InsightsRouteOptions) {
  const unavailable = (slug: string): boolean =>
    o.unavailable === true || o.unavailable.some((s) => world.canonicalSlug(s) === slug);
  /** Runs of one branch or all. */
  const branchRuns = (slug: string, q: URLSearchParams): Run[] => {
    const runs = runsOf(world, slug);
    if (q.get('all-branches') === 'true') return runs;
    const main = world.project(slug)?.vcs_info.default_branch;
    return runs.filter((r) => r.branch === main);
  };
  // The older preview differed in this one key only.
  const runItem = ({ name: _n, t: _t, credits_used, ...run }: Run): Record<string, unknown> =>
    o.keyStyle === 'hyphen' ? { ...run, 'credits-used': credits_used } : { ...run, credits_used };
  /** The project (404 if unknown or without Insights). */
  const project = (raw: string): string | Reply => {
    const slug = world.canonicalSlug(raw);
    if (!slug) return message(404, 'Project not found');
    if (unavailable(slug)) return message(404, 'Not Found');
    return slug;
  };

  return {
    workflows(raw: string, q: URLSearchParams): Reply {
      const slug = project(raw);
      if (typeof slug !== 'string') return slug;
      const byName = new Map<string, Run[]>();
      for (const r of branchRuns(slug, q)) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
      const now = world.now();
      const items = [...byName.keys()].sort().map((name) => {
        const runs = byName.get(name)!;
        const ok = runs.filter((r) => r.status === 'success').length;
        const failed = runs.filter((r) => r.status === 'failed').length;
        const durations = runs.filter((r) => r.duration !== null).map((r) => r.duration as number).sort((a, b) => a - b);
        const at = (f: number) => (durations.length ? durations[Math.min(durations.length - 1, Math.floor(f * durations.length))] : 0);
        const mean = durations.length ? Math.round(durations.reduce((a, b) => a + b, 0) / durations.length) : 0;
        return {
          name,
          project_id: world.project(slug)?.id,
          window_start: new Date(now.getTime() - WINDOW_MS).toISOString(),
          window_end: now.toISOString(),
          metrics: {
            total_runs: runs.length,
            successful_runs: ok,
            failed_runs: failed,
            success_rate: runs.length ? ok / runs.length : 0,
            mttr: 0,
            throughput: runs.length / INSIGHTS_DAYS,
            total_recoveries: 0,
            total_credits_used: runs.reduce((a, r) => a + r.credits_used, 0),
            duration_metrics: { min: at(0), mean, median: at(0.5), p95: at(0.95), max: at(1), standard_deviation: 0 },
          },
        };
      });
      const bind = { r: 'iw', s: slug, b: q.get('all-branches') === 'true' };
      let offset = 0;
      const tok = q.get('page-token');
      if (tok) {
        const t = o.decode(tok);
        if (!t || t.r !== bind.r || t.s !== bind.s || t.b !== bind.b || !Number.isSafeInteger(t.o)) return message(404, 'Not Found');
        offset = t.o as number;
      }
      const next = offset + o.pageSize < items.length ? o.encode({ ...bind, o: offset + o.pageSize }) : null;
      return json(200, { items: items.slice(offset, offset + o.pageSize), next_page_token: next });
    },

    runs(raw: string, name: string, q: URLSearchParams): Reply {
      const slug = project(raw);
      if (typeof slug !== 'string') return slug;
      const now = world.now().getTime();
      const start = parseTime(q.get('start-date'));
      const end = parseTime(q.get('end-date'));
      if (start === null || end === null) return message(400, 'start-date and end-date must be ISO 8601 date-times.');
      if (start !== undefined && start < now - WINDOW_MS) return message(400, `start-date must be no more than ${INSIGHTS_DAYS} days ago.`);
      if (end !== undefined && start === undefined) return message(400, 'end-date needs a start-date.');
      if (end !== undefined && start !== undefined && (end < start || end > start + WINDOW_MS)) {
        return message(400, `end-date must be after start-date and at most ${INSIGHTS_DAYS} days after it.`);
      }
      const bind = { r: 'ir', s: slug, w: name, b: q.get('all-branches') === 'true', q: [q.get('start-date'), q.get('end-date')] };
      let after: [number, string] | undefined;
      const tok = q.get('page-token');
      if (tok) {
        const t = o.decode(tok);
        const ok = t && t.r === bind.r && t.s === bind.s && t.w === bind.w && t.b === bind.b && JSON.stringify(t.q) === JSON.stringify(bind.q) &&
          Array.isArray(t.a) && typeof t.a[0] === 'number' && typeof t.a[1] === 'string';
        if (!ok) return message(404, 'Not Found');
        after = t.a as [number, string];
      }
      const runs = branchRuns(slug, q).filter(
        (r) => r.name === name && r.t >= (start ?? -Infinity) && r.t < (end ?? Infinity) &&
          (!after || r.t < after[0] || (r.t === after[0] && r.id < after[1])),
      );
      const items = runs.slice(0, o.pageSize);
      const last = items[items.length - 1];
      const next = runs.length > o.pageSize ? o.encode({ ...bind, a: [last.t, last.id] }) : null;
      return json(200, { items: items.map(runItem), next_page_token: next });
    },

    flakyTests(raw: string): Reply {
      const slug = project(raw);
      if (typeof slug !== 'string') return slug;
      const tests = flakyOf(world, slug);
      if (o.keyStyle === 'hyphen') return json(200, { 'flaky-tests': tests.map(hyphenate), 'total-flaky-tests': tests.length });
      return json(200, { flaky_tests: tests, total_flaky_tests: tests.length });
    },
  };
}

/**
 * The rows of CircleCI's Usage Export (one per job run), derived from the mock's World, and their
 * CSV form: an UPPERCASE header of the 48 documented columns, RFC 4180 quoting, LF line ends.
 *
 * Which job runs a window holds (the rule this mock picks, see docs/mock-usage.md): every build
 * job that ran (has a start and a stop) whose run STARTED inside [start, end) and STOPPED before
 * the start of the world's current UTC day (CircleCI refreshes the data daily through the
 * previous full day). A job carried into a "rerun from failed" workflow did not run again: it is
 * one row, under the workflow it ran in.
 *
 * Cells: numbers as plain decimals, flags Y/N, date-times as ISO 8601 (UTC, ms), the three *_date
 * columns as YYYY-MM-DD, absent values as empty cells. usageRows() gives the same rows typed
 * (numbers, booleans, strings, null for empty), lowercase keys: what a connector should emit.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { Rng, hash32, uuidFor } from './random.js';
import { RERUN_WINDOW_MS, type World } from './world.js';

/** The 48 columns, in the order of the export. */
export const USAGE_COLUMNS = [
  'organization_id',
  'organization_name',
  'organization_created_date',
  'project_id',
  'project_name',
  'project_created_date',
  'last_build_finished_at',
  'vcs_name',
  'vcs_url',
  'vcs_branch',
  'pipeline_id',
  'pipeline_created_at',
  'pipeline_number',
  'is_unregistered_user',
  'pipeline_trigger_source',
  'pipeline_trigger_user_id',
  'workflow_id',
  'workflow_name',
  'workflow_first_job_queued_at',
  'workflow_first_job_started_at',
  'workflow_stopped_at',
  'is_workflow_successful',
  'job_name',
  'job_id',
  'job_run_number',
  'job_run_date',
  'job_run_queued_at',
  'job_run_started_at',
  'job_run_stopped_at',
  'job_build_status',
  'resource_class',
  'operating_system',
  'executor',
  'parallelism',
  'job_run_seconds',
  'median_cpu_utilization_pct',
  'max_cpu_utilization_pct',
  'median_ram_utilization_pct',
  'max_ram_utilization_pct',
  'compute_credits',
  'dlc_credits',
  'user_credits',
  'storage_credits',
  'network_credits',
  'lease_credits',
  'lease_overage_credits',
  'ipranges_credits',
  'total_credits',
] as const;

export type UsageColumn = (typeof USAGE_COLUMNS)[number];
export type UsageCellType = 'string' | 'number' | 'boolean' | 'date-time' | 'date';

const NUMBER_COLUMNS = new Set<UsageColumn>([
  'pipeline_number',
  'job_run_number',
  'parallelism',
  'job_run_seconds',
  'median_cpu_utilization_pct',
  'max_cpu_utilization_pct',
  'median_ram_utilization_pct',
  'max_ram_utilization_pct',
  'compute_credits',
  'dlc_credits',
  'user_credits',
  'storage_credits',
  'network_credits',
  'lease_credits',
  'lease_overage_credits',
  'ipranges_credits',
  'total_credits',
]);

/** How each column's cells read: what the mock writes, and what a typed row holds. */
export const USAGE_COLUMN_TYPES: Record<UsageColumn, UsageCellType> = Object.fromEntries(
  USAGE_COLUMNS.map((c) => [
    c,
    NUMBER_COLUMNS.has(c) ? 'number' : c.startsWith('is_') ? 'boolean' : c.endsWith('_date') ? 'date' : c.endsWith('_at') ? 'date-time' : 'string',
  ]),
) as Record<UsageColumn, UsageCellType>;

/** One row, typed: numbers, booleans (Y/N), strings (ids, names, ISO times), null for an empty cell. */
export type UsageRow = { [K in UsageColumn]: string | number | boolean | null };

const DAY = 86_400_000;

/** Credits per minute per resource class (CircleCI's published rates, rounded). */
const CREDITS_PER_MIN: Record<string, number> = {
  small: 5,
  medium: 10,
  'medium+': 15,
  large: 20,
  xlarge: 40,
  'arm.medium': 10,
  'macos.m1.medium.gen1': 150,
  'macos.m1.large.gen1': 250,
  'm2pro.medium': 150,
};

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const dateOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
/** A fixed day between 2018 and 2022 for an id: when its organization or project was created. */
const createdDay = (id: string, after = Date.UTC(2018, 0, 1)): number => after + (hash32(id, 'created') % 1200) * DAY;

/** The start of the UTC day of `ms`. */
export function utcDayStart(ms: number): number {
  return Math.floor(ms / DAY) * DAY;
}

interface RunFacts {
  queuedMs: number;
  startedMs: number;
  stoppedMs: number;
}

/**
 * The rows a completed export of [start, end) for `orgId` (plus `sharedOrgIds`) holds at the
 * world's current clock, in export order (project by project in world order, then by run start,
 * then job id). See the module comment for the rule.
 */
export function usageRows(world: World, orgId: string, start: Date, end: Date, sharedOrgIds: string[] = []): UsageRow[] {
  const startMs = start.getTime();
  const endMs = end.getTime();
  const cutMs = utcDayStart(world.now().getTime());
  const orgs = new Set([orgId, ...sharedOrgIds]);
  // A run that starts in the window belongs to a pipeline created at most RERUN_WINDOW_MS before it.
  const truth = world.groundTruth(new Date(startMs - RERUN_WINDOW_MS - DAY), { tests: false });
  const projects = new Map(truth.projects.filter((p) => orgs.has(p.organization_id)).map((p) => [p.slug, p]));
  const pipelines = new Map(truth.pipelines.map((p) => [p.id, p]));
  const workflows = new Map(truth.workflows.map((w) => [w.id, w]));
  const details = new Map(truth.job_details.map((d) => [`${d._project_slug} ${d.number}`, d]));

  // Each job run once, under the first workflow that lists it (the one it ran in).
  const runs: { job: (typeof truth.jobs)[number]; facts: RunFacts }[] = [];
  const seen = new Set<string>();
  const firstOfWorkflow = new Map<string, { queued: number; started: number }>();
  for (const job of truth.jobs) {
    if (seen.has(job.id as string)) continue;
    seen.add(job.id as string);
    if (job.type !== 'build' || job.job_number == null || !projects.has(job.project_slug as string)) continue;
    const d = details.get(`${job.project_slug} ${job.job_number}`);
    if (!d || d.started_at === null || d.stopped_at === null) continue;
    const facts = { queuedMs: Date.parse(d.queued_at), startedMs: Date.parse(d.started_at), stoppedMs: Date.parse(d.stopped_at) };
    const wf = firstOfWorkflow.get(job._workflow_id as string);
    firstOfWorkflow.set(job._workflow_id as string, {
      queued: Math.min(wf?.queued ?? Infinity, facts.queuedMs),
      started: Math.min(wf?.started ?? Infinity, facts.startedMs),
    });
    if (facts.startedMs < startMs || facts.startedMs >= endMs || facts.stoppedMs >= cutMs) continue;
    runs.push({ job, facts });
  }
  const order = [...projects.keys()];
  runs.sort(
    (a, b) =>
      order.indexOf(a.job.project_slug as string) - order.indexOf(b.job.project_slug as string) ||
      a.facts.startedMs - b.facts.startedMs ||
      ((a.job.id as string) < (b.job.id as string) ? -1 : 1),
  );

  return runs.map(({ job, facts }) => {
    const p = projects.get(job.project_slug as string)!;
    const d = details.get(`${job.project_slug} ${job.job_number}`)!;
    const wf = workflows.get(job._workflow_id as string)!;
    const pl = pipelines.get(job._pipeline_id as string)!;
    const first = firstOfWorkflow.get(wf.id as string)!;
    const trigger = pl.trigger as { type?: string; actor?: { login?: string } } | undefined;
    const vcs = pl.vcs as { branch?: string } | undefined;
    const scheduled = trigger?.type === 'scheduled_pipeline';
    const seconds = Math.round((facts.stoppedMs - facts.startedMs) / 1000);
    const ex = d.executor;
    const os = ex.type === 'macos' ? 'macos' : 'linux';
    const r = new Rng(hash32('usage', job.id as string));
    // macOS jobs report no utilisation: empty cells.
    const cpuMedian = os === 'macos' ? null : r.int(5, 85);
    const ramMedian = os === 'macos' ? null : r.int(10, 80);
    const compute = (CREDITS_PER_MIN[ex.resource_class] ?? 10) * Math.max(1, Math.ceil(seconds / 60)) * d.parallelism;
    const dlc = ex.type === 'docker' && hash32(p.id, job.name as string, 'dlc') % 5 === 0 ? 200 : 0;
    const storage = round3(r.int(0, 400) / 1000);
    const network = r.chance(0.3) ? round3(r.int(1, 2000) / 1000) : 0;
    const wfStopped = wf.stopped_at ?? null;
    const row: UsageRow = {
      organization_id: p.organization_id,
      organization_name: p.organization_name,
      organization_created_date: dateOf(createdDay(p.organization_id)),
      project_id: p.id,
      project_name: p.name,
      project_created_date: dateOf(createdDay(p.id, createdDay(p.organization_id))),
      last_build_finished_at: wfStopped,
      vcs_name: p.vcs_info.provider.toLowerCase(),
      vcs_url: p.vcs_info.vcs_url,
      vcs_branch: vcs?.branch ?? null,
      pipeline_id: pl.id as string,
      pipeline_created_at: pl.created_at as string,
      pipeline_number: pl.number as number,
      is_unregistered_user: (trigger?.actor?.login ?? '').endsWith('[bot]'),
      pipeline_trigger_source: trigger?.type ?? null,
      pipeline_trigger_user_id: scheduled ? null : ((wf.started_by as string | undefined) ?? null),
      workflow_id: wf.id as string,
      workflow_name: wf.name as string,
      workflow_first_job_queued_at: new Date(first.queued).toISOString(),
      workflow_first_job_started_at: new Date(first.started).toISOString(),
      workflow_stopped_at: wfStopped,
      is_workflow_successful: wfStopped === null ? null : wf.status === 'success',
      job_name: job.name as string,
      job_id: job.id as string,
      job_run_number: job.job_number as number,
      job_run_date: dateOf(facts.startedMs),
      job_run_queued_at: d.queued_at,
      job_run_started_at: d.started_at,
      job_run_stopped_at: d.stopped_at,
      job_build_status: d.status,
      resource_class: ex.resource_class,
      operating_system: os,
      executor: ex.type,
      parallelism: d.parallelism,
      job_run_seconds: seconds,
      median_cpu_utilization_pct: cpuMedian,
      max_cpu_utilization_pct: cpuMedian === null ? null : Math.min(100, cpuMedian + r.int(0, 15)),
      median_ram_utilization_pct: ramMedian,
      max_ram_utilization_pct: ramMedian === null ? null : Math.min(100, ramMedian + r.int(0, 20)),
      compute_credits: compute,
      dlc_credits: dlc,
      user_credits: 0,
      storage_credits: storage,
      network_credits: network,
      // Lease columns apply to plans this world does not model: absent.
      lease_credits: null,
      lease_overage_credits: null,
      ipranges_credits: 0,
      total_credits: round3(compute + dlc + storage + network),
    };
    return row;
  });
}

// ---------------------------------------------------------------------------------------------
// CSV

/** RFC 4180: quote a cell holding a comma, a quote, CR or LF; double the quotes inside. */
export function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** A typed value as the export writes it: '' for null, Y/N for booleans. */
export function cellText(value: string | number | boolean | null): string {
  if (value === null) return '';
  if (typeof value === 'boolean') return value ? 'Y' : 'N';
  return String(value);
}

/** The header line, UPPERCASE, with its line end. */
export const USAGE_HEADER_LINE = USAGE_COLUMNS.map((c) => c.toUpperCase()).join(',') + '\n';

export function csvLine(row: UsageRow): string {
  return USAGE_COLUMNS.map((c) => csvCell(cellText(row[c]))).join(',') + '\n';
}

/** The export's parts as CSV text: `rowsPerPart` rows each (at least one part), each with the header. */
export function csvParts(rows: UsageRow[], rowsPerPart: number): string[] {
  const size = Math.max(1, Math.floor(rowsPerPart));
  const parts: string[] = [];
  for (let i = 0; i === 0 || i < rows.length; i += size) {
    parts.push(USAGE_HEADER_LINE + rows.slice(i, i + size).map(csvLine).join(''));
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// A big export for the bench

const BENCH_JOBS = ['build', 'unit-test', 'lint', 'integration-test', 'e2e', 'deploy', 'test "node", 20\nmatrix'];
const BENCH_WORKFLOWS = ['build-and-test', 'nightly', 'release, "canary"'];
const BENCH_BRANCHES = ['main', 'develop', 'feature/search', 'fix/cache-keys', 'renovate/jest-packages'];
const BENCH_CLASSES: [string, string, string][] = [
  ['medium', 'docker', 'linux'],
  ['large', 'docker', 'linux'],
  ['xlarge', 'machine', 'linux'],
  ['macos.m1.medium.gen1', 'macos', 'macos'],
];

/**
 * Writes a gzipped usage export of about `approxBytes` of CSV (uncompressed) to `path`, row by
 * row with backpressure, so it never holds the file in memory. Rows look like the mock's (same
 * columns and formats, a few CSV-hard names) but come from a seeded generator, not a World.
 */
export async function writeUsageExport(path: string, approxBytes: number, seed = 1): Promise<{ rows: number; bytes: number }> {
  const gzip = createGzip();
  const file = createWriteStream(path);
  gzip.pipe(file);
  const done = once(file, 'close');
  const r = new Rng(hash32(seed, 'bench-usage'));
  const orgId = uuidFor(seed, 'bench-org');
  const projects = Array.from({ length: 20 }, (_, i) => ({ id: uuidFor(seed, 'bench-project', i), name: `service-${i + 1}` }));
  let bytes = 0;
  let rows = 0;
  const write = async (text: string): Promise<void> => {
    bytes += Buffer.byteLength(text);
    if (!gzip.write(text)) await once(gzip, 'drain');
  };
  await write(USAGE_HEADER_LINE);
  let t = Date.UTC(2026, 0, 1);
  while (bytes < approxBytes) {
    const p = projects[r.int(0, projects.length - 1)];
    const [rc, executor, os] = BENCH_CLASSES[r.int(0, BENCH_CLASSES.length - 1)];
    t += r.int(1, 20) * 1000;
    const queued = t;
    const started = queued + r.int(0, 30_000);
    const seconds = r.int(5, 1800);
    const stopped = started + seconds * 1000;
    const parallelism = r.chance(0.2) ? r.int(2, 4) : 1;
    const compute = (CREDITS_PER_MIN[rc] ?? 10) * Math.ceil(seconds / 60) * parallelism;
    const storage = round3(r.int(0, 400) / 1000);
    const cpu = os === 'macos' ? null : r.int(5, 85);
    const wfStopped = new Date(stopped + r.int(0, 600_000)).toISOString();
    const row: UsageRow = {
      organization_id: orgId,
      organization_name: 'acme',
      organization_created_date: '2019-04-02',
      project_id: p.id,
      project_name: p.name,
      project_created_date: '2020-01-15',
      last_build_finished_at: wfStopped,
      vcs_name: 'github',
      vcs_url: `https://github.com/acme/${p.name}`,
      vcs_branch: r.chance(0.05) ? null : BENCH_BRANCHES[r.int(0, BENCH_BRANCHES.length - 1)],
      pipeline_id: r.uuid(),
      pipeline_created_at: new Date(queued - 5000).toISOString(),
      pipeline_number: 1000 + rows,
      is_unregistered_user: r.chance(0.1),
      pipeline_trigger_source: 'webhook',
      pipeline_trigger_user_id: r.uuid(),
      workflow_id: r.uuid(),
      workflow_name: BENCH_WORKFLOWS[r.int(0, BENCH_WORKFLOWS.length - 1)],
      workflow_first_job_queued_at: new Date(queued).toISOString(),
      workflow_first_job_started_at: new Date(started).toISOString(),
      workflow_stopped_at: wfStopped,
      is_workflow_successful: r.chance(0.9),
      job_name: BENCH_JOBS[r.int(0, BENCH_JOBS.length - 1)],
      job_id: r.uuid(),
      job_run_number: 100_000 + rows,
      job_run_date: dateOf(started),
      job_run_queued_at: new Date(queued).toISOString(),
      job_run_started_at: new Date(started).toISOString(),
      job_run_stopped_at: new Date(stopped).toISOString(),
      job_build_status: r.chance(0.92) ? 'success' : 'failed',
      resource_class: rc,
      operating_system: os,
      executor,
      parallelism,
      job_run_seconds: seconds,
      median_cpu_utilization_pct: cpu,
      max_cpu_utilization_pct: cpu === null ? null : Math.min(100, cpu + r.int(0, 15)),
      median_ram_utilization_pct: cpu === null ? null : r.int(10, 80),
      max_ram_utilization_pct: cpu === null ? null : r.int(80, 100),
      compute_credits: compute,
      dlc_credits: 0,
      user_credits: 0,
      storage_credits: storage,
      network_credits: 0,
      lease_credits: null,
      lease_overage_credits: null,
      ipranges_credits: 0,
      total_credits: round3(compute + storage),
    };
    await write(csvLine(row));
    rows++;
  }
  gzip.end();
  await done;
  return { rows, bytes };
}

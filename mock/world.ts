/**
 * A deterministic, simulated CircleCI account: projects, pipelines, workflows and jobs that evolve
 * as a virtual clock moves. The mock server (server.ts) serves it through the API v2 routes; tests
 * compare what a sync wrote against World.groundTruth().
 *
 * How it stays cheap for big histories (a year of 30 pipelines a day in 3 projects):
 * - Only a compact record per pipeline is made up front (number, created time, id, branch).
 * - Everything else about a pipeline, its workflows and jobs is a *plan*: a timeline fixed at
 *   generation time from the pipeline's own seed (when each job becomes ready, starts, stops, how
 *   it ends; when the pipeline leaves setup; when a rerun happens). Plans are made lazily the first
 *   time they are needed and cached. What the API shows is the plan read at the current clock.
 * - So advance() only moves the clock and appends newly arrived pipelines; advance(a) then
 *   advance(b) is the same world as advance(a + b).
 *
 * Timing guarantees (what a connector's lookback window relies on):
 * - Every status change of a pipeline's original workflows and jobs (and of the pipeline itself:
 *   setup-pending -> setup -> created) happens within STATUS_WINDOW_MS (2 days) of the pipeline's
 *   created_at. Approvals left waiting too long are canceled before that deadline.
 * - Reruns (a new workflow, new id, in an existing pipeline) are created, and finish, within
 *   RERUN_WINDOW_MS (5 days) of the pipeline's created_at.
 * So a 7-day lookback on pipeline created_at catches every change.
 */
import type { Job, Pipeline, Workflow } from '../src/types/records.js';
import { Rng, hash32, uuidFor } from './random.js';

export interface WorldOptions {
  /** Default 1; everything is deterministic given seed + now. */
  seed?: number;
  /** The initial clock; default: the real current time truncated to whole seconds. */
  now?: Date;
  /** Short-form slugs (long forms github/, bitbucket/ are accepted and normalised). */
  projects?: string[];
  /** Pipelines exist from now - historyDays to now; default 30. */
  historyDays?: number;
  /** Average per project and day; default 4. */
  pipelinesPerDay?: number;
  /** Default 6 (some workflows have this many jobs, more than the server's default job page size of 5). */
  maxJobsPerWorkflow?: number;
  /**
   * Short slug -> ISO time the project is created. Before it the project is in no list and its
   * routes answer 404 Project not found; its pipelines start then (none before).
   */
  projectsCreated?: Record<string, string>;
  /** Short slug -> ISO time from which the project is archived: gone from every list and route. */
  archived?: Record<string, string>;
  /** Slugs the token's user does not follow (v1.1 lists followed projects only; v3 lists them all). */
  unfollowed?: string[];
}

/** An organization as the mock's org routes describe it. */
export interface OrgInfo {
  id: string;
  slug: string;
  name: string;
  vcs_type: string;
}

/** `count` project slugs `<org>/service-<i>` (i from 1): an organization of many small projects. */
export function serviceSlugs(count: number, org = 'gh/acme'): string[] {
  return Array.from({ length: count }, (_, i) => `${org}/service-${i + 1}`);
}

/** An item of GET /project/{slug}/{job-number}/tests, keys in the API's order. */
export interface TestItem {
  /** null for passed and skipped results. */
  message: string | null;
  source: string;
  /** Seconds. */
  run_time: number;
  file: string | null;
  result: 'success' | 'failure' | 'skipped';
  name: string;
  classname: string;
}

/** A job_details record: GET /project/{slug}/job/{number} plus the connector's fields. */
export type JobDetailsRecord = {
  /** The job's project_slug (short form). */
  _project_slug: string;
  /** created_at of the workflow named in latest_workflow, as the workflow shows it. */
  _workflow_created_at: string;
} & JobDetailsPayload;

/** A tests record: one test result of the workflow the job ran in. */
export type TestRecord = {
  _project_slug: string;
  _job_number: number;
  _workflow_id: string;
  _workflow_created_at: string;
  /** 0 for the first item of the job's list with this (classname, name, file), 1 for the next, ... */
  _occurrence: number;
} & TestItem;

/** What a correct full sync must hold. Jobs carry _pipeline_id, _workflow_id and _workflow_created_at. */
export interface GroundTruth {
  pipelines: Pipeline[];
  workflows: Workflow[];
  jobs: Job[];
  /** Every project of the world, in world order, whatever the start date. */
  projects: ProjectPayload[];
  /** One per (project, job number): numbered build jobs of the ground-truth workflows. */
  job_details: JobDetailsRecord[];
  /** Results of the finished build jobs, under the workflow each ran in (not copies adopted by a rerun). */
  tests: TestRecord[];
}

export interface GroundTruthOptions {
  /** Leave out the workflows and jobs of pipelines older than this (the server's retentionDays). */
  retentionDays?: number;
  /** Compute `tests` (default true); false leaves it empty. */
  tests?: boolean;
}

/** An item of GET /workflow/{id}/job (a Job record without the connector's _ fields). */
export type WorkflowJobItem = {
  dependencies: string[];
  /** Absent while blocked, and for jobs canceled before they were reached. */
  job_number?: number;
  id: string;
  /** Null while blocked or queued. */
  started_at: string | null;
  name: string;
  approved_by?: string;
  project_slug: string;
  status: string;
  type: 'build' | 'approval';
  requires?: Record<string, string[]>;
  stopped_at: string | null;
  /** Approval jobs only: equal to the job id. */
  approval_request_id?: string;
  canceled_by?: string;
};

export interface ProjectPayload {
  slug: string;
  name: string;
  id: string;
  organization_name: string;
  organization_slug: string;
  organization_id: string;
  vcs_info: { vcs_url: string; provider: 'GitHub' | 'Bitbucket' | 'CircleCI'; default_branch: string };
}

export interface MePayload {
  id: string;
  login: string;
  name: string;
}

export interface JobDetailsPayload {
  web_url: string;
  project: { id: string; slug: string; name: string; external_url: string };
  parallel_runs: { index: number; status: string }[];
  started_at: string | null;
  latest_workflow: { id: string; name: string };
  name: string;
  executor: { resource_class: string; type: string };
  parallelism: number;
  status: string;
  number: number;
  pipeline: { id: string };
  duration: number | null;
  created_at: string;
  messages: { type: string; message: string; reason?: string }[];
  contexts: { name: string }[];
  organization: { name: string };
  queued_at: string;
  stopped_at: string | null;
}

export const DEFAULT_PROJECTS = [
  'gh/acme/api',
  'bb/acme/web',
  'circleci/8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f/0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5',
];

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** Every status change of a pipeline and its original workflows/jobs happens within this of its created_at. */
export const STATUS_WINDOW_MS = 2 * DAY;
/** Reruns are created and finish within this of the pipeline's created_at. */
export const RERUN_WINDOW_MS = 5 * DAY;

/** Statuses of a job that make its workflow fail. */
const FAILED_LIKE = new Set(['failed', 'infrastructure_fail', 'timedout']);
/** Job statuses of a job that has not ended (no test results yet). */
const UNFINISHED = new Set(['running', 'queued', 'not_running', 'blocked', 'on_hold']);

// ---------------------------------------------------------------------------------------------
// Slugs

export interface ParsedSlug {
  /** gh, bb or circleci */
  vcs: 'gh' | 'bb' | 'circleci';
  org: string;
  repo: string;
  /** The short form, as emitted in payloads. */
  short: string;
}

const VCS_ALIASES: Record<string, ParsedSlug['vcs']> = { gh: 'gh', github: 'gh', bb: 'bb', bitbucket: 'bb', circleci: 'circleci' };

/** Parses a project slug (already %-decoded): exactly three non-empty segments, vcs gh|github|bb|bitbucket|circleci. */
export function parseSlug(slug: string): ParsedSlug | undefined {
  const parts = slug.split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  const vcs = VCS_ALIASES[parts[0].toLowerCase()];
  if (!vcs) return undefined;
  return { vcs, org: parts[1], repo: parts[2], short: `${vcs}/${parts[1]}/${parts[2]}` };
}

const slugKey = (p: ParsedSlug): string => `${p.vcs}/${p.org}/${p.repo}`.toLowerCase();

// ---------------------------------------------------------------------------------------------
// Internal model

interface Actor {
  login: string;
  avatar_url: string | null;
  id: string;
  bot: boolean;
}

interface ProjectState {
  index: number;
  parsed: ParsedSlug;
  slug: string;
  payload: ProjectPayload;
  /** https://github.com/acme/api and the like (for vcs urls). */
  repoUrl: string;
  defaultBranch: string;
  /** Pipelines in ascending number (= created_at) order; numbers are contiguous. */
  recs: PipelineRec[];
  byBranch: Map<string, PipelineRec[]>;
  /** Visible from createdMs (inclusive) until archivedMs (exclusive); -Infinity / Infinity by default. */
  createdMs: number;
  archivedMs: number;
  followed: boolean;
  firstNumber: number;
  /** Arrival process for pipelines after the initial clock. */
  fwd: Rng;
  nextArrivalMs: number;
}

type Force = 'setup' | 'running' | undefined;
type TriggerType = 'webhook' | 'api' | 'scheduled_pipeline' | 'explicit';

interface PipelineRec {
  project: ProjectState;
  number: number;
  createdMs: number;
  seed: number;
  id: string;
  actor: Actor;
  triggerType: TriggerType;
  /** The git branch (vcs.branch or trigger_parameters.git.branch); null for tag pipelines. */
  branch: string | null;
  tag: string | null;
  force: Force;
  plan?: PipelinePlan;
  kids?: WorkflowPlan[];
}

interface PipelinePlan {
  kind: 'normal' | 'setup' | 'errored' | 'empty';
  receivedMs: number;
  setupMs: number;
  continuedMs: number;
  errors: { type: string; message: string }[];
  /** Static parts of the payload, deep-frozen and shared by every view. */
  vcs?: Readonly<Record<string, unknown>>;
  triggerParameters?: Readonly<Record<string, unknown>>;
  trigger: Readonly<Record<string, unknown>>;
  createdIso: string;
  maxAutoReruns?: number;
}

interface JobSpec {
  name: string;
  type: 'build' | 'approval';
  deps: number[];
}

interface JobPlan {
  id: string;
  name: string;
  type: 'build' | 'approval';
  number: number;
  dependencies: string[];
  /** null: never reached (a dependency did not succeed); shows as blocked until canceled. */
  readyMs: number | null;
  /** build: when it starts running (>= readyMs; queued in between). approval: = readyMs. */
  startMs: number;
  /** build: when it ends. approval: when approved (Infinity if never: the workflow gets canceled). */
  doneMs: number;
  final: string;
  approvedBy?: string;
  cancelMs?: number;
  canceledBy?: string;
  /** Cached ISO strings. */
  startIso?: string;
  stopIso?: string;
  /** A copy carried over by a "rerun from failed" workflow: it ran in an earlier workflow. */
  adopted?: true;
}

interface WorkflowPlan {
  id: string;
  name: string;
  tag: 'setup' | null;
  createdMs: number;
  startedBy: string;
  specs: JobSpec[];
  jobs: JobPlan[];
  withRequires: boolean;
  /** When the workflow reaches its terminal status, and which. */
  stopMs: number;
  final: string;
  canceledBy?: string;
  erroredBy?: string;
  createdIso?: string;
  stopIso?: string;
}

interface Executor {
  type: string;
  resourceClass: string;
  parallelism: number;
}

interface PlanCtx {
  rec: PipelineRec;
  plan: PipelinePlan;
  r: Rng;
  slot: number;
}

// ---------------------------------------------------------------------------------------------
// Text pools

const USERS = ['alice-dev', 'bkowalski', 'chen-li', 'dpatel', 'emma-r', 'f.okafor'];
const BOTS = ['renovate[bot]', 'dependabot[bot]'];
const FEATURES = ['login-page', 'rate-limits', 'billing', 'search', 'cache-keys', 'docker-slim', 'metrics', 'oauth', 'export-csv', 'dark-mode', 'i18n', 'webhooks'];
const PACKAGES = ['jest', 'typescript', 'eslint', 'node', 'react', 'aws-sdk', 'lodash', 'prettier'];
const SUBJECTS = [
  'Fix flaky integration test',
  'Add retry to artifact upload',
  'Refactor config loader',
  'Update README',
  'Improve cache keys for node_modules',
  'Handle empty responses from the billing API',
  'Speed up the unit test shard',
  'Merge pull request #{n} from acme/{b}',
  'Bump version to {v}',
  'Remove dead code in the exporter',
];
const BODIES = ['', 'Co-authored-by: Chen Li <chen@example.com>', 'The old key missed the lockfile.\n\nCloses #{n}', 'See the discussion in #{n}.'];
const JOB_NAMES = ['checkout', 'lint', 'unit-test', 'build', 'integration-test', 'typecheck', 'e2e', 'security-scan', 'package', 'docs', 'coverage', 'smoke-test'];
/** A job name that a CSV parser splitting on commas or lines gets wrong (see kidsOf). */
export const ODD_JOB_NAME = 'checkout "shallow", depth=1\nsparse';
const WORKFLOW_NAMES = ['build-and-test', 'lint', 'deploy', 'docs', 'security', 'release'];
const CONFIG_ERRORS = [
  'Config does not conform to schema: {:workflows {:build-and-test {:jobs [{:deploy disallowed-key}]}}}',
  'Cannot find a job named `integration-test` to run in the `jobs:` section of your configuration file.',
  'Unable to parse YAML\nmapping values are not allowed here\n in \'string\', line 14, column 12:',
  'Orb circleci/node@9.9 not loaded. To use this orb, an organization admin must opt-in to using third party orbs.',
];

/** Jobs that run tests: [chance of none, min, max] results, and the mean run_time in seconds. */
const TEST_JOBS: Record<string, { none: number; min: number; max: number; mean: number }> = {
  'unit-test': { none: 0.08, min: 5, max: 45, mean: 0.08 },
  coverage: { none: 0.1, min: 10, max: 45, mean: 0.1 },
  'integration-test': { none: 0.1, min: 3, max: 32, mean: 0.9 },
  e2e: { none: 0.1, min: 2, max: 24, mean: 6 },
  'smoke-test': { none: 0.1, min: 1, max: 8, mean: 2 },
};
const TEST_MODULES = ['pager', 'auth', 'billing', 'export', 'search', 'cache', 'webhooks', 'config', 'retry', 'metrics', 'users', 'orders', 'checkout', 'i18n'];
const TEST_ASPECTS = ['', 'errors', 'edge cases', 'with a mocked clock', 'v2 API', 'concurrency'];
const TEST_CASES = [
  'returns 200 for a valid token',
  'rejects an expired token',
  'retries on 503',
  'handles an empty page',
  'keeps the order of items',
  'parses ISO dates',
  'escapes commas in CSV',
  'rounds amounts to cents',
  'stops on a null page token',
  'falls back to the default branch',
  'caches the second lookup',
  'times out after 30 s',
  'writes the header once',
  'skips deleted rows',
  'merges duplicate keys',
  'reports progress',
  'renders the empty state',
  'signs the webhook payload',
];
const FAILURES: Record<string, string[]> = {
  jest: [
    'Error: expect(received).toBe(expected) // Object.is equality\n\nExpected: 200\nReceived: 503\n    at Object.<anonymous> ({file}:42:17)',
    'Error: thrown: "Exceeded timeout of 5000 ms for a test."\n    at {file}:88:3',
    'TypeError: Cannot read properties of undefined (reading \'items\')\n    at Pager.next ({file}:17:31)',
  ],
  pytest: [
    'AssertionError: assert 503 == 200\n +  where 503 = <Response [503]>.status_code',
    'KeyError: \'next_page_token\'',
    'Failed: Timeout >30.0s',
  ],
  eslint: ['\'result\' is assigned a value but never used. (no-unused-vars)', 'Unexpected console statement. (no-console)'],
  unknown: ['expected 3 items but got 2', 'AssertionError: values differ\nexpected: "2024-03-11"\nactual:   "2024-03-10"'],
};
const JOB_MESSAGES = [
  { type: 'warning', message: 'This job used more than 90% of its memory; consider a larger resource class.', reason: 'resource_usage' },
  { type: 'warning', message: 'The image cimg/node:16.20 is deprecated and will stop working on 2026-06-01.', reason: 'deprecated_image' },
  { type: 'info', message: 'Docker layer caching was not available for this job.', reason: 'dlc_unavailable' },
  { type: 'warning', message: 'Test results were larger than 250 MB and have been truncated.', reason: 'test_results_truncated' },
];
const snake = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');

const isoMs = (ms: number): string => new Date(ms).toISOString();
/** Whole seconds, as workflows and jobs show them: 2024-03-11T14:56:45Z. */
const isoSec = (ms: number): string => new Date(ms).toISOString().slice(0, 19) + 'Z';
const ceilSec = (ms: number): number => Math.ceil(ms / SEC) * SEC;
const floorSec = (ms: number): number => Math.floor(ms / SEC) * SEC;

const PIPELINE_KEYS = ['id', 'errors', 'project_slug', 'updated_at', 'number', 'trigger_parameters', 'state', 'created_at', 'trigger', 'vcs'];
const WORKFLOW_KEYS = ['id', 'pipeline_id', 'pipeline_number', 'name', 'project_slug', 'status', 'started_by', 'canceled_by', 'errored_by', 'tag', 'created_at', 'stopped_at', 'auto_rerun_number', 'max_auto_reruns'];
const JOB_KEYS = ['_pipeline_id', '_workflow_id', '_workflow_created_at', 'id', 'job_number', 'name', 'project_slug', 'status', 'type', 'dependencies', 'requires', 'started_at', 'stopped_at', 'canceled_by', 'approved_by', 'approval_request_id'];

/** Keeps only the top-level keys the schemas document. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function pick<T extends object>(obj: T, keys: string[]): T {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in obj) out[k] = (obj as Record<string, unknown>)[k];
  return out as T;
}

// ---------------------------------------------------------------------------------------------

export class World {
  readonly seed: number;
  readonly historyDays: number;
  readonly pipelinesPerDay: number;
  readonly maxJobsPerWorkflow: number;
  /** Job numbers are pipeline_number * jobStride + slot within the pipeline. */
  readonly jobStride: number;
  private clock: number;
  private readonly initialMs: number;
  private readonly projects: ProjectState[] = [];
  private readonly projectByKey = new Map<string, ProjectState>();
  private readonly pipelineById = new Map<string, PipelineRec>();
  private readonly workflowById = new Map<string, { rec: PipelineRec; wf: WorkflowPlan }>();
  private readonly executors = new Map<string, Executor>();
  private readonly users: Actor[];
  private readonly bots: Actor[];
  private pipelineCount = 0;
  private materializedAtCount = -1;

  constructor(opts: WorldOptions = {}) {
    this.seed = opts.seed ?? 1;
    this.historyDays = opts.historyDays ?? 30;
    this.pipelinesPerDay = opts.pipelinesPerDay ?? 4;
    this.maxJobsPerWorkflow = Math.max(1, Math.floor(opts.maxJobsPerWorkflow ?? 6));
    // Up to 4 original workflows (setup + 3) and 2 reruns each: 10 workflows of maxJobs jobs.
    this.jobStride = 10 ** Math.ceil(Math.log10(10 * this.maxJobsPerWorkflow + 1));
    this.clock = opts.now ? opts.now.getTime() : floorSec(Date.now());
    this.initialMs = this.clock;

    const avatar = (login: string): string => `https://avatars.githubusercontent.com/u/${1000000 + (hash32(login) % 9000000)}?v=4`;
    this.users = USERS.map((login) => ({ login, avatar_url: avatar(login), id: uuidFor(this.seed, 'user', login), bot: false }));
    this.bots = BOTS.map((login) => ({ login, avatar_url: null, id: uuidFor(this.seed, 'user', login), bot: true }));

    const slugs = opts.projects ?? DEFAULT_PROJECTS;
    slugs.forEach((raw, index) => {
      const parsed = parseSlug(raw);
      if (!parsed) throw new Error(`World: invalid project slug ${JSON.stringify(raw)}`);
      if (this.projectByKey.has(slugKey(parsed))) throw new Error(`World: duplicate project slug ${raw}`);
      const project = this.makeProject(index, parsed);
      this.projects.push(project);
      this.projectByKey.set(slugKey(parsed), project);
    });
    // Lifecycle options name projects by slug (any alias form); an unknown slug is a test's typo.
    const lookup = (raw: string, option: string): ProjectState => {
      const parsed = parseSlug(raw);
      const p = parsed && this.projectByKey.get(slugKey(parsed));
      if (!p) throw new Error(`World: ${option} names ${JSON.stringify(raw)}, which is not in projects`);
      return p;
    };
    const time = (iso: string, option: string): number => {
      const ms = Date.parse(iso);
      if (Number.isNaN(ms)) throw new Error(`World: ${option} needs ISO times, got ${JSON.stringify(iso)}`);
      return ms;
    };
    for (const [slug, iso] of Object.entries(opts.projectsCreated ?? {})) lookup(slug, 'projectsCreated').createdMs = time(iso, 'projectsCreated');
    for (const [slug, iso] of Object.entries(opts.archived ?? {})) lookup(slug, 'archived').archivedMs = time(iso, 'archived');
    for (const slug of opts.unfollowed ?? []) lookup(slug, 'unfollowed').followed = false;
    for (const project of this.projects) this.generateHistory(project);
  }

  // ----- clock

  now(): Date {
    return new Date(this.clock);
  }

  /** Moves the clock forward; pipelines that arrive in the meantime appear, plans play on. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error('World.advance: ms must be >= 0');
    this.clock += ms;
    for (const p of this.projects) {
      // An archived project takes no new pipelines.
      while (p.nextArrivalMs <= this.clock && p.nextArrivalMs < p.archivedMs) {
        const last = p.recs[p.recs.length - 1];
        this.addPipeline(p, last ? last.number + 1 : p.firstNumber, p.nextArrivalMs, undefined);
        p.nextArrivalMs += this.gap(p.fwd);
      }
    }
  }

  // ----- projects and user

  /** Every project the world was built with, visible now or not. */
  projectSlugs(): string[] {
    return this.projects.map((p) => p.slug);
  }

  /** Whether a project exists at `at` (created, not archived). */
  private visible(p: ProjectState, at = this.clock): boolean {
    return at >= p.createdMs && at < p.archivedMs;
  }

  /** The organizations of the world's projects (visible or not), in order of first appearance; ids equal the projects' organization_id. */
  organizations(): OrgInfo[] {
    const out = new Map<string, OrgInfo>();
    const vcsType = { gh: 'github', bb: 'bitbucket', circleci: 'circleci' } as const;
    for (const p of this.projects) {
      const { organization_id: id, organization_slug: slug, organization_name: name } = p.payload;
      if (!out.has(id)) out.set(id, { id, slug, name, vcs_type: vcsType[p.parsed.vcs] });
    }
    return [...out.values()];
  }

  /** The projects of an organization visible at `at` (default: the clock), by name then slug (a stable order to page on). */
  orgProjects(orgId: string, at: Date = this.now()): ProjectPayload[] {
    return this.projects
      .filter((p) => p.payload.organization_id === orgId && this.visible(p, at.getTime()))
      .map((p) => structuredClone(p.payload))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0));
  }

  /** The visible projects the token's user follows (what v1.1 lists), in the world's order. */
  followedProjects(): ProjectPayload[] {
    return this.projects.filter((p) => p.followed && this.visible(p)).map((p) => structuredClone(p.payload));
  }

  /** The short-form slug of a known project (any alias form accepted), else undefined. */
  canonicalSlug(slug: string): string | undefined {
    return this.findProject(slug)?.slug;
  }

  project(slug: string): ProjectPayload | undefined {
    const p = this.findProject(slug);
    return p ? structuredClone(p.payload) : undefined;
  }

  /** GET /me: the owner of the mock's token (one of the pipeline actors). */
  me(): MePayload {
    const u = this.users[0];
    return { id: u.id, login: u.login, name: 'Alice Developer' };
  }

  /** Number of pipelines that exist at the current clock, over all projects. */
  size(): number {
    return this.pipelineCount;
  }

  // ----- pipelines

  /** Every pipeline of a project at the current clock, newest first (optionally one branch). */
  listPipelines(slug: string, branch?: string): Pipeline[] {
    const p = this.findProject(slug);
    if (!p) return [];
    const list = branch === undefined ? p.recs : p.byBranch.get(branch) ?? [];
    const out: Pipeline[] = [];
    for (let i = list.length - 1; i >= 0; i--) out.push(this.pipelineView(list[i]));
    return out;
  }

  /**
   * One page of a project's pipelines, newest first: up to `limit` pipelines with number < before
   * (all when before is undefined). `nextBefore` is the number of the last item when older
   * matching pipelines remain, else null. O(log n + limit).
   */
  pipelinePage(slug: string, q: { branch?: string; before?: number; limit: number }): { items: Pipeline[]; nextBefore: number | null } | undefined {
    const p = this.findProject(slug);
    if (!p) return undefined;
    const list = q.branch === undefined ? p.recs : p.byBranch.get(q.branch) ?? [];
    // Index of the newest record with number < before.
    let hi = list.length - 1;
    if (q.before !== undefined) {
      let lo = 0;
      let ans = -1;
      let h = list.length - 1;
      while (lo <= h) {
        const mid = (lo + h) >> 1;
        if (list[mid].number < q.before) {
          ans = mid;
          lo = mid + 1;
        } else h = mid - 1;
      }
      hi = ans;
    }
    const items: Pipeline[] = [];
    let i = hi;
    for (; i >= 0 && items.length < q.limit; i--) items.push(this.pipelineView(list[i]));
    const nextBefore = i >= 0 && items.length > 0 ? (items[items.length - 1].number as number) : null;
    return { items, nextBefore };
  }

  pipeline(id: string): Pipeline | undefined {
    const rec = this.pipelineById.get(id);
    return rec && this.visible(rec.project) ? this.pipelineView(rec) : undefined;
  }

  pipelineByNumber(slug: string, number: number): Pipeline | undefined {
    const rec = this.recByNumber(slug, number);
    return rec ? this.pipelineView(rec) : undefined;
  }

  /** created_at of a pipeline, or undefined for an unknown id (for retention checks). */
  pipelineCreatedAt(pipelineId: string): Date | undefined {
    const rec = this.pipelineById.get(pipelineId);
    return rec && this.visible(rec.project) ? new Date(rec.createdMs) : undefined;
  }

  // ----- workflows and jobs

  /** The workflows of a pipeline visible now, oldest first (reruns are appended); undefined for an unknown id. */
  workflowsOf(pipelineId: string): Workflow[] | undefined {
    const rec = this.pipelineById.get(pipelineId);
    if (!rec || !this.visible(rec.project)) return undefined;
    return this.kidsOf(rec)
      .filter((wf) => wf.createdMs <= this.clock)
      .map((wf) => this.workflowView(rec, wf));
  }

  workflow(id: string): Workflow | undefined {
    const hit = this.findWorkflow(id);
    return hit ? this.workflowView(hit.rec, hit.wf) : undefined;
  }

  /** The pipeline id of a visible workflow. */
  pipelineIdOfWorkflow(workflowId: string): string | undefined {
    return this.findWorkflow(workflowId)?.rec.id;
  }

  /** GET /workflow/{id}/job items (in a fixed order); undefined for an unknown workflow. */
  jobsOf(workflowId: string): WorkflowJobItem[] | undefined {
    const hit = this.findWorkflow(workflowId);
    if (!hit) return undefined;
    return hit.wf.jobs.map((j) => this.jobView(hit.rec, hit.wf, j));
  }

  /** GET /project/{slug}/job/{number}; undefined for approval jobs, unknown or not yet numbered jobs. */
  jobDetails(slug: string, number: number): JobDetailsPayload | undefined {
    const hit = this.findJob(slug, number);
    return hit ? this.detailsView(hit.rec, hit.wf, hit.j, hit.view) : undefined;
  }

  /**
   * GET /project/{slug}/{job-number}/tests, all pages: undefined where job details are (approval,
   * unknown, not numbered yet); [] while the job is queued or running (results come when it ends).
   */
  jobTests(slug: string, number: number): TestItem[] | undefined {
    const hit = this.findJob(slug, number);
    if (!hit) return undefined;
    return this.testsOf(hit.rec, hit.j, hit.view.status);
  }

  /** The pipeline id of a numbered build job (for retention checks). */
  pipelineIdOfJob(slug: string, number: number): string | undefined {
    return this.findJob(slug, number)?.rec.id;
  }

  /** A numbered build job by number, as its newest visible workflow shows it. */
  private findJob(slug: string, number: number): { rec: PipelineRec; wf: WorkflowPlan; j: JobPlan; view: WorkflowJobItem } | undefined {
    const p = this.findProject(slug);
    if (!p || !Number.isSafeInteger(number) || number < 0) return undefined;
    const rec = this.recByNumber(p.slug, Math.floor(number / this.jobStride));
    if (!rec) return undefined;
    const kids = this.kidsOf(rec);
    for (let w = kids.length - 1; w >= 0; w--) {
      const wf = kids[w];
      if (wf.createdMs > this.clock) continue;
      const j = wf.jobs.find((x) => x.number === number);
      if (!j) continue;
      const view = this.jobView(rec, wf, j);
      if (j.type === 'approval' || view.job_number === undefined) return undefined;
      return { rec, wf, j, view };
    }
    return undefined;
  }

  private detailsView(rec: PipelineRec, wf: WorkflowPlan, j: JobPlan, view: WorkflowJobItem): JobDetailsPayload {
    const p = rec.project;
    const number = j.number;
    // Job details carry milliseconds; the list shows the same instants cut to seconds.
    const started = view.started_at ? Date.parse(view.started_at) + (hash32(j.id, 's') % 1000) : null;
    const stopped = view.stopped_at ? Date.parse(view.stopped_at) + (hash32(j.id, 'e') % 1000) : null;
    const readyMs = j.readyMs as number;
    const parsed = p.parsed;
    const webProject = parsed.vcs === 'circleci' ? p.slug : `${parsed.vcs === 'gh' ? 'github' : 'bitbucket'}/${parsed.org}/${parsed.repo}`;
    const status = view.status;
    const ex = this.executorOf(p, j.name);
    const parallel_runs: { index: number; status: string }[] = [];
    for (let index = 0; index < ex.parallelism; index++) parallel_runs.push({ index, status });
    return {
      web_url: `https://app.circleci.com/pipelines/${webProject}/${rec.number}/workflows/${wf.id}/jobs/${number}`,
      project: { id: p.payload.id, slug: p.slug, name: p.payload.name, external_url: p.payload.vcs_info.vcs_url },
      parallel_runs,
      started_at: started === null ? null : isoMs(started),
      latest_workflow: { id: wf.id, name: wf.name },
      name: j.name,
      executor: { resource_class: ex.resourceClass, type: ex.type },
      parallelism: ex.parallelism,
      status,
      number,
      pipeline: { id: rec.id },
      duration: started !== null && stopped !== null ? stopped - started : null,
      created_at: isoMs(readyMs - 200 - (hash32(j.id, 'c') % 800)),
      messages: this.messagesOf(j),
      contexts: hash32(j.name, 'ctx') % 2 === 0 ? [{ name: 'org-global' }] : [],
      organization: { name: p.payload.organization_name },
      queued_at: isoMs(readyMs),
      stopped_at: stopped === null ? null : isoMs(stopped),
    };
  }

  /** Executor and parallelism come from the config: fixed per project and job name. */
  private executorOf(p: ProjectState, name: string): Executor {
    const key = `${p.index}\0${name}`;
    let ex = this.executors.get(key);
    if (!ex) this.executors.set(key, (ex = this.makeExecutor(p, name)));
    return ex;
  }

  private makeExecutor(p: ProjectState, name: string): Executor {
    const r = new Rng(hash32(this.seed, 'executor', p.slug, name));
    const type = name === 'setup' ? 'docker' : r.weighted([
      ['docker', 80],
      ['machine', 13],
      ['macos', 7],
    ]);
    const resourceClass =
      type === 'docker'
        ? r.weighted([
            ['small', 10],
            ['medium', 50],
            ['medium+', 10],
            ['large', 25],
            ['xlarge', 5],
          ])
        : type === 'machine'
          ? r.pick(['medium', 'large', 'xlarge', 'arm.medium'])
          : r.pick(['macos.m1.medium.gen1', 'macos.m1.large.gen1', 'm2pro.medium']);
    const parallelism = TEST_JOBS[name] && r.chance(0.4) ? r.int(2, 4) : 1;
    return { type, resourceClass, parallelism };
  }

  /**
   * A job's test results, fixed by the seed and its id (so they never change once it has ended):
   * empty until it ends, and for canceled, infrastructure_fail and timedout jobs.
   */
  private testsOf(rec: PipelineRec, j: JobPlan, status: string): TestItem[] {
    if (j.type !== 'build' || (status !== 'success' && status !== 'failed')) return [];
    const r = new Rng(hash32(this.seed, 'tests', j.id));
    const cfg = TEST_JOBS[j.name];
    let count = cfg ? (r.chance(cfg.none) ? 0 : r.int(cfg.min, cfg.max)) : r.chance(0.88) ? 0 : r.int(1, 6);
    const failed = status === 'failed';
    // A failed job reports what failed.
    if (failed && count === 0) count = r.int(1, 3);
    if (count === 0) return [];
    const source = !cfg ? (j.name === 'lint' ? 'eslint' : 'unknown') : r.chance(0.25) ? 'unknown' : rec.project.index % 2 === 0 ? 'jest' : 'pytest';
    // Real payloads often carry no file.
    const withFiles = source !== 'unknown' && r.chance(source === 'eslint' ? 0.9 : 0.65);
    const mean = cfg?.mean ?? 0.02;
    const failures = new Set<number>();
    if (failed) {
      const n = Math.min(count, 1 + (r.chance(0.35) ? r.int(1, 3) : 0));
      while (failures.size < n) failures.add(r.int(0, count - 1));
    }
    const items: TestItem[] = [];
    const seen = new Set<string>();
    let left = 0;
    let module = '';
    let classname = '';
    let file: string | null = null;
    for (let i = 0; i < count; i++) {
      if (left === 0) {
        left = r.int(1, 8);
        module = r.pick(TEST_MODULES);
        const aspect = r.pick(TEST_ASPECTS);
        const cap = module[0].toUpperCase() + module.slice(1);
        if (source === 'pytest') {
          classname = `tests.test_${module}.Test${cap}${aspect ? aspect.split(' ').map((w) => w[0].toUpperCase() + w.slice(1)).join('') : ''}`;
          file = `tests/test_${module}.py`;
        } else if (source === 'eslint') {
          classname = `src/${module}/${r.pick(['index', 'client', 'handlers', 'util'])}.ts`;
          file = classname;
        } else {
          classname = aspect ? `${cap} ${aspect}` : cap;
          file = `src/${module}/${module}.test.ts`;
        }
        if (!withFiles) file = null;
      }
      left--;
      let name = '';
      for (let tries = 0; tries < 4 && (name === '' || seen.has(`${classname}\0${name}`)); tries++) {
        const c = r.pick(TEST_CASES);
        name = source === 'pytest' ? `test_${snake(c)}` : source === 'eslint' ? `org.eslint.${r.pick(['no-unused-vars', 'no-console', 'eqeqeq', 'prefer-const'])}` : c;
      }
      if (seen.has(`${classname}\0${name}`)) name += source === 'pytest' ? `[case${i}]` : ` (${i})`;
      seen.add(`${classname}\0${name}`);
      const result: TestItem['result'] = failures.has(i) ? 'failure' : r.chance(0.04) ? 'skipped' : 'success';
      const message = result === 'failure' ? r.pick(FAILURES[source]).replace('{file}', file ?? `src/${module}/${module}.test.ts`) : null;
      const run_time = result === 'skipped' || r.chance(0.12) ? 0 : Math.round(r.exp(mean) * 1000) / 1000;
      items.push({ message, source, run_time, file, result, name, classname });
    }
    // Some jobs list a test twice, identically (a retried or parameterised test).
    if (items.length >= 2 && r.chance(0.15)) {
      const twice = new Set([r.int(0, items.length - 1), r.int(0, items.length - 1)]);
      const out: TestItem[] = [];
      items.forEach((t, i) => {
        out.push(t);
        if (twice.has(i)) out.push({ ...t, run_time: t.result === 'skipped' ? 0 : Math.round(r.exp(mean) * 1000) / 1000 });
      });
      return out;
    }
    return items;
  }

  private messagesOf(j: JobPlan): { type: string; message: string; reason?: string }[] {
    const h = hash32(this.seed, 'messages', j.id);
    if (h % 100 >= 6) return [];
    return [{ ...JOB_MESSAGES[(h >>> 8) % JOB_MESSAGES.length] }];
  }

  // ----- ground truth

  /**
   * What a correct full sync with this start_date holds at the current clock: pipelines with
   * created_at >= startDate (newest first, project by project), all their visible workflows, and
   * every job of those workflows with _pipeline_id, _workflow_id and _workflow_created_at. Only the top-level fields the
   * schemas document are kept (the payloads carry no others today). A job id can appear under
   * several workflows (rerun from failed), once per workflow. Plus every project, the details of
   * each numbered build job once (under its latest workflow), and the test results of each
   * finished build job under the workflow it ran in (see GroundTruth).
   */
  groundTruth(startDate: Date, opts: GroundTruthOptions = {}): GroundTruth {
    const startMs = startDate.getTime();
    const cut = opts.retentionDays !== undefined ? this.clock - opts.retentionDays * DAY : -Infinity;
    const withTests = opts.tests ?? true;
    const out: GroundTruth = {
      pipelines: [],
      workflows: [],
      jobs: [],
      projects: this.projects.filter((p) => this.visible(p)).map((p) => structuredClone(p.payload)),
      job_details: [],
      tests: [],
    };
    for (const p of this.projects) {
      // An archived (or not yet created) project's pipelines are in no list.
      if (!this.visible(p)) continue;
      for (let i = p.recs.length - 1; i >= 0 && p.recs[i].createdMs >= startMs; i--) {
        const rec = p.recs[i];
        out.pipelines.push(pick(this.pipelineView(rec), PIPELINE_KEYS));
        if (rec.createdMs < cut) continue;
        // Job number -> its newest visible workflow (what job details call latest_workflow).
        const latest = new Map<number, { wf: WorkflowPlan; j: JobPlan; view: WorkflowJobItem; createdAt: string }>();
        for (const wf of this.kidsOf(rec)) {
          if (wf.createdMs > this.clock) continue;
          const view = this.workflowView(rec, wf);
          const createdAt = view.created_at as string;
          out.workflows.push(pick(view, WORKFLOW_KEYS));
          for (const j of wf.jobs) {
            const jv = this.jobView(rec, wf, j);
            out.jobs.push(pick({ ...jv, _pipeline_id: rec.id, _workflow_id: wf.id, _workflow_created_at: createdAt }, JOB_KEYS));
            if (j.type !== 'build' || jv.job_number === undefined) continue;
            latest.set(j.number, { wf, j, view: jv, createdAt });
            if (!withTests || j.adopted || UNFINISHED.has(jv.status)) continue;
            const occurrences = new Map<string, number>();
            for (const t of this.testsOf(rec, j, jv.status)) {
              const key = `${t.classname}\0${t.name}\0${t.file}`;
              const n = occurrences.get(key) ?? 0;
              occurrences.set(key, n + 1);
              out.tests.push({ _project_slug: p.slug, _job_number: j.number, _workflow_id: wf.id, _workflow_created_at: createdAt, _occurrence: n, ...t });
            }
          }
        }
        for (const { wf, j, view, createdAt } of latest.values()) {
          out.job_details.push({ _project_slug: p.slug, _workflow_created_at: createdAt, ...this.detailsView(rec, wf, j, view) });
        }
      }
    }
    return out;
  }

  // =============================================================================================
  // Generation

  private makeProject(index: number, parsed: ParsedSlug): ProjectState {
    const { vcs, org, repo } = parsed;
    let payload: ProjectPayload;
    let repoUrl: string;
    let defaultBranch: string;
    if (vcs === 'circleci') {
      const name = ['platform', 'mobile-app', 'data-pipeline', 'infra'][index % 4];
      repoUrl = `https://github.com/acme/${name}`;
      defaultBranch = 'main';
      payload = {
        slug: parsed.short,
        name,
        id: repo,
        organization_name: 'acme',
        organization_slug: `circleci/${org}`,
        organization_id: org,
        vcs_info: { vcs_url: repoUrl, provider: 'GitHub', default_branch: defaultBranch },
      };
    } else {
      const gh = vcs === 'gh';
      repoUrl = gh ? `https://github.com/${org}/${repo}` : `https://bitbucket.org/${org}/${repo}`;
      defaultBranch = gh ? 'main' : 'master';
      payload = {
        slug: parsed.short,
        name: repo,
        id: uuidFor(this.seed, 'project', parsed.short),
        organization_name: org,
        organization_slug: `${vcs}/${org}`,
        organization_id: uuidFor(this.seed, 'org', vcs, org),
        vcs_info: { vcs_url: repoUrl, provider: gh ? 'GitHub' : 'Bitbucket', default_branch: defaultBranch },
      };
    }
    const fwd = new Rng(hash32(this.seed, 'forward', index, parsed.short));
    return {
      index,
      parsed,
      slug: parsed.short,
      payload,
      repoUrl,
      defaultBranch,
      recs: [],
      byBranch: new Map(),
      firstNumber: 1 + new Rng(hash32(this.seed, 'numbers', parsed.short)).int(100, 4000),
      fwd,
      nextArrivalMs: Infinity,
      createdMs: -Infinity,
      archivedMs: Infinity,
      followed: true,
    };
  }

  private gap(r: Rng): number {
    if (!(this.pipelinesPerDay > 0)) return Infinity;
    return Math.max(SEC, Math.round(r.exp(DAY / this.pipelinesPerDay)));
  }

  /**
   * Arrival times from now back to now - historyDays. The newest pipeline of each project is
   * recent on purpose, so a fresh world always has something in flight: project 0's is seconds old
   * and still setup-pending; the other projects' are a few minutes old with a running workflow.
   */
  private generateHistory(p: ProjectState): void {
    const r = new Rng(hash32(this.seed, 'history', p.index, p.slug));
    // A project's history starts when it is created.
    const oldest = Math.max(this.initialMs - this.historyDays * DAY, p.createdMs);
    const times: number[] = [];
    if (this.pipelinesPerDay > 0) {
      let t = this.initialMs - (p.index === 0 ? r.int(1000, 5000) : r.int(60_000, 240_000));
      while (t >= oldest) {
        times.push(t);
        t -= this.gap(r);
      }
    }
    times.reverse();
    times.forEach((t, i) => {
      const force: Force = i === times.length - 1 ? (p.index === 0 ? 'setup' : 'running') : undefined;
      this.addPipeline(p, p.firstNumber + i, t, force);
    });
    p.nextArrivalMs = Math.max(this.initialMs, p.createdMs) + this.gap(p.fwd);
  }

  private addPipeline(p: ProjectState, number: number, createdMs: number, force: Force): void {
    const seed = hash32(this.seed, 'pipeline', p.index, number);
    const r = new Rng(seed);
    const id = r.uuid();
    const actor = r.chance(0.12) ? r.pick(this.bots) : r.pick(this.users);
    const triggerType: TriggerType = actor.bot
      ? 'webhook'
      : r.weighted<TriggerType>([
          ['webhook', 70],
          ['api', 12],
          ['scheduled_pipeline', 8],
          ['explicit', 10],
        ]);
    let branch: string | null = null;
    let tag: string | null = null;
    if (actor.login.startsWith('renovate')) branch = `renovate/${r.pick(PACKAGES)}-packages`;
    else if (actor.bot) branch = `dependabot/npm_and_yarn/${r.pick(PACKAGES)}-${r.int(1, 30)}.${r.int(0, 9)}.0`;
    else if (triggerType === 'scheduled_pipeline') branch = p.defaultBranch;
    else if (triggerType === 'webhook' && r.chance(0.06)) tag = `v${1 + Math.floor(number / 400)}.${Math.floor(number / 20) % 20}.${number % 7}`;
    else {
      branch = r.weighted<() => string>([
        [() => p.defaultBranch, 45],
        [() => 'develop', 10],
        [() => `feature/${r.pick(FEATURES)}`, 30],
        [() => `fix/${r.pick(FEATURES)}`, 10],
        [() => `release/${1 + Math.floor(number / 400)}.${Math.floor(number / 20) % 20}`, 5],
      ])();
    }
    const rec: PipelineRec = { project: p, number, createdMs, seed, id, actor, triggerType, branch, tag, force };
    p.recs.push(rec);
    if (branch !== null) {
      const list = p.byBranch.get(branch);
      if (list) list.push(rec);
      else p.byBranch.set(branch, [rec]);
    }
    this.pipelineById.set(id, rec);
    this.pipelineCount++;
  }

  /** A project visible at the clock, by any alias form of its slug. */
  private findProject(slug: string): ProjectState | undefined {
    const parsed = parseSlug(slug);
    const p = parsed ? this.projectByKey.get(slugKey(parsed)) : undefined;
    return p && this.visible(p) ? p : undefined;
  }

  private recByNumber(slug: string, number: number): PipelineRec | undefined {
    const p = this.findProject(slug);
    if (!p || !Number.isSafeInteger(number)) return undefined;
    return p.recs[number - p.firstNumber];
  }

  private findWorkflow(id: string): { rec: PipelineRec; wf: WorkflowPlan } | undefined {
    let hit = this.workflowById.get(id);
    if (!hit && this.materializedAtCount !== this.pipelineCount) {
      // Workflow ids are registered when their pipeline's plan is made. An id we have not seen
      // yet (a client that kept ids from an earlier run): make every plan once.
      this.materializedAtCount = this.pipelineCount;
      for (const p of this.projects) for (const rec of p.recs) this.kidsOf(rec);
      hit = this.workflowById.get(id);
    }
    if (!hit || hit.wf.createdMs > this.clock || !this.visible(hit.rec.project)) return undefined;
    return hit;
  }

  private planOf(rec: PipelineRec): PipelinePlan {
    if (rec.plan) return rec.plan;
    const r = new Rng(hash32(rec.seed, 'plan'));
    const p = rec.project;
    const C = rec.createdMs;
    let kind: PipelinePlan['kind'];
    if (rec.force === 'setup') kind = 'setup';
    else if (rec.force === 'running') kind = 'normal';
    else
      kind = r.weighted<PipelinePlan['kind']>([
        ['normal', 83],
        ['setup', 12],
        ['errored', 3],
        ['empty', 2],
      ]);
    const setupMs = C + r.int(12_000, 40_000) + r.int(0, 999);
    const continuedMs = setupMs + r.int(45_000, 240_000);
    const errors = kind === 'errored' ? [{ type: r.chance(0.85) ? 'config' : 'config-fetch', message: r.pick(CONFIG_ERRORS) }] : [];

    const sha = r.hex(40);
    const prNumber = 100 + (hash32(p.slug, rec.branch ?? '') % 900) + Math.floor(rec.number / 50);
    const fill = (s: string): string =>
      s.replace('{n}', String(prNumber)).replace('{b}', rec.branch ?? 'main').replace('{v}', rec.tag ?? `1.${rec.number % 40}.0`);
    const subject = rec.actor.login.startsWith('renovate')
      ? `chore(deps): update dependency ${rec.branch?.slice(9).replace(/-packages$/, '')} to v${r.int(2, 30)}.${r.int(0, 9)}.${r.int(0, 9)}`
      : rec.actor.bot
        ? `Bump ${rec.branch?.split('/')[2]}`
        : fill(r.pick(SUBJECTS));
    const bodyChoice = r.next();
    const body = bodyChoice < 0.35 ? null : bodyChoice < 0.65 ? '' : fill(r.pick(BODIES));

    const isApp = p.parsed.vcs === 'circleci';
    const hasVcs = isApp ? !r.chance(0.15) : !(rec.triggerType === 'api' && r.chance(0.6));
    let vcs: Record<string, unknown> | undefined;
    if (hasVcs) {
      const fork = rec.branch?.startsWith('feature/') && r.chance(0.1);
      vcs = {
        origin_repository_url: fork ? p.repoUrl.replace(/\/[^/]+\/([^/]+)$/, `/${rec.actor.login}/$1`) : p.repoUrl,
        target_repository_url: p.repoUrl,
        revision: sha,
        provider_name: p.parsed.vcs === 'bb' ? 'Bitbucket' : 'GitHub',
      };
      if (!r.chance(0.08)) vcs.commit = { body, subject: r.chance(0.03) ? null : subject };
      if (rec.tag !== null) vcs.tag = rec.tag;
      else vcs.branch = rec.branch;
      const reviewable = rec.branch !== null && rec.branch !== p.defaultBranch && rec.branch !== 'develop';
      if (reviewable && r.chance(0.5)) {
        vcs.review_id = String(prNumber);
        vcs.review_url = p.parsed.vcs === 'bb' ? `${p.repoUrl}/pull-requests/${prNumber}` : `${p.repoUrl}/pull/${prNumber}`;
      }
    }

    let triggerParameters: Record<string, unknown> | undefined;
    const ref = rec.tag !== null ? `refs/tags/${rec.tag}` : `refs/heads/${rec.branch}`;
    const gitParams = {
      commit_author_name: rec.actor.bot ? rec.actor.login : rec.actor.login.replace(/[-.]/g, ' '),
      repo_owner: p.payload.organization_name,
      branch: rec.branch ?? '',
      commit_message: subject,
      repo_url: p.repoUrl,
      ref,
      author_avatar_url: rec.actor.avatar_url ?? '',
      checkout_url: `${p.repoUrl}.git`,
      author_login: rec.actor.login,
      repo_name: p.payload.name,
      commit_author_email: `${rec.actor.login.replace(/\[bot\]$/, '')}@users.noreply.github.com`,
      checkout_sha: sha,
      default_branch: p.defaultBranch,
    };
    if (isApp) {
      const eventDate = new Date(C - r.int(100, 900));
      const eventTime = `${eventDate.toISOString().slice(0, 10)} ${eventDate.toISOString().slice(11, 19)}.${String(eventDate.getUTCMilliseconds()).padStart(3, '0')}${r.hex(6).replace(/[a-f]/g, '7')} +0000 UTC`;
      triggerParameters = {
        github_app: {
          commit_author_name: gitParams.commit_author_name,
          owner: p.payload.organization_name,
          full_ref: ref,
          forced: 'false',
          user_username: rec.actor.login,
          branch: rec.branch ?? '',
          commit_title: subject,
          repo_url: p.repoUrl,
          ref: rec.tag ?? rec.branch ?? '',
          repo_name: p.payload.name,
          commit_author_email: gitParams.commit_author_email,
          commit_sha: sha,
        },
        git: gitParams,
        circleci: {
          event_time: eventTime,
          provider_actor_id: rec.actor.id,
          actor_id: rec.actor.id,
          event_type: rec.triggerType === 'webhook' ? 'push' : 'create pipeline run api',
          trigger_type: 'github_app',
        },
        webhook: { body: '{}' },
      };
    } else if (!hasVcs) {
      triggerParameters = { git: gitParams, circleci: { trigger_type: 'api', event_type: 'api' } };
    } else if (rec.triggerType === 'scheduled_pipeline') {
      triggerParameters = { nightly: true, deploy: false };
    } else if (r.chance(0.25)) {
      triggerParameters = { run_e2e: r.chance(0.5), deploy_env: r.pick(['staging', 'production', 'preview']), shard_count: r.int(1, 8) };
    }

    const receivedMs = C - r.int(15, 900);
    const plan: PipelinePlan = {
      kind,
      receivedMs,
      setupMs,
      continuedMs,
      errors: deepFreeze(errors),
      vcs: deepFreeze(vcs),
      triggerParameters: deepFreeze(triggerParameters),
      trigger: deepFreeze({
        received_at: isoMs(receivedMs),
        type: rec.triggerType,
        actor: { login: rec.actor.login, avatar_url: rec.actor.avatar_url },
      }),
      createdIso: isoMs(C),
      // Newer fields: only recent pipelines carry them.
      maxAutoReruns: C >= this.initialMs - 60 * DAY && r.chance(0.3) ? r.int(1, 3) : undefined,
    };
    rec.plan = plan;
    return plan;
  }

  private kidsOf(rec: PipelineRec): WorkflowPlan[] {
    if (rec.kids) return rec.kids;
    const plan = this.planOf(rec);
    const kids: WorkflowPlan[] = [];
    if (plan.kind !== 'errored' && plan.kind !== 'empty') {
      const ctx: PlanCtx = { rec, plan, r: new Rng(hash32(rec.seed, 'kids')), slot: 0 };
      const r = ctx.r;
      const C = rec.createdMs;
      let start: number;
      if (plan.kind === 'setup') {
        kids.push(this.setupWorkflow(ctx));
        start = ceilSec(plan.continuedMs);
      } else start = ceilSec(C + r.int(300, 2500));
      const count = rec.force === 'running' ? 1 : r.weighted([
        [1, 70],
        [2, 25],
        [3, 5],
      ]);
      const names = rec.triggerType === 'scheduled_pipeline' ? ['nightly', 'cleanup', 'report'] : [...WORKFLOW_NAMES];
      const originals: WorkflowPlan[] = [];
      for (let i = 0; i < count; i++) {
        const name = i === 0 ? names[0] : names.splice(r.int(1, names.length - 1), 1)[0];
        const specs = this.jobSpecs(r, rec.triggerType !== 'scheduled_pipeline');
        // CSV-hard on purpose (usage export): one pipeline in 7 names its first job with a comma,
        // a quote and a newline, as a workflow's `name:` override may. Draws nothing from r.
        if (rec.number % 7 === 0 && specs[0]?.name === 'checkout') specs[0] = { ...specs[0], name: ODD_JOB_NAME };
        const wf = this.simulate(ctx, {
          name,
          createdMs: start + r.int(0, 2) * SEC,
          startedBy: rec.actor.id,
          specs,
          rerun: false,
          forceRunning: rec.force === 'running' && i === 0,
        });
        originals.push(wf);
      }
      kids.push(...originals);
      for (const wf of originals) this.maybeRerun(ctx, wf, 0, kids);
      kids.sort((a, b) => a.createdMs - b.createdMs);
    }
    rec.kids = kids;
    for (const wf of kids) this.workflowById.set(wf.id, { rec, wf });
    return kids;
  }

  private nextJobNumber(ctx: PlanCtx): number {
    return ctx.rec.number * this.jobStride + ctx.slot++;
  }

  private setupWorkflow(ctx: PlanCtx): WorkflowPlan {
    const { r, plan, rec } = ctx;
    const createdMs = ceilSec(plan.setupMs);
    const readyMs = createdMs + SEC;
    const startMs = readyMs + r.int(0, 2) * SEC;
    const doneMs = Math.max(startMs + SEC, floorSec(plan.continuedMs) - SEC);
    const job: JobPlan = {
      id: r.uuid(),
      name: 'setup',
      type: 'build',
      number: this.nextJobNumber(ctx),
      dependencies: [],
      readyMs,
      startMs,
      doneMs,
      final: 'success',
    };
    return {
      id: r.uuid(),
      name: 'setup',
      tag: 'setup',
      createdMs,
      startedBy: rec.actor.id,
      specs: [{ name: 'setup', type: 'build', deps: [] }],
      jobs: [job],
      withRequires: false,
      stopMs: doneMs,
      final: 'success',
    };
  }

  /** The DAG of a fresh workflow: job names, types, dependencies (indices of earlier jobs). */
  private jobSpecs(r: Rng, approvalsAllowed: boolean): JobSpec[] {
    const max = this.maxJobsPerWorkflow;
    const n = r.chance(0.2) ? max : r.int(1, max);
    const pool = [...JOB_NAMES];
    const specs: JobSpec[] = [];
    for (let i = 0; i < n; i++) {
      const name = pool.length > 0 ? pool.splice(i === 0 ? 0 : r.int(0, pool.length - 1), 1)[0] : `job-${i + 1}`;
      let deps: number[] = [];
      if (i > 0 && !r.chance(0.2)) {
        deps = [r.int(Math.max(0, i - 3), i - 1)];
        if (i > 1 && r.chance(0.3)) {
          const second = r.int(0, i - 1);
          if (!deps.includes(second)) deps.push(second);
        }
      }
      specs.push({ name, type: 'build', deps });
    }
    if (approvalsAllowed && n >= 3 && r.chance(0.2)) {
      specs[n - 2] = { name: 'hold', type: 'approval', deps: [n - 3] };
      specs[n - 1] = { name: 'deploy', type: 'build', deps: [n - 2] };
    }
    return specs;
  }

  /**
   * Plays a workflow's plan: when each job is ready, starts and ends, and how the workflow ends.
   * For a rerun from failed, `reuse` maps spec index -> the original job copied as is.
   */
  private simulate(
    ctx: PlanCtx,
    w: { name: string; createdMs: number; startedBy: string; specs: JobSpec[]; rerun: boolean; forceRunning?: boolean; reuse?: Map<number, JobPlan> },
  ): WorkflowPlan {
    const { r, rec } = ctx;
    const limit = rec.createdMs + (w.rerun ? RERUN_WINDOW_MS : STATUS_WINDOW_MS) - MIN;
    const failP = w.rerun ? 0.025 : 0.04;
    const errored = !w.rerun && !w.forceRunning && r.chance(0.01);
    const wf: WorkflowPlan = {
      id: r.uuid(),
      name: w.name,
      tag: null,
      createdMs: w.createdMs,
      startedBy: w.startedBy,
      specs: w.specs,
      jobs: [],
      withRequires: r.chance(0.85),
      stopMs: 0,
      final: 'success',
    };
    if (errored) {
      // An infrastructure error before any job ran: no jobs at all.
      wf.stopMs = w.createdMs + r.int(2, 10) * SEC;
      wf.final = 'error';
      wf.erroredBy = uuidFor(this.seed, 'errored-by', rec.project.slug);
      return wf;
    }
    let cancelMs = Infinity;
    for (let i = 0; i < w.specs.length; i++) {
      const spec = w.specs[i];
      const reused = w.reuse?.get(i);
      if (reused) {
        wf.jobs.push({ ...reused, adopted: true });
        continue;
      }
      const deps = spec.deps.map((k) => wf.jobs[k]);
      const job: JobPlan = {
        id: r.uuid(),
        name: spec.name,
        type: spec.type,
        number: this.nextJobNumber(ctx),
        dependencies: deps.map((d) => d.id),
        readyMs: null,
        startMs: Infinity,
        doneMs: Infinity,
        final: 'blocked',
      };
      if (!deps.some((d) => d.readyMs === null || d.final !== 'success')) {
        const after = Math.max(w.createdMs, ...deps.map((d) => d.doneMs));
        job.readyMs = ceilSec(after) + r.int(1, 4) * SEC;
        if (spec.type === 'build') {
          job.startMs = job.readyMs + (r.chance(0.3) ? r.int(2, 45) * SEC : 0);
          let seconds = r.chance(0.1) ? r.int(600, 2400) : r.int(8, 480);
          if (w.forceRunning && i === 0) seconds = Math.max(seconds, Math.ceil((this.initialMs - job.startMs) / SEC) + r.int(300, 1200));
          job.doneMs = job.startMs + seconds * SEC;
          job.final = !w.forceRunning && r.chance(failP)
            ? r.weighted([
                ['failed', 80],
                ['infrastructure_fail', 10],
                ['timedout', 10],
              ])
            : 'success';
        } else {
          job.startMs = job.readyMs;
          if (!w.rerun && r.chance(0.12)) {
            // Never approved: someone cancels the workflow after a while.
            cancelMs = Math.min(cancelMs, job.readyMs + r.int(1 * 3600, 30 * 3600) * SEC);
          } else {
            const wait = Math.max(30 * SEC, Math.round(r.exp(w.rerun ? 20 * MIN : 3 * HOUR) / SEC) * SEC);
            job.doneMs = job.readyMs + Math.min(wait, (w.rerun ? 6 : 36) * HOUR);
            job.final = 'success';
            job.approvedBy = r.pick(this.users).id;
          }
        }
      }
      wf.jobs.push(job);
    }
    let natural = w.createdMs;
    for (const j of wf.jobs) if (j.readyMs !== null && j.doneMs !== Infinity) natural = Math.max(natural, j.doneMs);
    wf.stopMs = natural;
    wf.final = wf.jobs.some((j) => FAILED_LIKE.has(j.final)) ? 'failed' : 'success';
    // A few workflows are canceled by hand while running.
    if (!w.forceRunning && natural - w.createdMs > 10 * SEC && r.chance(0.025)) {
      cancelMs = Math.min(cancelMs, w.createdMs + r.int(5, Math.floor((natural - w.createdMs) / SEC) - 1) * SEC);
    }
    // Nothing may change after the deadline (see the module comment).
    if (cancelMs === Infinity && natural > limit) cancelMs = floorSec(limit);
    if (cancelMs !== Infinity) {
      cancelMs = Math.min(cancelMs, floorSec(limit));
      const by = r.chance(0.8) ? rec.actor.id : r.pick(this.users).id;
      for (const j of wf.jobs) {
        if (j.readyMs !== null && j.doneMs <= cancelMs) continue;
        j.cancelMs = cancelMs;
        j.canceledBy = by;
      }
      wf.stopMs = cancelMs;
      wf.final = 'canceled';
      wf.canceledBy = by;
    }
    return wf;
  }

  /** Maybe reruns a finished workflow (a new workflow in the same pipeline), within RERUN_WINDOW_MS. */
  private maybeRerun(ctx: PlanCtx, orig: WorkflowPlan, depth: number, into: WorkflowPlan[]): void {
    const { r, rec } = ctx;
    let p = orig.final === 'failed' ? 0.45 : orig.final === 'canceled' ? 0.25 : orig.final === 'error' ? 0.5 : 0.03;
    if (depth > 0) p *= 0.5;
    if (!r.chance(p)) return;
    const earliest = orig.stopMs + 2 * MIN;
    const latest = rec.createdMs + RERUN_WINDOW_MS - 12 * HOUR;
    if (earliest > latest) return;
    const createdMs = ceilSec(Math.min(latest, earliest + r.exp(6 * HOUR)));
    const fromFailed = orig.final === 'failed' && r.chance(0.7);
    const reuse = new Map<number, JobPlan>();
    if (fromFailed) {
      // "Rerun from failed": jobs that succeeded (with all their dependencies) are carried over
      // with the same id and job number; the rest run again under new ids.
      orig.specs.forEach((spec, i) => {
        const j = orig.jobs[i];
        if (j && j.final === 'success' && j.cancelMs === undefined && spec.deps.every((d) => reuse.has(d))) reuse.set(i, j);
      });
    }
    if (ctx.slot + orig.specs.length - reuse.size > this.jobStride) return;
    const wf = this.simulate(ctx, {
      name: orig.name,
      createdMs,
      startedBy: r.chance(0.7) ? orig.startedBy : r.pick(this.users).id,
      specs: orig.specs,
      rerun: true,
      reuse,
    });
    into.push(wf);
    if (depth < 1) this.maybeRerun(ctx, wf, depth + 1, into);
  }

  // =============================================================================================
  // Views: the plan read at the current clock

  private pipelineView(rec: PipelineRec): Pipeline {
    const plan = this.planOf(rec);
    const T = this.clock;
    let state = 'created';
    let updated = rec.createdMs;
    if (plan.kind === 'errored') state = 'errored';
    else if (plan.kind === 'setup') {
      if (T < plan.setupMs) state = 'setup-pending';
      else if (T < plan.continuedMs) {
        state = 'setup';
        updated = plan.setupMs;
      } else updated = plan.continuedMs;
    }
    // Nested objects are deep-frozen and shared between views (copy before changing them).
    const out: Pipeline = {
      id: rec.id,
      errors: plan.errors,
      project_slug: rec.project.slug,
      updated_at: updated === rec.createdMs ? plan.createdIso : isoMs(updated),
      number: rec.number,
    };
    if (plan.triggerParameters) out.trigger_parameters = plan.triggerParameters;
    out.state = state;
    out.created_at = plan.createdIso;
    out.trigger = plan.trigger;
    if (plan.vcs) out.vcs = plan.vcs;
    return out;
  }

  private jobStatus(j: JobPlan, T: number): string {
    if (j.cancelMs !== undefined && T >= j.cancelMs) return 'canceled';
    if (j.readyMs === null || T < j.readyMs) return 'blocked';
    if (j.type === 'approval') return T < j.doneMs ? 'on_hold' : 'success';
    if (T < j.startMs) return 'queued';
    if (T < j.doneMs) return 'running';
    return j.final;
  }

  private workflowView(rec: PipelineRec, wf: WorkflowPlan): Workflow {
    const T = this.clock;
    let status: string;
    const done = T >= wf.stopMs;
    if (done) status = wf.final;
    else {
      const statuses = wf.jobs.map((j) => this.jobStatus(j, T));
      if (statuses.some((s) => FAILED_LIKE.has(s))) status = 'failing';
      else if (statuses.includes('on_hold') && !statuses.some((s) => s === 'running' || s === 'queued')) status = 'on_hold';
      else status = 'running';
    }
    const out: Workflow = {
      pipeline_id: rec.id,
      id: wf.id,
      name: wf.name,
      project_slug: rec.project.slug,
    };
    if (wf.tag) out.tag = wf.tag;
    out.status = status;
    out.started_by = wf.startedBy;
    out.pipeline_number = rec.number;
    out.created_at = wf.createdIso ??= isoSec(wf.createdMs);
    out.stopped_at = done ? (wf.stopIso ??= isoSec(wf.stopMs)) : null;
    if (done && wf.canceledBy) out.canceled_by = wf.canceledBy;
    if (done && wf.erroredBy) out.errored_by = wf.erroredBy;
    const max = this.planOf(rec).maxAutoReruns;
    if (max !== undefined) {
      out.auto_rerun_number = 0;
      out.max_auto_reruns = max;
    }
    return out;
  }

  private jobView(rec: PipelineRec, wf: WorkflowPlan, j: JobPlan): WorkflowJobItem {
    const T = this.clock;
    const status = this.jobStatus(j, T);
    // What is known at the moment that matters: now, or the cancel time for a canceled job.
    const at = status === 'canceled' ? (j.cancelMs as number) - 1 : T;
    const reached = j.readyMs !== null && at >= j.readyMs;
    const started = reached && at >= j.startMs;
    const finished = !reached ? false : status === 'canceled' ? true : at >= j.doneMs;
    const out = { dependencies: [...j.dependencies] } as WorkflowJobItem;
    if (reached) out.job_number = j.number;
    out.id = j.id;
    out.started_at = started ? (j.startIso ??= isoSec(j.startMs)) : null;
    out.name = j.name;
    if (j.type === 'approval' && j.approvedBy && status === 'success') out.approved_by = j.approvedBy;
    out.project_slug = rec.project.slug;
    out.status = status;
    out.type = j.type;
    if (wf.withRequires && j.dependencies.length > 0) {
      const requires: Record<string, string[]> = {};
      for (const d of j.dependencies) requires[d] = ['success'];
      out.requires = requires;
    }
    out.stopped_at = !finished ? null : status === 'canceled' ? isoSec(j.cancelMs as number) : (j.stopIso ??= isoSec(j.doneMs));
    if (j.type === 'approval') out.approval_request_id = j.id;
    if (status === 'canceled' && j.canceledBy) out.canceled_by = j.canceledBy;
    return out;
  }
}

/**
 * The mock's Usage Export API (same host and token as the rest; see docs/mock-usage.md):
 *
 * - POST /api/v2/organizations/{org_id}/usage_export_job  {start, end, shared_org_ids?}
 *   -> 201 {usage_export_job_id, state: "created", start, end, download_urls: []}
 * - GET  /api/v2/organizations/{org_id}/usage_export_job/{id}
 *   -> 200 {usage_export_job_id, state, start, end, download_urls, error_reason?}
 *
 * The rows are fixed when the job is created (usageRows at the world's clock then); the parts are
 * put on the storage host when the job completes. Lifecycle: the job completes (or fails, for the
 * first `failFirst` jobs of an organization) on its `readyAfterPolls`-th poll, once `readyAfterMs`
 * of wall time has also passed; polls before answer "created" (the first of several) or
 * "processing". Creates are limited per organization over a sliding window of wall time.
 */
import { gzipSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';
import type { World } from './world.js';
import type { Reply } from './server.js';
import type { StorageServer, StoredPart } from './storage.js';
import { csvParts, usageRows, type UsageRow } from './usageCsv.js';

export interface UsageOptions {
  /** The job completes on this poll (1: the first poll already answers completed). Default 2. */
  readyAfterPolls?: number;
  /** And not before this much wall time after its create. Default 0. */
  readyAfterMs?: number;
  /** The first n jobs of each organization end `failed` with an error_reason. Default 0. */
  failFirst?: number;
  /** Organization ids whose create and poll answer 404 (CircleCI Server, a plan without usage export). */
  unavailableOrgs?: string[];
  /** Creates per organization per windowMs of wall time; default {count: 10, windowMs: 3_600_000}. */
  createLimit?: { count: number; windowMs: number };
  /** Rows per part (each part has the header line); default 100000. */
  rowsPerPart?: number;
  /** A gzipped CSV file served as the single part of every completed export (for the bench). */
  exportFile?: string;
}

/** What a test can see of an export job. */
export interface UsageJobInfo {
  id: string;
  orgId: string;
  start: string;
  end: string;
  sharedOrgIds: string[];
  state: 'created' | 'processing' | 'completed' | 'failed';
  polls: number;
  /** The rows it holds (fixed at create; empty with exportFile). */
  rows: UsageRow[];
  /** The world's clock at create, epoch ms. */
  createdAt: number;
}

interface Job extends UsageJobInfo {
  createdWallMs: number;
  willFail: boolean;
  parts: number;
}

const DAY = 86_400_000;
const MAX_WINDOW_MS = 31 * DAY;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const FAIL_REASON = 'The export query timed out after 4 hours. Try a shorter window.';

const json = (status: number, payload: unknown): Reply => ({ status, body: JSON.stringify(payload) });
const message = (status: number, text: string): Reply => json(status, { message: text });

/** /organizations/{org}/usage_export_job[/{id}] after /api/v2, as path segments; else undefined. */
export function matchUsage(segs: string[]): { orgId: string; jobId?: string } | undefined {
  if (segs[0] !== 'organizations' || segs[2] !== 'usage_export_job' || !segs[1]) return undefined;
  if (segs.length === 3) return { orgId: segs[1] };
  if (segs.length === 4 && segs[3] !== '') return { orgId: segs[1], jobId: segs[3] };
  return undefined;
}

/** `server`: CircleCI Server has no usage export: every organization answers 404. */
export function usageRoutes(world: World, storage: StorageServer, initial: UsageOptions = {}, server = false) {
  let o: UsageOptions = { ...initial };
  const jobs = new Map<string, Job>();
  const createdByOrg = new Map<string, number>();
  const createTimes = new Map<string, number[]>();

  const known = (orgId: string): boolean => !server && world.organizations().some((org) => org.id === orgId) && !(o.unavailableOrgs ?? []).includes(orgId);

  const view = (job: Job, hostname: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {
      usage_export_job_id: job.id,
      state: job.state,
      start: job.start,
      end: job.end,
      download_urls: job.state === 'completed' ? Array.from({ length: job.parts }, (_, i) => storage.url(hostname, job.id, i, world.now().getTime())) : [],
    };
    if (job.state === 'failed') out.error_reason = FAIL_REASON;
    return out;
  };

  const create = (orgId: string, body: string): Reply => {
    if (!known(orgId)) return message(404, 'Not Found');
    // Sliding window of wall time: a slot frees windowMs after the create that took it.
    const limit = o.createLimit ?? { count: 10, windowMs: 3_600_000 };
    const nowWall = Date.now();
    const times = (createTimes.get(orgId) ?? []).filter((t) => t > nowWall - limit.windowMs);
    createTimes.set(orgId, times);
    if (times.length >= limit.count) {
      const retryAfter = Math.max(1, Math.ceil((times[0] + limit.windowMs - nowWall) / 1000));
      return { ...message(429, 'Rate limit exceeded.'), headers: { 'Retry-After': String(retryAfter) } };
    }
    let input: unknown;
    try {
      input = JSON.parse(body);
    } catch {
      return message(400, 'The request body must be JSON: {"start": "<date-time>", "end": "<date-time>"}.');
    }
    const { start, end, shared_org_ids: shared } = (input ?? {}) as { start?: unknown; end?: unknown; shared_org_ids?: unknown };
    if (typeof start !== 'string' || typeof end !== 'string' || !ISO.test(start) || !ISO.test(end) || Number.isNaN(Date.parse(start)) || Number.isNaN(Date.parse(end))) {
      return message(400, 'start and end must be RFC 3339 date-times, e.g. 2024-03-01T00:00:00Z.');
    }
    if (shared !== undefined && !(Array.isArray(shared) && shared.every((s) => typeof s === 'string'))) {
      return message(400, 'shared_org_ids must be an array of organization ids.');
    }
    const startMs = Date.parse(start);
    const endMs = Date.parse(end);
    const now = world.now();
    const yearAgo = new Date(now);
    yearAgo.setUTCFullYear(yearAgo.getUTCFullYear() - 1);
    if (startMs >= endMs) return message(400, 'start must be before end.');
    if (endMs - startMs > MAX_WINDOW_MS) return message(400, 'end must be no more than 31 days after start.');
    if (startMs < yearAgo.getTime()) return message(400, 'start must be no more than one year ago.');
    if (endMs > now.getTime()) return message(400, 'end must not be in the future.');

    times.push(nowWall);
    const n = (createdByOrg.get(orgId) ?? 0) + 1;
    createdByOrg.set(orgId, n);
    const sharedOrgIds = (shared as string[] | undefined) ?? [];
    const job: Job = {
      id: randomUUID(),
      orgId,
      start,
      end,
      sharedOrgIds,
      state: 'created',
      polls: 0,
      rows: o.exportFile ? [] : usageRows(world, orgId, new Date(startMs), new Date(endMs), sharedOrgIds),
      createdAt: now.getTime(),
      createdWallMs: nowWall,
      willFail: n <= (o.failFirst ?? 0),
      parts: 0,
    };
    jobs.set(job.id, job);
    return json(201, { usage_export_job_id: job.id, state: 'created', start, end, download_urls: [] });
  };

  const poll = (orgId: string, jobId: string, hostname: string): Reply => {
    const job = jobs.get(jobId);
    if (!known(orgId) || !job || job.orgId !== orgId) return message(404, 'Not Found');
    if (job.state === 'created' || job.state === 'processing') {
      job.polls++;
      const after = Math.max(1, o.readyAfterPolls ?? 2);
      const ready = job.polls >= after && Date.now() - job.createdWallMs >= (o.readyAfterMs ?? 0);
      if (ready && job.willFail) job.state = 'failed';
      else if (ready) {
        let parts: StoredPart[];
        if (o.exportFile) parts = [{ file: o.exportFile }];
        else parts = csvParts(job.rows, o.rowsPerPart ?? 100_000).map((text) => ({ data: gzipSync(text) }));
        storage.put(job.id, parts);
        job.parts = parts.length;
        job.state = 'completed';
      } else job.state = job.polls === 1 && after > 2 ? 'created' : 'processing';
    }
    return json(200, view(job, hostname));
  };

  return {
    handle(method: string, m: { orgId: string; jobId?: string }, body: string, hostname: string): Reply {
      if (m.jobId === undefined) return method === 'POST' ? create(m.orgId, body) : { ...message(405, 'Method Not Allowed'), headers: { Allow: 'POST' } };
      return method === 'GET' ? poll(m.orgId, m.jobId, hostname) : { ...message(405, 'Method Not Allowed'), headers: { Allow: 'GET' } };
    },
    jobs(): UsageJobInfo[] {
      return [...jobs.values()].map(({ id, orgId, start, end, sharedOrgIds, state, polls, rows, createdAt }) => ({ id, orgId, start, end, sharedOrgIds, state, polls, rows, createdAt }));
    },
    setOptions(next: UsageOptions): void {
      o = { ...o, ...next };
    },
  };
}

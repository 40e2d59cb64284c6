import type { Context, Json } from './stream.js';

/** Job statuses that can still change; a job in any other status has stopped. */
const NOT_STOPPED = new Set(['running', 'queued', 'not_running', 'blocked', 'on_hold']);

/** A build job CircleCI has numbered: the only kind with details and test results. */
export const numberedBuild = (job: Json | undefined): boolean =>
  !!job && job.type !== 'approval' && Number.isSafeInteger(job.job_number);

export const jobStopped = (job: Json | undefined): boolean => !!job && !NOT_STOPPED.has(String(job.status));

/** The job's slug as CircleCI lists it (short form, the same as jobs.project_slug), else the configured one. */
export const jobProjectSlug = (ctx: Context): string =>
  typeof ctx.job?.project_slug === 'string' && ctx.job.project_slug ? ctx.job.project_slug : ctx.project;

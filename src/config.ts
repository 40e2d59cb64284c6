import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { ErrorObject } from 'ajv';
import { isIPv4 } from 'node:net';
import { timingFromEnv, type EnvTiming } from './circleci/retry.js';
import validateSpec from './config-validate.js';
import { configError } from './errors.js';
import { registerSecret } from './redact.js';
import { readPackageJson } from './resources.js';

/** The validated configuration both faces run on. */
export interface Config {
  token: string;
  /** The projects listed by slug (normalised); discovery adds those of `organizations`. */
  projectSlugs: string[];
  /** Org slugs (gh/acme, circleci/<org-id>) or org ids whose projects are discovered every sync. */
  organizations: string[];
  /** Glob patterns on project slugs: those projects are left out. */
  excludeProjects: string[];
  /** This connection's share of the projects (see projects/select.ts). */
  partition?: { index: number; count: number };
  startDate: Date;
  baseUrl: string;
  lookbackDays: number;
  maxConcurrency: number;
  /** What the environment changes in the retry policy's timing (docs/retry-timing.md). */
  retryTiming: EnvTiming['timing'];
  /** Plain http to a host other than this machine was allowed (base_url, and usage export downloads). */
  allowInsecureHttp: boolean;
  /** The usage stream: how long a sync waits for exports, in ms (usage_poll_minutes). */
  usagePollMs: number;
  /** The usage stream: creates allowed per organization per window (docs/usage.md, pacing). */
  usageCreateLimit: UsageCreateLimit;
  /** Things worth telling the user that do not stop the sync (unknown keys, plain http). */
  warnings: string[];
}

export const DEFAULT_BASE_URL = 'https://circleci.com/api/v2';
export const DEFAULT_USAGE_POLL_MINUTES = 30;

export interface UsageCreateLimit {
  count: number;
  windowMs: number;
}
/** CircleCI allows 10 creates an hour per organization; one is left for whoever else uses it. */
export const USAGE_CREATE_LIMIT: UsageCreateLimit = { count: 9, windowMs: 3_600_000 };
export const DEFAULT_LOOKBACK_DAYS = 7;
export const DEFAULT_MAX_CONCURRENCY = 8;
const DAY_MS = 86_400_000;

export const spec = readPackageJson<{ properties: Record<string, unknown>; required: string[] }>('spec.json');

// One fix per field, so a message names the problem and what to do about it.
const FIXES: Record<string, string> = {
  token: 'set "token" to a CircleCI personal API token (User Settings → Personal API Tokens)',
  project_slugs: 'set "project_slugs" to a list such as ["gh/acme/api"] or a space-separated string "gh/acme/api bb/acme/web"',
  start_date: 'set "start_date" to a UTC date such as "2025-01-01" or "2025-01-01T00:00:00Z", or leave it out',
  base_url: 'set "base_url" to an http(s) URL such as "https://circleci.com/api/v2", or leave it out',
  allow_insecure_http: 'set "allow_insecure_http" to true or false, or leave it out (default false)',
  lookback_days: 'set "lookback_days" to a whole number of days from 0 to 365, or leave it out (default 7)',
  max_concurrency: 'set "max_concurrency" to a whole number from 1 to 64, or leave it out (default 8)',
  organizations: 'set "organizations" to a list such as ["gh/acme"] (org slugs or org ids), or leave it out',
  exclude_projects: 'set "exclude_projects" to a list of slug patterns such as ["gh/acme/legacy-*"], or leave it out',
  partition: 'set "partition" to {"index": i, "count": n} with 0 <= i < n, or leave it out',
  usage_poll_minutes: 'set "usage_poll_minutes" to a whole number of minutes from 0 to 1440, or leave it out (default 30)',
};

/** ajv's validator for spec.json, compiled at build time (scripts/gen-types.mjs). */
const validate = validateSpec as ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

/** Edit distance, for "did you mean": a key one or two keystrokes from a setting is a typo of it. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/** The setting an unknown key was probably meant to be ("project_slug" → "project_slugs"). */
function meant(key: string): string | undefined {
  const k = key.toLowerCase().replace(/[-\s]/g, '_');
  return Object.keys(spec.properties).find((p) => distance(k, p) <= 2);
}

function describe(e: ErrorObject, input: Record<string, unknown>): string {
  const field = e.instancePath.split('/')[1] ?? (e.params as { missingProperty?: string }).missingProperty ?? '';
  const fix = FIXES[field] ? `: ${FIXES[field]}` : '';
  if (e.keyword === 'required') {
    const typo = Object.keys(input).find((k) => !(k in spec.properties) && meant(k) === field);
    return `Config is missing "${field}"${typo ? ` (it has "${typo}": did you mean "${field}"?)` : ''}${fix}.`;
  }
  // A person should not have to read spec.json's regular expression.
  if (e.keyword === 'pattern') return `Config field "${field}" is not in the expected form (${JSON.stringify(input[field])})${fix}.`;
  return `Config field "${field}"${e.instancePath.split('/').length > 2 ? ` (${e.instancePath.slice(1)})` : ''} ${e.message}${fix}.`;
}

/** `github/` and `bitbucket/` are aliases of `gh/` and `bb/`; CircleCI answers with the short form. */
const VCS_ALIASES: Record<string, string> = { gh: 'gh', github: 'gh', bb: 'bb', bitbucket: 'bb', circleci: 'circleci' };

/** The short vcs form (gh, bb, circleci) of a vcs name or alias (github, GitHub, bb, ...), if it is one. */
export const vcsShort = (vcs: string): string | undefined => VCS_ALIASES[vcs.toLowerCase()];

export function normaliseSlug(raw: string): string {
  const parts = decodeURIComponent(raw.trim()).replace(/^\/+|\/+$/g, '').split('/');
  const vcs = VCS_ALIASES[parts[0]?.toLowerCase() ?? ''];
  if (parts.length !== 3 || !vcs || parts.some((p) => p === '')) {
    throw configError(
      `Project slug "${raw}" is not of the form vcs/org/repo (gh/acme/api, bb/acme/web) or circleci/<org-id>/<project-id>: ` +
        'copy it from the project settings page in CircleCI.',
    );
  }
  return [vcs, parts[1], parts[2]].join('/');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** An organization or project id as CircleCI writes them (a UUID). */
export const isId = (text: string): boolean => UUID.test(text);

/** An organization: its id (a UUID), or its slug with the short vcs form (gh/acme, bb/acme, circleci/<org-id>). */
export function normaliseOrg(raw: string): string {
  const text = decodeURIComponent(raw.trim()).replace(/^\/+|\/+$/g, '');
  if (UUID.test(text)) return text.toLowerCase();
  const parts = text.split('/');
  const vcs = VCS_ALIASES[parts[0]?.toLowerCase() ?? ''];
  if (parts.length !== 2 || !vcs || !parts[1]) {
    throw configError(
      `Organization "${raw}" is not an org slug (gh/acme, bb/acme, circleci/<org-id>) or an org id: ` +
        'copy it from the organization settings page in CircleCI (Organization Settings → Overview).',
    );
  }
  return `${vcs}/${parts[1]}`;
}

function parseDate(value: string): Date | undefined {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?$/.test(value)) return undefined;
  // Date() rolls 2025-02-31 over into March; a calendar date must exist as written.
  const [y, m, day] = value.slice(0, 10).split('-').map(Number);
  if (new Date(Date.UTC(y, m - 1, day)).getUTCDate() !== day || m < 1 || m > 12) return undefined;
  const d = new Date(value.length === 10 ? `${value}T00:00:00Z` : value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

// An address, not a name: 127.0.0.1.example.com resolves wherever its owner likes.
export const isLoopback = (host: string) => host === 'localhost' || host === '[::1]' || (isIPv4(host) && host.startsWith('127.'));

/** `env`: the process environment, read for the retry-timing variables only. */
export function parseConfig(raw: unknown, now: Date = new Date(), env: Record<string, string | undefined> = process.env): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw configError('Config must be a JSON object such as {"token": "...", "project_slugs": ["gh/acme/api"]}.');
  }
  const input: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  // Before any message can quote a value that holds it.
  if (typeof input.token === 'string') registerSecret(input.token);
  // tap-circle-ci configs hold the slugs as one space-separated string.
  for (const key of ['project_slugs', 'organizations', 'exclude_projects']) {
    if (typeof input[key] === 'string') input[key] = (input[key] as string).split(/[\s,]+/).filter(Boolean);
  }
  if (!validate(input)) throw configError((validate.errors ?? []).map((e) => describe(e, input)).join(' '));
  const token = (input.token as string).trim();
  if (!token) throw configError(`Config field "token" is empty: ${FIXES.token}.`);

  const warnings: string[] = [];
  const unknown = Object.keys(input).filter((k) => !(k in spec.properties));
  if (unknown.length) {
    const named = unknown.map((k) => (meant(k) ? `${k} (did you mean ${meant(k)}?)` : k));
    warnings.push(`Config has unknown keys that are ignored: ${named.join(', ')}. Check them for typos.`);
  }

  const projectSlugs = [...new Set(((input.project_slugs as string[] | undefined) ?? []).map(normaliseSlug))];
  const organizations = [...new Set(((input.organizations as string[] | undefined) ?? []).map(normaliseOrg))];
  if (!projectSlugs.length && !organizations.length) {
    const typo = Object.keys(input).find((k) => !(k in spec.properties) && (meant(k) === 'project_slugs' || meant(k) === 'organizations'));
    const hint = typo ? ` (it has "${typo}": did you mean "${meant(typo)}"?)` : '';
    throw configError(
      `Config is missing "project_slugs"${hint}, so it has no projects to sync: ${FIXES.project_slugs}, or set "organizations" to a list such as ["gh/acme"] to sync every project of an organization.`,
    );
  }
  const excludeProjects = (input.exclude_projects as string[] | undefined) ?? [];
  const partition = input.partition as { index: number; count: number } | undefined;
  if (partition && partition.index >= partition.count) {
    throw configError(`Config field "partition" has index ${partition.index} but count ${partition.count}: ${FIXES.partition}.`);
  }

  let startDate = new Date(now.getTime() - 365 * DAY_MS);
  if (input.start_date !== undefined) {
    const parsed = parseDate(input.start_date as string);
    if (!parsed) throw configError(`Config field "start_date" is not a valid date ("${input.start_date}"): ${FIXES.start_date}.`);
    if (parsed.getTime() > now.getTime()) {
      throw configError(`Config field "start_date" (${input.start_date}) lies in the future, so nothing would be synced: ${FIXES.start_date}.`);
    }
    startDate = parsed;
  }

  const baseUrl = String(input.base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw configError(`Config field "base_url" is not a URL ("${baseUrl}"): ${FIXES.base_url}.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw configError(`Config field "base_url" must use http or https, not ${url.protocol.replace(/:$/, '')}: ${FIXES.base_url}.`);
  }
  // A hosted platform may run the connector far from the server: the token must not cross a
  // network in clear unless the user said, in a setting of its own, that this network is trusted.
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    if (input.allow_insecure_http !== true) {
      throw configError(
        `Config field "base_url" uses plain http to ${url.hostname}, so the token would travel unencrypted: use https (https://${url.host}${url.pathname}), ` +
          'or, only if this network is trusted (a CircleCI Server behind a proxy in your cluster), set "allow_insecure_http" to true.',
      );
    }
    warnings.push(`base_url uses plain http to ${url.hostname} ("allow_insecure_http" is on): the token travels unencrypted. Use https when you can.`);
  }
  const fromEnv = timingFromEnv(env, isLoopback(url.hostname));
  warnings.push(...fromEnv.warnings);
  const usageCreateLimit = usageCreateLimitFromEnv(env, isLoopback(url.hostname), warnings);

  return {
    token,
    projectSlugs,
    organizations,
    excludeProjects,
    ...(partition ? { partition: { index: partition.index, count: partition.count } } : {}),
    startDate,
    baseUrl,
    lookbackDays: (input.lookback_days as number | undefined) ?? DEFAULT_LOOKBACK_DAYS,
    maxConcurrency: (input.max_concurrency as number | undefined) ?? DEFAULT_MAX_CONCURRENCY,
    retryTiming: fromEnv.timing,
    allowInsecureHttp: input.allow_insecure_http === true,
    usagePollMs: ((input.usage_poll_minutes as number | undefined) ?? DEFAULT_USAGE_POLL_MINUTES) * 60_000,
    usageCreateLimit,
    warnings,
  };
}

/**
 * SOURCE_CIRCLECI_USAGE_CREATE_LIMIT="<count>/<seconds>": usage export creates per organization
 * per window. Lower than CircleCI's 10 an hour is always honoured (another tool shares the quota);
 * anything else only against a loopback base_url (the mock's createLimit, in tests).
 */
function usageCreateLimitFromEnv(env: Record<string, string | undefined>, loopback: boolean, warnings: string[]): UsageCreateLimit {
  const raw = env.SOURCE_CIRCLECI_USAGE_CREATE_LIMIT?.trim();
  if (!raw) return USAGE_CREATE_LIMIT;
  const m = /^(\d+)\/(\d+(\.\d+)?)$/.exec(raw);
  if (!m || Number(m[1]) < 1 || Number(m[2]) <= 0) {
    throw configError(
      `The environment variable SOURCE_CIRCLECI_USAGE_CREATE_LIMIT is ${JSON.stringify(raw)}: set it to "<creates>/<seconds>" such as "5/3600" (usage exports created per organization per hour), or unset it.`,
    );
  }
  const limit = { count: Number(m[1]), windowMs: Math.round(Number(m[2]) * 1000) };
  const stricter = limit.count / limit.windowMs <= USAGE_CREATE_LIMIT.count / USAGE_CREATE_LIMIT.windowMs && limit.windowMs <= 24 * 3_600_000;
  if (loopback || stricter) return limit;
  warnings.push(
    `SOURCE_CIRCLECI_USAGE_CREATE_LIMIT (${raw}) is looser than CircleCI's limit of 10 usage exports an hour per organization and is ignored (honoured only when base_url is this machine). Unset it to silence this warning.`,
  );
  return USAGE_CREATE_LIMIT;
}

/** Reads and parses a JSON file given on the command line; `what` names it in errors ("config"). */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw configError(`Cannot read the ${what} file ${path}: ${unreadable((e as NodeJS.ErrnoException).code, (e as Error).message)}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // Node's message quotes the text around the error, which may hold the token: report only the place.
    const pos = /position (\d+)/.exec((e as Error).message);
    const where = pos ? ` at line ${lineOf(text, Number(pos[1]))}` : '';
    throw configError(`The ${what} file ${path} is not valid JSON${where}. Fix its syntax.`);
  }
}

/** Why a file could not be read, and what to do, by the error's code. */
function unreadable(code: string | undefined, message: string): string {
  if (code === 'EACCES' || code === 'EPERM') {
    const user = (() => {
      try {
        return userInfo().username;
      } catch {
        return `uid ${process.getuid?.() ?? '?'}`;
      }
    })();
    return `permission denied. The connector runs as the user "${user}" (in the Docker image: "airbyte", not you), and that user may not read it. ` +
      'Make the file readable by all (chmod a+r FILE) and its folders searchable (chmod a+x DIR).';
  }
  return `${code ?? message}. Check the path.`;
}

const lineOf = (text: string, pos: number) => text.slice(0, pos).split('\n').length;


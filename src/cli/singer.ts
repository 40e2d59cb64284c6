#!/usr/bin/env node
import { closeAgents } from '../circleci/http.js';
import { parseConfig, readJsonFile, spec } from '../config.js';
import { asConnectorError, configError } from '../errors.js';
import { Output } from '../protocol/output.js';
import { SingerSink, TAP_NAME, logLine, schemaMessage } from '../protocol/singer.js';
import { parseSingerCatalog, selectAll, singerCatalog } from '../protocol/singer-catalog.js';
import { parseSingerState } from '../protocol/singer-state.js';
import { registerSecret } from '../redact.js';
import { packageVersion } from '../resources.js';
import { runSync } from '../sync/engine.js';
import { parseFlags, type Flag } from './args.js';
import { isEntryPoint } from './entry.js';
import { STOP_SIGNALS, dieBy, exitCodeOf, type StopSignal } from './signals.js';

/**
 * The Singer face (`tap-circleci`, for Meltano): --discover, a sync with --catalog/--properties
 * and --state, --about, --test, --version, --help. stdout carries Singer messages only; logs go
 * to stderr.
 */

const DESCRIPTION = 'Singer tap for CircleCI (API v2): projects, pipelines, workflows, jobs, job details and test results. Same engine as the source-circleci Airbyte connector.';
const CAPABILITIES = ['catalog', 'discover', 'state', 'about', 'test'];
const ENV_PREFIX = 'TAP_CIRCLECI_';

const USAGE = `Usage: ${TAP_NAME} [options]

${DESCRIPTION}

  -c, --config FILE|ENV     Config JSON file; repeat to merge several (later files win).
                            ENV reads ${ENV_PREFIX}<SETTING> variables (e.g. ${ENV_PREFIX}TOKEN).
  -d, --discover            Print the catalog (no API call, no credentials needed).
      --catalog FILE        Catalog to sync (selected streams and properties).
  -p, --properties FILE     Same as --catalog (older Singer taps).
  -s, --state FILE          State to resume from ({"bookmarks": ...}; tap-circle-ci's state works too).
      --about               Print name, version, capabilities and settings.
      --format json|markdown  Output format of --about.
      --test[=schema]       Sync at most one record per stream (=schema: SCHEMA messages only).
      --version             Print the version.
  -h, --help                Print this help.

With no catalog, projects, pipelines, workflows and jobs are synced with every field;
job_details and tests (a request or more per job), workflow_runs and flaky_tests (Insights) and
usage (usage exports, 10 an hour per organization) only when a catalog selects them.`;

interface Args {
  config: string[];
  catalog?: string;
  properties?: string;
  state?: string;
  discover: boolean;
  about: boolean;
  format?: string;
  test?: 'all' | 'schema';
  version: boolean;
  help: boolean;
}

const FLAGS: Record<string, Flag> = {
  config: { type: 'string', short: 'c' },
  catalog: { type: 'string' },
  properties: { type: 'string', short: 'p' },
  state: { type: 'string', short: 's' },
  format: { type: 'string' },
  discover: { type: 'boolean', short: 'd' },
  about: { type: 'boolean' },
  version: { type: 'boolean', short: 'V' },
  help: { type: 'boolean', short: 'h' },
  // `--test` alone, `--test=schema` or `--test schema` (singer-sdk's forms; `record` is its default).
  test: { type: 'optional', choices: ['all', 'schema', 'record'], default: 'all', hint: '=schema' },
};

/** Flags in any order, `--x v` or `--x=v`, singer-python's short forms; --config repeats, other values: the last wins. */
export function parseArgs(argv: string[]): Args {
  const { flags } = parseFlags(argv, FLAGS, (message) => {
    throw usageError(message);
  });
  const last = (name: string) => flags.get(name)?.at(-1);
  const test = last('test');
  const args: Args = {
    config: flags.get('config') ?? [],
    catalog: last('catalog'),
    properties: last('properties'),
    state: last('state'),
    format: last('format'),
    discover: flags.has('discover'),
    about: flags.has('about'),
    version: flags.has('version'),
    help: flags.has('help'),
    test: test === undefined ? undefined : test === 'schema' ? 'schema' : 'all',
  };
  if (args.format !== undefined && !['json', 'markdown'].includes(args.format)) throw usageError(`--format is json or markdown (got "${args.format}").`);
  return args;
}

const usageError = (message: string) => configError(`${message} Run ${TAP_NAME} --help for the options.`);

/** `TAP_CIRCLECI_<SETTING>` variables: strings as they are, JSON for lists and objects, numbers for integers, true/false for booleans. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(spec.properties) as Array<[string, { type?: string }]>) {
    const value = env[`${ENV_PREFIX}${key.toUpperCase().replace(/-/g, '_')}`];
    if (value === undefined) continue;
    if (prop.type === 'array' || prop.type === 'object') {
      try {
        config[key] = JSON.parse(value);
      } catch {
        config[key] = value; // project_slugs may be a space-separated string
      }
    } else if (prop.type === 'integer' && /^-?\d+$/.test(value.trim())) config[key] = Number(value);
    else if (prop.type === 'boolean' && /^(true|false)$/i.test(value.trim())) config[key] = value.trim().toLowerCase() === 'true';
    else config[key] = value;
  }
  return config;
}

/** Reads and merges every --config, registering the token as a secret before anything can print it. */
export function rawConfig(paths: string[]): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  for (const path of paths) {
    const raw = path === 'ENV' ? configFromEnv() : readJsonFile(path, 'config');
    if (raw && typeof raw === 'object' && typeof (raw as { token?: unknown }).token === 'string') registerSecret((raw as { token: string }).token);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw configError(`The config file ${path} must hold a JSON object such as {"token": "...", "project_slugs": ["gh/acme/api"]}.`);
    Object.assign(merged, raw);
  }
  return merged;
}

/** spec.json as the Meltano SDK's settings schema: secrets marked, Airbyte-only keys dropped. */
export function settingsSchema() {
  const properties: Record<string, Record<string, unknown>> = {};
  for (const [key, prop] of Object.entries(spec.properties) as Array<[string, Record<string, unknown>]>) {
    const { airbyte_secret: secret, order: _order, ...rest } = prop;
    properties[key] = secret ? { ...rest, secret: true, writeOnly: true } : rest;
  }
  return { type: 'object', properties, required: spec.required };
}

export function about() {
  return { name: TAP_NAME, description: DESCRIPTION, version: packageVersion(), capabilities: CAPABILITIES, settings: settingsSchema() };
}

export function aboutMarkdown(): string {
  const a = about();
  const cell = (v: unknown) => String(v ?? 'None').replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = Object.entries(a.settings.properties).map(
    ([key, p]) => `| ${key} | ${a.settings.required.includes(key) ? 'True' : 'False'} | ${cell(p.default)} | ${cell(p.description)}${p.secret ? ' (secret)' : ''} |`,
  );
  return [
    `# \`${a.name}\``, '', a.description, '', `Built with the source-circleci engine, version ${a.version}.`, '',
    '## Capabilities', '', ...a.capabilities.map((c) => `* \`${c}\``), '',
    '## Settings', '', '| Setting | Required | Default | Description |', '|:--------|:--------:|:-------:|:------------|', ...rows, '',
    `A full list of supported settings and capabilities is available by running: \`${a.name} --about\``, '',
    '### Configure using environment variables', '',
    `This tap reads \`${ENV_PREFIX}<SETTING>\` variables (e.g. \`${ENV_PREFIX}TOKEN\`) when run with \`--config ENV\`.`, '',
  ].join('\n');
}

export function aboutText(): string {
  const a = about();
  return [
    `Name: ${a.name}`, `Description: ${a.description}`, `Version: ${a.version}`, `Capabilities: [${a.capabilities.join(', ')}]`,
    'Settings:', ...Object.entries(a.settings.properties).map(([k, p]) => `  ${k}${a.settings.required.includes(k) ? ' (required)' : ''}: ${String(p.description ?? '')}`),
  ].join('\n');
}

// ---- the sync, and how it stops

/** What the parts of one run share. */
interface Run {
  out: Output;
  log: (level: Parameters<typeof logLine>[0], message: string) => void;
  controller: AbortController;
}

/**
 * Runs the tap with `argv` (the words after the script) and exits. Everything that touches the
 * process (its signals, stdout, the exit) starts here, so importing this module does nothing.
 */
export async function main(argv: string[]): Promise<never> {
  const out = new Output();
  const log = (level: Parameters<typeof logLine>[0], message: string) => out.log(logLine(level, message));
  const controller = new AbortController();
  /** The signal (SIGTERM from a platform, SIGINT from Ctrl-C) that is stopping the sync, if any. */
  let stoppedBy: StopSignal | undefined;

  async function finish(code: number): Promise<never> {
    closeAgents();
    await out.flush();
    // Stopped by a signal: die by it (Meltano's `config test` counts only that as a pass).
    if (stoppedBy) dieBy(stoppedBy);
    process.exit(code);
  }

  function onStopSignal(signal: StopSignal): void {
    if (stoppedBy) return;
    stoppedBy = signal;
    // Requests in flight and waits are aborted; projects part-way through get a last STATE of what
    // they completed; then main() ends and finish() dies by the signal. A stuck reader must not keep
    // us alive.
    controller.abort();
    log('WARN', `Received ${signal}: stopping. The last STATE printed is where the next sync resumes.`);
    setTimeout(() => process.exit(exitCodeOf(signal)), 5_000).unref();
  }
  for (const signal of STOP_SIGNALS) process.on(signal, () => onStopSignal(signal));

  // The reader went away (EPIPE): nothing more can be delivered, so stop now; the exit code says the
  // sync did not complete. (Output stops writing, but a write waiting for 'drain' would wait forever.)
  let readerGone = false;
  process.stdout.on('error', () => {
    if (readerGone || stoppedBy) return;
    readerGone = true;
    controller.abort();
    log('WARN', 'stdout was closed by its reader; stopping the sync. The last STATE the reader got is where the next sync resumes.');
    void finish(1);
  });

  process.on('uncaughtException', (e) => fail(e));
  process.on('unhandledRejection', (e) => fail(e));

  function fail(e: unknown): Promise<never> {
    const err = asConnectorError(e);
    log('CRITICAL', err.message);
    if (err.failureType === 'system_error' && err.stack) out.log(err.stack);
    return finish(1);
  }

  try {
    await command(argv, { out, log, controller });
    await finish(readerGone ? 1 : 0);
  } catch (e) {
    if (stoppedBy) await finish(exitCodeOf(stoppedBy));
    await fail(e);
  }
  return finish(1); // not reached: every path above exits
}

async function sync(args: Args, run: Run): Promise<void> {
  const { out, log, controller } = run;
  if (!args.config.length) throw usageError('--config is required to sync (a JSON file, or ENV).');
  const cfg = parseConfig(rawConfig(args.config));
  const catalogPath = args.catalog ?? args.properties;
  const picked = catalogPath ? parseSingerCatalog(readJsonFile(catalogPath, 'catalog')) : selectAll();
  if (!catalogPath) log('INFO', 'No catalog given: syncing projects, pipelines, workflows and jobs with every field; job_details and tests (a request or more per job), workflow_runs and flaky_tests (Insights) and usage (usage exports) need a catalog that selects them.');
  for (const n of picked.notes) log('WARN', n);
  if (args.test === 'schema') {
    for (const s of picked.streams.values()) await out.line(schemaMessage(s));
    return;
  }
  if (picked.selection.size === 0) {
    log('WARN', 'The catalog selects no streams: nothing to sync. Select streams with `select:` in meltano.yml or "selected": true in the catalog metadata.');
    return;
  }
  const { state, bookmarks } = args.state
    ? parseSingerState(readJsonFile(args.state, 'state'), cfg.projectSlugs, (m) => log('INFO', m))
    : { state: {}, bookmarks: {} };
  if (args.test) log('INFO', 'Test mode: at most one record per stream.');
  const sink = new SingerSink(out, picked.streams, bookmarks, {
    ...(args.test ? { maxRecordsPerStream: 1, onSampled: () => controller.abort() } : {}),
    stopped: () => {
      // A reader that went away (EPIPE): stop fetching too.
      if (out.isClosed && !controller.signal.aborted) controller.abort();
      return out.isClosed;
    },
  });
  await runSync(cfg, picked.selection, state, sink, { signal: controller.signal, progress: out.interactive ? (l) => out.progress(l) : undefined });
  out.clearProgress();
}

async function command(argv: string[], run: Run): Promise<void> {
  const { out } = run;
  const args = parseArgs(argv);
  if (args.help) return out.text(USAGE);
  if (args.version) return out.text(`${TAP_NAME} ${packageVersion()}`);
  // --about and --discover need no credentials and make no API call; a --config is ignored.
  if (args.about) {
    if (args.format === 'json') return out.line(about());
    return out.text(args.format === 'markdown' ? aboutMarkdown() : aboutText());
  }
  if (args.discover) return out.line(singerCatalog());
  return sync(args, run);
}

if (isEntryPoint(import.meta.url)) await main(process.argv.slice(2));

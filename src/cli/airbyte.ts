#!/usr/bin/env node
import { closeAgents } from '../circleci/http.js';
import { parseConfig, readJsonFile, spec, type Config } from '../config.js';
import { asConnectorError, configError } from '../errors.js';
import { AirbyteSink, airbyteStream, connectionStatus, logMessage, traceError } from '../protocol/airbyte.js';
import { parseConfiguredCatalog } from '../protocol/airbyte-catalog.js';
import { parseAirbyteState } from '../protocol/airbyte-state.js';
import { Output } from '../protocol/output.js';
import { registerSecret } from '../redact.js';
import { packageVersion } from '../resources.js';
import { STREAMS } from '../streams/index.js';
import { checkConnection, runSync } from '../sync/engine.js';
import { parseFlags, type Flag } from './args.js';
import { isEntryPoint } from './entry.js';
import { STOP_SIGNALS, dieBy, exitCodeOf, type StopSignal } from './signals.js';

/** The Airbyte face: spec, check, discover, read. Everything on stdout is an AirbyteMessage. */

const USAGE = 'Usage: source-circleci spec | check --config FILE | discover --config FILE | read --config FILE --catalog FILE [--state FILE]';

const HELP = `source-circleci <command> [options]

CircleCI (API v2) source for Airbyte: projects, pipelines, workflows, jobs, job details and test results.

Commands:
  source-circleci spec                    Print the connector specification
  source-circleci check --config FILE     Check the token and every project slug
  source-circleci discover --config FILE  Print the catalog of streams
  source-circleci read --config FILE --catalog FILE [--state FILE]
                                          Sync the streams of a configured catalog

Options:
  --config FILE   config JSON file
  --catalog FILE  ConfiguredAirbyteCatalog JSON file
  --state FILE    state JSON file (an array of STREAM state messages)
  -h, --help      Show help
  --version       Print the version`;

const FLAGS: Record<string, Flag> = {
  config: { type: 'string' },
  catalog: { type: 'string' },
  state: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
};

/** Each command's flags: required, then optional. */
const COMMANDS = {
  spec: { required: [], optional: [] },
  check: { required: ['config'], optional: [] },
  discover: { required: ['config'], optional: [] },
  read: { required: ['config', 'catalog'], optional: ['state'] },
} as const;

export type Command =
  | { command: 'help' | 'version' | 'spec' }
  | { command: 'check' | 'discover'; config: string }
  | { command: 'read'; config: string; catalog: string; state?: string };

const usageError = (message: string) => configError(`${message} ${USAGE}`);
const unknownCommand = (name: string) => usageError(`Unknown command "${name}": the commands are spec, check, discover and read.`);

/** The command line as a command and its files; a mistake is a config error naming it, with the usage. */
export function parseCommand(argv: string[]): Command {
  // Told first, whatever follows: a wrong command is a wrong command, not an unknown flag.
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-') && !(first in COMMANDS)) {
    throw unknownCommand(first);
  }
  const { flags, positionals } = parseFlags(argv, FLAGS, (message) => {
    throw usageError(message);
  }, { positionals: true });
  if (flags.has('help')) return { command: 'help' };
  if (flags.has('version')) return { command: 'version' };
  const [name, ...extra] = positionals;
  if (name === undefined) throw usageError('Name a command: spec, check, discover or read.');
  if (!(name in COMMANDS)) throw unknownCommand(name);
  if (extra.length) throw usageError(`Unknown argument: ${extra[0]}.`);
  const rules = COMMANDS[name as keyof typeof COMMANDS];
  const allowed: readonly string[] = [...rules.required, ...rules.optional];
  const stray = [...flags.keys()].find((f) => !allowed.includes(f));
  if (stray) throw usageError(`${name} takes no --${stray}.`);
  const missing = rules.required.filter((f) => !flags.has(f));
  if (missing.length) throw usageError(`Missing required argument${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}.`);
  const value = (f: string) => flags.get(f)?.at(-1);
  if (name === 'read') return { command: 'read', config: value('config')!, catalog: value('catalog')!, ...(flags.has('state') ? { state: value('state') } : {}) };
  if (name === 'check' || name === 'discover') return { command: name, config: value('config')! };
  return { command: 'spec' };
}

/** Reads the config file, registering its token as a secret before anything can print it. */
function config(path: string) {
  const raw = readJsonFile(path, 'config');
  if (raw && typeof raw === 'object' && typeof (raw as { token?: unknown }).token === 'string') registerSecret((raw as { token: string }).token);
  return parseConfig(raw);
}

/** read logs config warnings as part of the sync; check and discover print them up front. */
async function warnAbout(out: Output, cfg: Config): Promise<Config> {
  for (const w of cfg.warnings) await out.line(logMessage('WARN', w));
  return cfg;
}

/** Runs one command; a failure throws (execute reports it). */
async function run(out: Output, cmd: Command, signal: AbortSignal): Promise<void> {
  switch (cmd.command) {
    case 'help':
      return out.text(HELP);
    case 'version':
      return out.text(`source-circleci ${packageVersion()}`);
    case 'spec':
      return out.line({ type: 'SPEC', spec: { documentationUrl: 'https://github.com/source-circleci/source-circleci#readme', connectionSpecification: spec, supportsIncremental: true, supported_destination_sync_modes: ['overwrite', 'append', 'append_dedup'] } });
    case 'check':
      try {
        await checkConnection(await warnAbout(out, config(cmd.config)), (level, message) => out.line(logMessage(level, message)));
        await out.line(connectionStatus(true));
      } catch (e) {
        const err = asConnectorError(e);
        if (err.failureType === 'system_error') throw err;
        await out.line(connectionStatus(false, err.message));
      }
      return;
    case 'discover':
      await warnAbout(out, config(cmd.config));
      return out.line({ type: 'CATALOG', catalog: { streams: STREAMS.map(airbyteStream) } });
    case 'read': {
      const cfg = config(cmd.config);
      const selection = parseConfiguredCatalog(readJsonFile(cmd.catalog, 'catalog'));
      const notes: string[] = [];
      const state = cmd.state ? parseAirbyteState(readJsonFile(cmd.state, 'state'), (n) => notes.push(n)) : {};
      for (const n of notes) await out.line(logMessage('INFO', n));
      await runSync(cfg, selection, state, new AirbyteSink(out), { signal, progress: out.interactive ? (l) => out.progress(l) : undefined });
      out.clearProgress();
    }
  }
}

/**
 * Runs one command line, writing its messages to `out`, and resolves to its exit code: a failure,
 * a usage mistake included, is one TRACE error on stdout (never a stack) and exit code 1.
 */
export async function execute(argv: string[], out: Output, signal: AbortSignal): Promise<number> {
  try {
    await run(out, parseCommand(argv), signal);
    return 0;
  } catch (e) {
    await out.line(traceError(asConnectorError(e)));
    return 1;
  } finally {
    closeAgents();
    await out.flush();
  }
}

/**
 * Runs the connector with `argv` (the words after the script). Everything that touches the process
 * (its signals, stdout, the exit code) starts here, so importing this module does nothing.
 */
export async function main(argv: string[]): Promise<void> {
  const out = new Output();
  const stop = new AbortController();
  /** The signal (SIGTERM from a platform, SIGINT from Ctrl-C) that is stopping the sync, if any. */
  let stoppedBy: StopSignal | undefined;
  let readerGone = false;

  function onStopSignal(signal: StopSignal): void {
    if (stoppedBy) return;
    stoppedBy = signal;
    // Requests in flight and waits are aborted; projects part-way through get a last checkpoint of
    // what they completed; then the process dies by the signal (below). A stuck reader must not keep
    // us alive.
    void out.line(logMessage('WARN', `Received ${signal}: stopping. The last STATE printed is where the next sync resumes.`));
    stop.abort();
    process.exitCode = exitCodeOf(signal);
    setTimeout(() => process.exit(exitCodeOf(signal)), 10_000).unref();
  }
  for (const signal of STOP_SIGNALS) process.on(signal, () => onStopSignal(signal));

  // The reader went away (EPIPE, e.g. `read | head`): nothing more can be delivered, so stop at once
  // and say so with the exit code: the sync did not complete.
  process.stdout.on('error', () => {
    if (readerGone) return;
    readerGone = true;
    out.log('source-circleci: stdout was closed by its reader; stopping the sync. The last STATE the reader got is where the next sync resumes.');
    stop.abort();
    process.exitCode = 1;
  });

  process.on('uncaughtException', (e) => {
    void out.line(traceError(asConnectorError(e))).then(() => out.flush()).finally(() => process.exit(1));
  });

  if ((await execute(argv, out, stop.signal)) !== 0) process.exitCode = 1;
  // After the last checkpoint is out, die by the signal, as a platform watching for it expects.
  if (stoppedBy) dieBy(stoppedBy);
}

if (isEntryPoint(import.meta.url)) await main(process.argv.slice(2));

#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { closeAgents } from '../circleci/http.js';
import { parseConfig, readJsonFile, spec, type Config } from '../config.js';
import { ConnectorError, asConnectorError, configError } from '../errors.js';
import { AirbyteSink, airbyteStream, connectionStatus, logMessage, traceError } from '../protocol/airbyte.js';
import { parseConfiguredCatalog } from '../protocol/airbyte-catalog.js';
import { parseAirbyteState } from '../protocol/airbyte-state.js';
import { Output } from '../protocol/output.js';
import { registerSecret } from '../redact.js';
import { packageVersion } from '../resources.js';
import { STREAMS } from '../streams/index.js';
import { checkConnection, runSync } from '../sync/engine.js';
import { STOP_SIGNALS, dieBy, exitCodeOf, type StopSignal } from './signals.js';

/** The Airbyte face: spec, check, discover, read. Everything on stdout is an AirbyteMessage. */

const out = new Output();

/** Reads the config file, registering its token as a secret before anything can print it. */
function config(path: string) {
  const raw = readJsonFile(path, 'config');
  if (raw && typeof raw === 'object' && typeof (raw as { token?: unknown }).token === 'string') registerSecret((raw as { token: string }).token);
  return parseConfig(raw);
}

/** read logs config warnings as part of the sync; check and discover print them up front. */
async function warnAbout(cfg: Config): Promise<Config> {
  for (const w of cfg.warnings) await out.line(logMessage('WARN', w));
  return cfg;
}

async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (e) {
    await out.line(traceError(asConnectorError(e)));
    process.exitCode = 1;
  } finally {
    closeAgents();
    await out.flush();
  }
}

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

const USAGE = 'Usage: source-circleci spec | check --config FILE | discover --config FILE | read --config FILE --catalog FILE [--state FILE]';
const COMMANDS = ['spec', 'check', 'discover', 'read'];

/** yargs' own messages lack a full stop ("Missing required argument: catalog"); ours end in one. */
const sentence = (text: string) => (/[.!?]$/.test(text.trim()) ? text.trim() : `${text.trim()}.`);

try {
  const argv = hideBin(process.argv);
  // yargs would call a wrong command an unknown argument, with the options in it.
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-') && !COMMANDS.includes(first)) {
    throw configError(`Unknown command "${first}": the commands are spec, check, discover and read. ${USAGE}`);
  }
  await yargs(argv)
  .scriptName('source-circleci')
  .usage('$0 <command> [options]\n\nCircleCI (API v2) source for Airbyte: projects, pipelines, workflows, jobs, job details and test results.')
  .command('spec', 'Print the connector specification', {}, () =>
    run(() => out.line({ type: 'SPEC', spec: { documentationUrl: 'https://github.com/source-circleci/source-circleci#readme', connectionSpecification: spec, supportsIncremental: true, supported_destination_sync_modes: ['overwrite', 'append', 'append_dedup'] } })),
  )
  .command('check', 'Check the token and every project slug', (y) => y.option('config', { type: 'string', demandOption: true, describe: 'config JSON file' }), (argv) =>
    run(async () => {
      try {
        await checkConnection(await warnAbout(config(argv.config)));
        await out.line(connectionStatus(true));
      } catch (e) {
        const err = asConnectorError(e);
        if (err.failureType === 'system_error') throw err;
        await out.line(connectionStatus(false, err.message));
      }
    }),
  )
  .command('discover', 'Print the catalog of streams', (y) => y.option('config', { type: 'string', demandOption: true, describe: 'config JSON file' }), (argv) =>
    run(async () => {
      await warnAbout(config(argv.config));
      await out.line({ type: 'CATALOG', catalog: { streams: STREAMS.map(airbyteStream) } });
    }),
  )
  .command(
    'read',
    'Sync the streams of a configured catalog',
    (y) =>
      y
        .option('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
        .option('catalog', { type: 'string', demandOption: true, describe: 'ConfiguredAirbyteCatalog JSON file' })
        .option('state', { type: 'string', describe: 'state JSON file (an array of STREAM state messages)' }),
    (argv) =>
      run(async () => {
        const cfg = config(argv.config);
        const selection = parseConfiguredCatalog(readJsonFile(argv.catalog, 'catalog'));
        const notes: string[] = [];
        const state = argv.state ? parseAirbyteState(readJsonFile(argv.state, 'state'), (n) => notes.push(n)) : {};
        for (const n of notes) await out.line(logMessage('INFO', n));
        await runSync(cfg, selection, state, new AirbyteSink(out), { signal: stop.signal, progress: out.interactive ? (l) => out.progress(l) : undefined });
        out.clearProgress();
      }),
  )
  .demandCommand(1, 'Name a command: spec, check, discover or read.')
  .strict()
  .fail((msg, err) => {
    // Throwing stops yargs before any command runs; the catch below reports it.
    throw err instanceof ConnectorError ? err : configError(`${sentence(msg ?? err?.message ?? 'Wrong arguments')} ${USAGE}`);
  })
  .help()
  .version('version', 'Print the version', `source-circleci ${packageVersion()}`)
  // No wrapping: at yargs' default width it broke words of the description in two.
  .wrap(null)
  .parseAsync();
} catch (e) {
  // Usage mistakes are config errors too: one clear TRACE on stdout, not a stack.
  await out.line(traceError(asConnectorError(e)));
  await out.flush();
  process.exitCode = 1;
}
// After the last checkpoint is out, die by the signal, as a platform watching for it expects.
if (stoppedBy) dieBy(stoppedBy);

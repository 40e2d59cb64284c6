#!/usr/bin/env node
/**
 * Standalone mock CircleCI API v2:
 *
 *   node dist-dev/mock/cli.js [--port N] [--seed N] [--now ISO] [--latency MS] [--history-days N] [--token T]
 *                         [--pipelines-per-day N] [--page-size N] [--job-page-size N] [--test-page-size N] [--realtime] [--clock-rate N]
 *                         [--rate-limit N] [--rate-window bucket|fixed] [--server-mode] [--org-projects N]
 *
 * Prints one line {"base_url": "...", "token": "..."} on stdout once listening, then serves until
 * SIGINT/SIGTERM. --realtime moves the world's clock along with the wall clock (once a second), so
 * new pipelines keep arriving and running workflows finish; --clock-rate N moves it N world
 * seconds per wall second, a step before each answer (a long sync, compressed, while it runs);
 * without either the clock stands still. --rate-limit N allows N requests a minute per token,
 * refilled continuously (a token bucket) or, with --rate-window fixed, all at once every minute.
 * --server-mode answers like CircleCI Server (no API v3: /api/v3/* is 404). --org-projects N serves
 * an organization gh/acme of N projects gh/acme/service-1 .. service-N instead of the default projects.
 */
import { DEFAULT_TOKEN, startMockServer } from './server.js';
import { World, serviceSlugs } from './world.js';

const USAGE =
  'usage: cli.js [--port N] [--seed N] [--now ISO] [--latency MS] [--history-days N] [--token T] [--pipelines-per-day N] [--page-size N] [--job-page-size N] [--test-page-size N] [--realtime] [--clock-rate N] [--rate-limit N] [--rate-window fixed|bucket] [--server-mode] [--org-projects N]';

function usage(problem: string): never {
  process.stderr.write(`${problem}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) usage(`unexpected argument ${arg}`);
    const eq = arg.indexOf('=');
    if (eq > 0) out.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (arg === '--realtime' || arg === '--help' || arg === '--server-mode') out.set(arg.slice(2), true);
    else {
      const value = argv[++i];
      if (value === undefined) usage(`${arg} needs a value`);
      out.set(arg.slice(2), value);
    }
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const known = new Set(['port', 'seed', 'now', 'latency', 'history-days', 'token', 'pipelines-per-day', 'page-size', 'job-page-size', 'test-page-size', 'realtime', 'clock-rate', 'rate-limit', 'rate-window', 'server-mode', 'org-projects', 'help']);
for (const k of args.keys()) if (!known.has(k)) usage(`unknown option --${k}`);
if (args.has('help')) {
  // Asked for, not a mistake: stdout and exit 0.
  process.stdout.write(`A mock CircleCI API v2 on 127.0.0.1, for trying source-circleci and tap-circleci without an account.\n${USAGE}\n`);
  process.exit(0);
}

const num = (name: string, fallback?: number): number | undefined => {
  const v = args.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n) || n < 0) usage(`--${name} needs a non-negative number`);
  return n;
};

function orgProjects(): string[] | undefined {
  const n = num('org-projects');
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < 1) usage('--org-projects needs a whole number of projects, at least 1');
  return serviceSlugs(n);
}

const token = typeof args.get('token') === 'string' ? (args.get('token') as string) : DEFAULT_TOKEN;
// A fixed clock makes the world byte-for-byte reproducible (the acceptance account uses one).
const nowArg = args.get('now');
if (nowArg !== undefined && (typeof nowArg !== 'string' || Number.isNaN(Date.parse(nowArg)))) usage('--now needs an ISO date-time');
const world = new World({
  seed: num('seed', 1),
  now: typeof nowArg === 'string' ? new Date(nowArg) : undefined,
  historyDays: num('history-days'),
  pipelinesPerDay: num('pipelines-per-day'),
  projects: orgProjects(),
});
const port = num('port', 0);
const window = args.get('rate-window') ?? 'bucket';
if (window !== 'bucket' && window !== 'fixed') usage('--rate-window is bucket or fixed');
const perMinute = num('rate-limit');
let server: Awaited<ReturnType<typeof startMockServer>>;
try {
  server = await startMockServer({
    world,
    token,
    port,
    latencyMs: num('latency', 0),
    pageSize: num('page-size'),
    jobPageSize: num('job-page-size'),
    testPageSize: num('test-page-size'),
    seed: num('seed', 1),
    clockRate: num('clock-rate', 0),
    rateLimit: perMinute ? { perMinute, window } : undefined,
    server: args.get('server-mode') === true,
  });
} catch (e) {
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== 'EADDRINUSE' && code !== 'EACCES') throw e;
  process.stderr.write(
    code === 'EADDRINUSE'
      ? `Port ${port} on 127.0.0.1 is already in use (another mock still running?). Choose another with --port, or --port 0 for a free one.\n`
      : `Port ${port} needs privileges this user does not have. Choose a port above 1023 with --port, or --port 0 for a free one.\n`,
  );
  process.exit(1);
}

let tick: NodeJS.Timeout | undefined;
if (args.get('realtime') === true) {
  let last = Date.now();
  tick = setInterval(() => {
    const now = Date.now();
    world.advance(now - last);
    last = now;
  }, 1000);
}

process.stdout.write(JSON.stringify({ base_url: server.baseUrl, token }) + '\n');

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  if (tick) clearInterval(tick);
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

#!/usr/bin/env node
/**
 * `npm run bench`: the connector's performance against the bundled mock CircleCI API.
 *
 *   npm run bench [-- --scenario all|latency|ratelimit|window|throughput|memory|history[,...]] [--quick]
 *                    [--strict] [--concurrency N] [--full-baseline] [--verbose] [--json FILE]
 *
 * The mock (dist-dev/mock) runs in this process; the connector is the real CLI (dist/cli/airbyte.js
 * read, all three streams full refresh) spawned as its own process, with bench/probe.mjs
 * preloaded to report that process's peak RSS (getrusage ru_maxrss) and CPU time when it exits.
 * Wall time is from spawn to exit, Node start-up included.
 *
 * Scenarios and targets (issue #5):
 *  latency     50 ms a request, ~6,000 requests, at --concurrency (16) and at max_concurrency 1:
 *              >= 12x faster than max_concurrency 1, >= 80% of requests x latency / concurrency.
 *  ratelimit   the mock's token bucket at 600 requests a minute: >= 90% of that rate, < 5% 429s.
 *  window      the same quota in fixed windows (all of it back at each minute's end, RateLimit-Reset
 *              = seconds to the window's end): >= 90% of each window's quota used, < 5% 429s.
 *  throughput  no latency: >= 20,000 records a second.
 *  memory      the same read over 30 and 300 days of history: peak RSS < 200 MB, growth < 50%.
 *  history     (issue #10) 3 projects x 90 days x 20 pipelines a day, all three streams incremental:
 *              a full sync, a no-change sync and one a day later; requests, records, the time at
 *              1,000 requests a minute, and a full sync scaled to a year. No-change <= 10% of full;
 *              a day later <= 2 x that day's pipelines + the no-change cost. Then (issue #13) the
 *              same three syncs with the opt-in job_details and tests: the requests each adds.
 *  usage       (only when named; issue 20) the usage stream reading one ~100 MB export (a gzipped CSV
 *              part served by the mock's storage host): rows a second and the connector's peak RSS.
 *  ceiling     (only when named) a bare client (bench/http-client.mjs) against the mock and against
 *              a server that answers one fixed page: the requests a second this machine allows.
 *
 * Exits 0 whatever the numbers (it is a measurement, not a test) unless --strict is given, then
 * 1 when a target is missed. Exits 2 when a run itself fails (wrong record count, crash).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startMockServer } from '../dist-dev/mock/server.js';
import { World } from '../dist-dev/mock/world.js';
import { writeUsageExport } from '../dist-dev/mock/usageCsv.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/airbyte.js');
const PROBE = pathToFileURL(join(ROOT, 'bench/probe.mjs')).href;
const FULL_CATALOG = join(ROOT, 'integration_tests/configured_catalog.json');
const ALL_INCREMENTAL_CATALOG = join(ROOT, 'integration_tests/incremental_catalog.json');
/** The three streams every scenario measures; job_details and tests are opt-in (history scenario, part 2). */
const CORE = ['pipelines', 'workflows', 'jobs'];
const TOKEN = 'bench-token-not-a-secret';
const NOW = new Date('2025-06-01T00:00:00Z');
const DAY = 86_400_000;
const PAGE = { pageSize: 20, workflowPageSize: 20, jobPageSize: 5 }; // the mock's defaults, stated

// ------------------------------------------------------------------------------------------
// Arguments

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const option = (name, fallback) => {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return fallback;
  return argv[i].includes('=') ? argv[i].slice(argv[i].indexOf('=') + 1) : argv[i + 1];
};
const ALL = ['latency', 'ratelimit', 'window', 'throughput', 'memory', 'history'];
/** Not part of "all": a diagnostic of what this machine allows at all. */
const EXTRA = ['ceiling', 'projects', 'org', 'usage'];
const chosen = String(option('scenario', 'all')).split(',').flatMap((s) => (s === 'all' ? ALL : [s]));
for (const s of chosen) if (!ALL.includes(s) && !EXTRA.includes(s)) usage(`unknown scenario "${s}"`);
const QUICK = flag('quick');
const STRICT = flag('strict');
const VERBOSE = flag('verbose');
const FULL_BASELINE = flag('full-baseline');
const CONCURRENCY = Number(option('concurrency', 16));
const JSON_OUT = option('json', undefined);
if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1 || CONCURRENCY > 64) usage('--concurrency takes a whole number from 1 to 64');
if (flag('help')) usage('');

function usage(problem) {
  if (problem) console.error(problem);
  console.error('usage: npm run bench -- [--scenario all|latency|ratelimit|window|throughput|memory|history|ceiling|projects|org|usage[,...]] [--quick] [--strict] [--concurrency N] [--full-baseline] [--verbose] [--json FILE]');
  process.exit(problem ? 2 : 0);
}

// ------------------------------------------------------------------------------------------
// Datasets

/**
 * A deterministic world, walked once up front (so the mock's lazy generation is not timed),
 * with what a correct full read of it must do: its requests and records.
 */
function dataset({ days, perDay, seed = 5 }) {
  const world = new World({ seed, now: NOW, historyDays: days, pipelinesPerDay: perDay });
  const slugs = world.projectSlugs();
  const pages = (n, size) => Math.max(1, Math.ceil(n / size));
  const e = { requests: 0, pipelines: 0, workflows: 0, jobs: 0 };
  for (const slug of slugs) {
    const pipelines = world.listPipelines(slug);
    e.pipelines += pipelines.length;
    e.requests += pages(pipelines.length, PAGE.pageSize);
    for (const p of pipelines) {
      const wfs = world.workflowsOf(p.id) ?? [];
      e.workflows += wfs.length;
      e.requests += pages(wfs.length, PAGE.workflowPageSize);
      for (const wf of wfs) {
        const jobs = world.jobsOf(wf.id) ?? [];
        e.jobs += jobs.length;
        e.requests += pages(jobs.length, PAGE.jobPageSize);
      }
    }
  }
  e.records = e.pipelines + e.workflows + e.jobs;
  const startDate = new Date(NOW.getTime() - (days + 2) * DAY).toISOString().slice(0, 10);
  return { world, slugs, days, perDay, expected: e, startDate, label: `${slugs.length} projects × ${days} days × ${perDay} pipelines/day` };
}

// ------------------------------------------------------------------------------------------
// One read through the real CLI

/** Core-seconds the whole machine spent busy so far (Linux /proc/stat, USER_HZ = 100), or undefined. */
function machineBusySeconds() {
  try {
    const [, ...v] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const n = v.map(Number);
    const idle = n[3] + (n[4] ?? 0);
    return (n.slice(0, 8).reduce((a, b) => a + b, 0) - idle) / 100;
  } catch {
    return undefined;
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'source-circleci-bench-'));
let runNo = 0;

/** One of the shipped catalogs, cut down to `streams`, written to the bench's folder. */
function catalogOf(file, streams, name) {
  const catalog = JSON.parse(readFileSync(file, 'utf8'));
  catalog.streams = catalog.streams.filter((e) => streams.includes(e.stream.name));
  const path = join(tmp, `catalog-${name}.json`);
  writeFileSync(path, JSON.stringify(catalog));
  return path;
}
const CATALOG = catalogOf(FULL_CATALOG, CORE, 'full');
const INCREMENTAL_CATALOG = catalogOf(ALL_INCREMENTAL_CATALOG, CORE, 'incremental');
const CHILDREN_CATALOG = catalogOf(ALL_INCREMENTAL_CATALOG, [...CORE, 'job_details', 'tests'], 'children');

/**
 * Spawns `airbyte.js read` against `mock` and measures it. The mock's counters are reset first,
 * then sampled every 100 ms for the request timeline.
 */
async function read(mock, data, { maxConcurrency, timeoutMs = 240_000, catalog = CATALOG, state, expectRecords = true }) {
  const n = ++runNo;
  const configPath = join(tmp, `config-${n}.json`);
  const probePath = join(tmp, `probe-${n}.json`);
  const config = { token: TOKEN, ...(data.organizations ? { organizations: data.organizations } : { project_slugs: data.slugs }), start_date: data.startDate, base_url: mock.baseUrl };
  if (maxConcurrency !== undefined) config.max_concurrency = maxConcurrency;
  writeFileSync(configPath, JSON.stringify(config));
  const statePath = join(tmp, `state-${n}.json`);
  if (state) writeFileSync(statePath, JSON.stringify(state));
  const env = { ...process.env, BENCH_PROBE_FILE: probePath };
  delete env.SOURCE_CIRCLECI_BACKOFF_SCALE; // real waits, as in production
  delete env.NODE_OPTIONS;

  mock.resetCounters();
  const busy0 = machineBusySeconds();
  const benchCpu0 = process.cpuUsage();
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', PROBE, CLI, 'read', '--config', configPath, '--catalog', catalog, ...(state ? ['--state', statePath] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const timeline = [];
  const sample = () => timeline.push({ t: (performance.now() - t0) / 1000, total: mock.counters.total, limited: mock.counters.byStatus['429'] ?? 0 });
  const sampler = setInterval(sample, 100);
  const records = { pipelines: 0, workflows: 0, jobs: 0 };
  const lastStates = new Map();
  const notes = { warn: 0, rateLimitedWarn: 0, errors: [], syncSeconds: undefined, states: 0, stateBytes: 0, rateLimitedStatus: 0 };
  const RECORD = '{"type":"RECORD","record":{"stream":"';
  let buffer = '';
  const onLine = (line) => {
    if (line.startsWith(RECORD)) {
      const stream = line.slice(RECORD.length, line.indexOf('"', RECORD.length));
      records[stream] = (records[stream] ?? 0) + 1;
      return;
    }
    if (line.startsWith('{"type":"STATE"')) {
      notes.states++;
      notes.stateBytes += line.length + 1;
      const st = JSON.parse(line).state;
      lastStates.set(st.stream.stream_descriptor.name, st);
      return;
    }
    let m;
    try {
      m = JSON.parse(line);
    } catch {
      return void notes.errors.push(`not JSON on stdout: ${line.slice(0, 200)}`);
    }
    if (m.type === 'LOG') {
      const msg = m.log.message;
      if (m.log.level === 'WARN' || m.log.level === 'ERROR') {
        notes.warn++;
        if (/rate limited/.test(msg)) notes.rateLimitedWarn++;
        else if (notes.errors.length < 5 && m.log.level === 'ERROR') notes.errors.push(msg);
      }
      const fin = /^Sync finished after ([0-9.]+) s/.exec(msg);
      if (fin) notes.syncSeconds = Number(fin[1]);
    } else if (m.type === 'TRACE' && m.trace.type === 'ERROR') {
      notes.errors.push(m.trace.error.message);
    } else if (m.type === 'TRACE' && m.trace.type === 'STREAM_STATUS' && m.trace.stream_status.reasons) {
      notes.rateLimitedStatus++;
    }
  };
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffer += chunk;
    let start = 0;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n', start)) {
      onLine(buffer.slice(start, nl));
      start = nl + 1;
    }
    buffer = buffer.slice(start);
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr = (stderr + c).slice(-4000)));
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
  }, timeoutMs);
  const code = await new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? signal)));
  const wall = (performance.now() - t0) / 1000;
  clearTimeout(killer);
  clearInterval(sampler);
  sample();
  const benchCpu = process.cpuUsage(benchCpu0);
  const busy1 = machineBusySeconds();
  if (buffer) onLine(buffer);
  let probe;
  try {
    probe = JSON.parse(readFileSync(probePath, 'utf8'));
  } catch {
    probe = undefined;
  }
  const got = records.pipelines + records.workflows + records.jobs;
  const status = { ...mock.counters.byStatus };
  const result = {
    maxConcurrency: maxConcurrency ?? 8,
    code,
    timedOut,
    wall,
    syncSeconds: notes.syncSeconds,
    requests: mock.counters.total,
    expectedRequests: data.expected.requests,
    status,
    limited: status['429'] ?? 0,
    records: got,
    expectedRecords: data.expected.records,
    byStream: records,
    routes: { ...mock.counters.byRoute },
    peakRssMb: probe ? probe.maxRssKb / 1024 : undefined,
    connectorCpuS: probe ? (probe.userUs + probe.systemUs) / 1e6 : undefined,
    mockCpuS: (benchCpu.user + benchCpu.system) / 1e6,
    /** Cores that other processes kept busy on average during the run (0 on a quiet machine). */
    otherCores: undefined,
    notes,
    state: [...lastStates.values()],
    timeline,
    stderr: stderr.trim(),
  };
  if (busy0 !== undefined && busy1 !== undefined && probe) {
    result.otherCores = Math.max(0, (busy1 - busy0 - result.connectorCpuS - result.mockCpuS) / wall);
    if (result.otherCores > 0.25) {
      disturbed.push(`run ${n}: ${result.otherCores.toFixed(2)} cores`);
      console.log(`  ! other processes kept ${result.otherCores.toFixed(2)} of ${cpus().length} cores busy during run ${n} (${wall.toFixed(1)} s): its numbers are disturbed; rerun on a quiet machine.`);
    }
  }
  result.ok = code === 0 && !timedOut && (!expectRecords || got === data.expected.records);
  if (!result.ok) {
    console.log(`  ! run ${n} did not complete cleanly: exit ${code}${timedOut ? ` (killed after ${timeoutMs / 1000} s)` : ''}, ` +
      `${got} of ${data.expected.records} records${notes.errors.length ? `; ${notes.errors.join(' | ')}` : ''}${stderr ? `; stderr: ${stderr.slice(-500)}` : ''}`);
  }
  return result;
}

// ------------------------------------------------------------------------------------------
// Reporting helpers

const targets = [];
const failures = [];
const disturbed = [];
function target(name, measured, goal, pass, note = '') {
  targets.push({ name, measured, goal, pass, note });
}
const f1 = (x) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(1));
const f0 = (x) => (x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const pct = (x) => (x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)}%`);

function table(headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(line(cells[0]));
  console.log(`|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

/** Requests completed per 1-second bin, from the 100 ms samples. */
function perSecond(timeline, key = 'total') {
  const bins = [];
  let j = 0;
  const end = timeline.at(-1)?.t ?? 0;
  for (let s = 1; s <= Math.ceil(end); s++) {
    while (j < timeline.length - 1 && timeline[j + 1].t <= s) j++;
    const before = bins.length ? bins.reduce((a, b) => a + b, 0) : 0;
    bins.push(timeline[j][key] - before);
  }
  return bins;
}

const median = (xs) => {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** Seconds from spawn to the first request, and to 50/90/100% of the requests. */
function milestones(r) {
  const at = (share) => r.timeline.find((s) => s.total >= share * r.requests)?.t;
  return { first: r.timeline.find((s) => s.total > 0)?.t, p50: at(0.5), p90: at(0.9), last: at(1) };
}

function checkRun(r, what) {
  if (!r.ok) failures.push(`${what}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}, ${r.records} of ${r.expectedRecords} records`);
}

function describeRun(r, latencyS) {
  const m = milestones(r);
  const inflight = latencyS ? perSecond(r.timeline).slice(1, -1).map((n) => n * latencyS) : [];
  console.log(
    `  max_concurrency ${r.maxConcurrency}: first request at ${f1(m.first)} s, half of them done at ${f1(m.p50)} s, 90% at ${f1(m.p90)} s, all at ${f1(m.last)} s; exit at ${f1(r.wall)} s` +
      (inflight.length ? `; requests in flight per second (rate × latency): median ${f1(median(inflight))}, min ${f1(Math.min(...inflight))}, max ${f1(Math.max(...inflight))}` : '') +
      `; connector CPU ${f1(r.connectorCpuS)} s, mock CPU ${f1(r.mockCpuS)} s, other processes ${r.otherCores === undefined ? '–' : r.otherCores.toFixed(2)} cores`,
  );
  if (VERBOSE) console.log(`    requests per second: ${perSecond(r.timeline).join(' ')}`);
}

// ------------------------------------------------------------------------------------------
// Scenarios

const results = {};

async function latencyScenario() {
  const latencyMs = 50;
  const L = latencyMs / 1000;
  const full = QUICK ? { days: 20, perDay: 10 } : { days: 60, perDay: 10 };
  const sub = { days: full.days / 10, perDay: full.perDay };
  console.log(`\n## 1. Latency: ${latencyMs} ms a request, max_concurrency ${CONCURRENCY} against max_concurrency 1\n`);
  const data = dataset(full);
  console.log(`Dataset: ${data.label} = ${f0(data.expected.records)} records in ${f0(data.expected.requests)} requests (pages of ${PAGE.pageSize} pipelines, ${PAGE.workflowPageSize} workflows, ${PAGE.jobPageSize} jobs).`);
  const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs, ...PAGE });
  const rows = [];
  const runs = [];
  try {
    const main = await read(mock, data, { maxConcurrency: CONCURRENCY });
    checkRun(main, `latency, max_concurrency ${CONCURRENCY}`);
    runs.push(main);
    if (!QUICK && CONCURRENCY !== 8) {
      const dflt = await read(mock, data, { maxConcurrency: undefined });
      checkRun(dflt, 'latency, default max_concurrency');
      runs.push(dflt);
    }
  } finally {
    await mock.close();
  }
  // max_concurrency 1: a tenth of the history (same projects and pipelines a day), timed per request.
  let serial;
  let serialData;
  if (FULL_BASELINE) {
    serialData = data;
  } else {
    serialData = dataset(sub);
  }
  const mock1 = await startMockServer({ world: serialData.world, token: TOKEN, latencyMs, ...PAGE });
  try {
    serial = await read(mock1, serialData, { maxConcurrency: 1, timeoutMs: 600_000 });
    checkRun(serial, 'latency, max_concurrency 1');
  } finally {
    await mock1.close();
  }
  // Extrapolated: start-up as measured, plus the sync's own time per request × the full count.
  const startup = serial.syncSeconds !== undefined ? Math.max(0, serial.wall - serial.syncSeconds) : 0;
  const perRequest = ((serial.syncSeconds ?? serial.wall) / serial.requests);
  const serialFull = FULL_BASELINE ? serial.wall : startup + perRequest * data.expected.requests;

  for (const r of runs) {
    const c = r.maxConcurrency;
    const bound = (r.requests * L) / c;
    rows.push([
      `max_concurrency ${c}`, f0(r.requests), f1(r.wall), f0(r.records / r.wall), f1(r.peakRssMb), f1(bound), pct(bound / r.wall), `${f1(serialFull / r.wall)}×`,
    ]);
    r.lowerBound = bound;
    r.efficiency = bound / r.wall;
    r.speedup = serialFull / r.wall;
  }
  const serialBound = serial.requests * L;
  rows.push([
    `max_concurrency 1${FULL_BASELINE ? '' : ` (${serialData.days} days: 1/10)`}`, f0(serial.requests), f1(serial.wall), f0(serial.records / serial.wall), f1(serial.peakRssMb), f1(serialBound), pct(serialBound / serial.wall), '1×',
  ]);
  if (!FULL_BASELINE) {
    rows.push([`max_concurrency 1, extrapolated to ${full.days} days`, f0(data.expected.requests), f1(serialFull), f0(data.expected.records / serialFull), '', f1(data.expected.requests * L), pct((data.expected.requests * L) / serialFull), '1×']);
  }
  table(['read', 'requests', 'wall s', 'records/s', 'peak RSS MB', 'lower bound s', 'efficiency', 'speed-up'], rows);
  console.log('');
  if (!FULL_BASELINE) {
    console.log(`max_concurrency 1 ran on ${serialData.label} (${f0(serial.requests)} requests): ${f1(perRequest * 1000)} ms a request` +
      ` (the sync's own time ÷ requests) and ${f1(startup)} s of start-up; the extrapolated time is start-up + ${f1(perRequest * 1000)} ms × ${f0(data.expected.requests)} requests.` +
      ' Run with --full-baseline to time the whole dataset at max_concurrency 1 instead (about 5 minutes).');
  }
  console.log('lower bound = requests × latency ÷ max_concurrency; efficiency = lower bound ÷ wall time (wall time is spawn to exit, Node start-up included).');
  for (const r of [...runs, serial]) describeRun(r, L);
  const main = runs[0];
  target(`latency: speed-up over max_concurrency 1 (at ${CONCURRENCY})`, `${f1(main.speedup)}×`, '≥ 12×', main.speedup >= 12);
  target(`latency: efficiency against the lower bound (at ${CONCURRENCY})`, pct(main.efficiency), '≥ 80%', main.efficiency >= 0.8);
  results.latency = { latencyMs, dataset: { ...full, ...data.expected }, runs, serial, serialDataset: { ...sub, ...serialData.expected }, serialExtrapolated: serialFull, fullBaseline: FULL_BASELINE };
}

/** Spends the token's burst allowance so the connector meets the steady rate from its first request. */
async function drainBucket(mock, perMinute) {
  let limited = false;
  let sent = 0;
  const worker = async () => {
    while (!limited && sent < perMinute * 2) {
      sent++;
      const res = await fetch(`${mock.baseUrl}/me`, { headers: { 'Circle-Token': TOKEN } });
      await res.arrayBuffer();
      if (res.status === 429) limited = true;
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  return sent;
}

async function rateLimitScenario() {
  const perMinute = 600;
  const perSecondAllowed = perMinute / 60;
  const latencyMs = 50;
  // Sized for about a minute each at exactly the allowed rate.
  const variants = [
    { key: 'spent', title: 'token already spent', d: QUICK ? { days: 6, perDay: 4 } : { days: 17, perDay: 4 } },
    { key: 'fresh', title: 'fresh token (full bucket)', d: QUICK ? { days: 22, perDay: 4 } : { days: 34, perDay: 4 } },
  ];
  console.log(`\n## 2. Rate limit: the mock allows ${perMinute} requests a minute per token, ${latencyMs} ms a request, default max_concurrency\n`);
  console.log(`The mock's limit is a token bucket of ${perMinute} refilled at ${perSecondAllowed} a second; it sends RateLimit-Limit/-Remaining/-Reset (seconds until the bucket is full again) on every answer and Retry-After on a 429.`);
  console.log(`- token already spent: the bench first uses up the bucket (requests to /me until the first 429), so the connector meets the steady ${perSecondAllowed}/s from its first request, like a token another sync has just used. Allowed = ${perSecondAllowed}/s × wall time.`);
  console.log(`- fresh token: the bucket starts full. Allowed = ${perMinute} + ${perSecondAllowed}/s × wall time (the most the bucket can grant in that time).\n`);
  const rows = [];
  const out = {};
  for (const v of variants) {
    const data = dataset(v.d);
    const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs, rateLimit: { perMinute }, ...PAGE });
    let r;
    let drained = 0;
    try {
      if (v.key === 'spent') drained = await drainBucket(mock, perMinute);
      r = await read(mock, data, { maxConcurrency: undefined, timeoutMs: QUICK ? 150_000 : 240_000 });
      checkRun(r, `ratelimit, ${v.title}`);
    } finally {
      await mock.close();
    }
    const ok = r.requests - r.limited;
    const allowed = (v.key === 'fresh' ? perMinute : 0) + perSecondAllowed * r.wall;
    const ideal = v.key === 'fresh' ? Math.max(0, (data.expected.requests - perMinute) / perSecondAllowed) : data.expected.requests / perSecondAllowed;
    const share429 = r.limited / r.requests;
    rows.push([v.title, data.label, f0(r.requests), f0(r.limited), pct(share429), f1(ideal), f1(r.wall), f0((ok / r.wall) * 60), pct(Math.min(1, ok / allowed)), f1(r.peakRssMb)]);
    out[v.key] = { dataset: { ...v.d, ...data.expected }, drained, run: r, allowed, ofAllowed: ok / allowed, share429, idealSeconds: ideal };
    target(`ratelimit (${v.title}): share of the allowed rate achieved`, pct(Math.min(1, ok / allowed)), '≥ 90%', ok / allowed >= 0.9);
    target(`ratelimit (${v.title}): requests answered 429`, pct(share429), '< 5%', share429 < 0.05);
  }
  table(['start', 'dataset', 'requests', '429', '429 share', 'ideal s', 'wall s', 'answered/min', 'of allowed', 'peak RSS MB'], rows);
  console.log('');
  console.log('answered/min = requests answered 200 ÷ wall time; of allowed = requests answered 200 ÷ allowed; ideal s = the time the limit itself imposes on this dataset.');
  for (const v of variants) {
    const { run: r, drained } = out[v.key];
    const okBins = perSecond(r.timeline.map((s) => ({ t: s.t, total: s.total - s.limited })));
    const tens = [];
    for (let i = 0; i < okBins.length; i += 10) tens.push(okBins.slice(i, i + 10).reduce((a, b) => a + b, 0));
    const idle = okBins.filter((x) => x === 0).length;
    console.log(`  ${v.title}${drained ? ` (${drained} requests spent first)` : ''}: answered 200 per 10 s: ${tens.join(' ')}; ${idle} of ${okBins.length} seconds with nothing answered;` +
      ` the connector logged ${r.notes.rateLimitedWarn} "rate limited" retries and ${r.notes.rateLimitedStatus} RATE_LIMITED stream statuses`);
    describeRun(r);
  }
  results.ratelimit = { perMinute, latencyMs, ...out };
}

/**
 * The quota in fixed windows: back-to-back minutes from the token's first request, the whole quota
 * back at each window's end. Allowed = the quota of every window the read spent time in, except
 * the last one, which it need not fill (its answers there count as allowed), and except a window
 * the bench used up before the read started.
 */
async function windowScenario() {
  const perMinute = 600;
  const latencyMs = 50;
  const variants = [
    { key: 'fresh', title: 'fresh window', d: QUICK ? { days: 22, perDay: 4 } : { days: 34, perDay: 4 } },
    { key: 'spent', title: 'window already spent', d: QUICK ? { days: 6, perDay: 4 } : { days: 17, perDay: 4 } },
  ];
  console.log(`\n## 2b. Rate limit in fixed windows: ${perMinute} requests a minute per token, all back at the minute's end, ${latencyMs} ms a request, default max_concurrency\n`);
  console.log('RateLimit-Reset is the seconds to the window\'s end, Retry-After the same on a 429. Windows follow each other from the token\'s first request.');
  console.log('- fresh window: the read\'s first request opens the first window.');
  console.log('- window already spent: the bench first uses up the window (requests to /me until the first 429); the read starts in it and must wait for its end.');
  console.log('Allowed = the quota of each window the read spent time in, except the last (which it need not fill: its answers there count as allowed) and the spent one.\n');
  const rows = [];
  const out = {};
  for (const v of variants) {
    const data = dataset(v.d);
    const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs, rateLimit: { perMinute, window: 'fixed' }, ...PAGE });
    let r;
    let drained = 0;
    let windowStart;
    try {
      if (v.key === 'spent') {
        windowStart = Date.now();
        drained = await drainBucket(mock, perMinute);
      }
      r = await read(mock, data, { maxConcurrency: undefined, timeoutMs: QUICK ? 200_000 : 300_000 });
      checkRun(r, `window, ${v.title}`);
      windowStart ??= mock.counters.log[0]?.wallMs - latencyMs;
    } finally {
      await mock.close();
    }
    const log = mock.counters.log;
    const windowOf = (l) => Math.floor((l.wallMs - latencyMs - windowStart) / 60_000);
    const perWindow = new Map();
    for (const l of log) {
      const w = perWindow.get(windowOf(l)) ?? { ok: 0, limited: 0 };
      if (l.status === 429) w.limited++;
      else w.ok++;
      perWindow.set(windowOf(l), w);
    }
    const first = v.key === 'spent' ? 1 : 0;
    const last = Math.max(...perWindow.keys());
    const ok = r.requests - r.limited;
    const okFrom = [...perWindow].filter(([w]) => w >= first).reduce((a, [, x]) => a + x.ok, 0);
    const allowed = perMinute * Math.max(0, last - first) + (perWindow.get(last)?.ok ?? 0);
    const share429 = r.limited / r.requests;
    rows.push([v.title, data.label, f0(r.requests), f0(r.limited), pct(share429), f1(r.wall), [...perWindow].sort(([a], [b]) => a - b).map(([, x]) => x.ok).join(' / '), pct(Math.min(1, okFrom / allowed))]);
    out[v.key] = { dataset: { ...v.d, ...data.expected }, drained, run: r, allowed, ofAllowed: okFrom / allowed, share429, perWindow: Object.fromEntries(perWindow), ok };
    target(`window (${v.title}): share of each window's quota used`, pct(Math.min(1, okFrom / allowed)), '≥ 90%', okFrom / allowed >= 0.9);
    target(`window (${v.title}): requests answered 429`, pct(share429), '< 5%', share429 < 0.05);
  }
  table(['start', 'dataset', 'requests', '429', '429 share', 'wall s', 'answered 200 per window', 'of allowed'], rows);
  console.log('');
  for (const v of variants) {
    const { run: r, drained } = out[v.key];
    console.log(`  ${v.title}${drained ? ` (${drained} requests spent first)` : ''}: the connector logged ${r.notes.rateLimitedWarn} "rate limited" retries and ${r.notes.rateLimitedStatus} RATE_LIMITED stream statuses`);
    describeRun(r);
  }
  results.window = { perMinute, latencyMs, ...out };
}

async function throughputScenario() {
  const d = QUICK ? { days: 60, perDay: 10 } : { days: 150, perDay: 10 };
  console.log('\n## 3. Throughput: no latency, default max_concurrency\n');
  const data = dataset(d);
  console.log(`Dataset: ${data.label} = ${f0(data.expected.records)} records in ${f0(data.expected.requests)} requests.`);
  const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs: 0, ...PAGE });
  let r;
  try {
    r = await read(mock, data, { maxConcurrency: undefined });
    checkRun(r, 'throughput');
  } finally {
    await mock.close();
  }
  const rps = r.records / r.wall;
  const inSync = r.syncSeconds ? r.records / r.syncSeconds : undefined;
  const perCpu = r.connectorCpuS ? r.records / r.connectorCpuS : undefined;
  table(
    ['read', 'records', 'requests', 'wall s', 'records/s', 'requests/s', 'records/s in sync', 'records per connector CPU s', 'peak RSS MB', 'connector CPU s', 'bench+mock CPU s'],
    [[`max_concurrency ${r.maxConcurrency}`, f0(r.records), f0(r.requests), f1(r.wall), f0(rps), f0(r.requests / r.wall), f0(inSync), f0(perCpu), f1(r.peakRssMb), f1(r.connectorCpuS), f1(r.mockCpuS)]],
  );
  console.log('');
  console.log(`records/s = records ÷ wall time (spawn to exit); "in sync" divides by the connector's own sync time (${f1(r.syncSeconds)} s, without Node start-up).` +
    ` The mock shares this machine (${cpus().length} cores) and this process: the CPU times tell a mock-bound run from a connector-bound one.` +
    ` "records per connector CPU s" is the most this connector could do with a core to itself and a server that costs nothing:` +
    ` ${r.connectorCpuS ? f0((r.connectorCpuS * 1e6) / r.records) : '–'} µs of CPU a record, ${r.connectorCpuS ? f0((r.connectorCpuS * 1e6) / r.requests) : '–'} µs a request.`);
  describeRun(r);
  target('throughput: records a second at zero latency', f0(rps), '≥ 20,000', rps >= 20_000);
  results.throughput = { dataset: { ...d, ...data.expected }, run: r, recordsPerSecond: rps, recordsPerSecondInSync: inSync };
}

async function memoryScenario() {
  const perDay = 4;
  const [small, large] = QUICK ? [10, 100] : [30, 300];
  console.log(`\n## 4. Memory: the same read over ${small} and ${large} days of history (no latency, default max_concurrency)\n`);
  const rows = [];
  const runs = [];
  for (const days of [small, large]) {
    const data = dataset({ days, perDay });
    const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs: 0, ...PAGE });
    try {
      const r = await read(mock, data, { maxConcurrency: undefined });
      checkRun(r, `memory, ${days} days`);
      r.days = days;
      r.label = data.label;
      runs.push(r);
      rows.push([`${days} days`, f0(r.records), f0(r.requests), f1(r.wall), f1(r.peakRssMb)]);
    } finally {
      await mock.close();
    }
  }
  const [a, b] = runs;
  const growth = b.peakRssMb / a.peakRssMb - 1;
  table(['history', 'records', 'requests', 'wall s', 'peak RSS MB'], rows);
  console.log('');
  console.log(`Peak RSS is the connector process's high-water mark (getrusage ru_maxrss at exit, read by bench/probe.mjs): heap, code and buffers. Growth from ${small} to ${large} days: ${pct(growth)}.`);
  const peak = Math.max(a.peakRssMb, b.peakRssMb);
  for (const r of runs) {
    process.stdout.write(`  ${r.days} days:`);
    describeRun(r);
  }
  target('memory: peak RSS', `${f1(peak)} MB`, '< 200 MB', peak < 200);
  target(`memory: RSS growth, ${small} → ${large} days of history`, pct(growth), '< 50%', growth < 0.5);
  results.memory = { perDay, runs, growth };
}

// ------------------------------------------------------------------------------------------
// History scale: what a sync costs once the state says what was read before

/**
 * What any connector that keeps jobs complete must ask for after a day: the list page(s) of the
 * new pipelines, their workflow lists, and a job list (all its pages) for every workflow created
 * since `sinceMs` (on new pipelines, or rerun on older ones).
 */
function dayCost(world, slugs, sinceMs) {
  const pages = (n, size) => Math.max(1, Math.ceil(n / size));
  let requests = 0;
  for (const slug of slugs) {
    const recent = world.listPipelines(slug).filter((p) => Date.parse(p.created_at) > sinceMs - 8 * DAY);
    const fresh = recent.filter((p) => Date.parse(p.created_at) > sinceMs).length;
    requests += Math.ceil(fresh / PAGE.pageSize) + fresh;
    for (const p of recent) {
      for (const wf of world.workflowsOf(p.id) ?? []) {
        if (Date.parse(wf.created_at) > sinceMs) requests += pages((world.jobsOf(wf.id) ?? []).length, PAGE.jobPageSize);
      }
    }
  }
  return requests;
}

async function historyScenario() {
  const d = QUICK ? { days: 30, perDay: 10 } : { days: 90, perDay: 20 };
  const lookbackDays = 7;
  console.log(`\n## 5. History scale: full, no-change and next-day incremental syncs of all three streams (lookback ${lookbackDays} days)\n`);
  const data = dataset(d);
  console.log(`Dataset: ${data.label}; the catalog is integration_tests/incremental_catalog.json's pipelines, workflows and jobs (jobs incremental by _workflow_created_at).`);
  const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs: 0, ...PAGE });
  let full, quiet, nextDay, dayPipelines, unavoidable;
  const incremental = (state) => read(mock, data, { catalog: INCREMENTAL_CATALOG, state, expectRecords: !state });
  try {
    full = await incremental(undefined);
    checkRun(full, 'history, full');
    quiet = await incremental(full.state);
    const before = data.slugs.reduce((n, s) => n + data.world.listPipelines(s).length, 0);
    data.world.advance(DAY);
    dayPipelines = data.slugs.reduce((n, s) => n + data.world.listPipelines(s).length, 0) - before;
    unavoidable = dayCost(data.world, data.slugs, NOW.getTime());
    nextDay = await incremental(quiet.state);
  } finally {
    await mock.close();
  }
  const minutes = (requests) => requests / 1000;
  const hm = (min) => (min >= 60 ? `${Math.floor(min / 60)} h ${Math.round(min % 60)} min` : `${min.toFixed(1)} min`);
  // A year at the same density: a full sync costs per pipeline what it cost here; the other two
  // depend on the lookback and a day's activity, not on the history's length.
  const perPipeline = full.requests / data.expected.pipelines;
  const yearPipelines = data.slugs.length * 365 * d.perDay;
  const row = (name, r) => [name, f0(r.requests), `${f0(r.routes.pipelines)} / ${f0(r.routes.workflows)} / ${f0(r.routes.jobs)}`, f0(r.records),
    `${f0(r.byStream.pipelines)} / ${f0(r.byStream.workflows)} / ${f0(r.byStream.jobs)}`, hm(minutes(r.requests)), f1(r.wall)];
  const rows = [
    row('full (no state)', full),
    row('no change since', quiet),
    row(`a day later (${dayPipelines} new pipelines)`, nextDay),
    [`full, scaled to a year (${f0(yearPipelines)} pipelines)`, f0(perPipeline * yearPipelines), '–', '–', '–', hm(minutes(perPipeline * yearPipelines)), '–'],
  ];
  table(['sync', 'requests', 'pipeline pages / workflow lists / job lists', 'records', 'pipelines / workflows / jobs', 'at 1,000 requests/min', 'wall s here'], rows);
  console.log('');
  console.log(`1,000 requests a minute is about CircleCI's rate limit for one token. A full sync costs ${f1(perPipeline)} requests a pipeline (its list page share, its workflow list, its workflows' job lists);` +
    ` an incremental one reads the pipeline list back ${lookbackDays} days, the workflow lists of those pipelines, and job lists only for the workflows it emits (new, or still unfinished).`);
  const quietShare = quiet.requests / full.requests;
  const dayBudget = 2 * dayPipelines + quiet.requests;
  target(`history: no-change incremental sync, ${d.days}-day history`, `${pct(quietShare)} of a full sync`, '≤ 10%', quietShare <= 0.1);
  console.log(`A day later the sync made ${f0(nextDay.requests - quiet.requests)} requests more than the no-change one. The day itself needs at least ${f0(unavoidable)}:` +
    ` the list pages and workflow lists of its ${dayPipelines} new pipelines, and every page of a job list for each workflow created that day` +
    ` (about ${f1(nextDay.byStream.workflows / Math.max(1, dayPipelines))} workflows a new pipeline here, setup workflows and reruns included, ${PAGE.jobPageSize} jobs a page).`);
  target('history: sync after a day of activity', `${f0(nextDay.requests)} requests`, `≤ 2 × ${dayPipelines} + ${f0(quiet.requests)} = ${f0(dayBudget)}`, nextDay.requests <= dayBudget,
    `the day alone needs ${f0(unavoidable)}`);
  const brief = (r) => ({ requests: r.requests, routes: r.routes, records: r.records, byStream: r.byStream, wall: r.wall });
  results.history = { dataset: { ...d, ...data.expected }, full: brief(full), quiet: brief(quiet), nextDay: brief(nextDay), dayPipelines, unavoidable, perPipeline };
  await childrenCost(d, lookbackDays, brief);
}

/** Numbered build jobs of the workflows created after `sinceMs` (one job once), and how many of them have stopped. */
function newJobs(world, slugs, sinceMs) {
  const numbered = new Set();
  let stopped = 0;
  for (const slug of slugs) {
    for (const p of world.listPipelines(slug).filter((x) => Date.parse(x.created_at) > sinceMs - 8 * DAY)) {
      for (const wf of world.workflowsOf(p.id) ?? []) {
        if (Date.parse(wf.created_at) <= sinceMs) continue;
        for (const j of world.jobsOf(wf.id) ?? []) {
          if (j.type !== 'build' || j.job_number === undefined || numbered.has(`${slug}|${j.job_number}`)) continue;
          numbered.add(`${slug}|${j.job_number}`);
          if (j.stopped_at) stopped++;
        }
      }
    }
  }
  return { numbered: numbered.size, stopped };
}

/** Part 2 of the history scenario: the same syncs with the opt-in job_details and tests selected too. */
async function childrenCost(d, lookbackDays, brief) {
  console.log(`\n### What job_details and tests add (opt-in): the same three syncs with them selected, on a fresh copy of the dataset\n`);
  const data = dataset(d);
  const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs: 0, ...PAGE });
  const run = (state) => read(mock, data, { catalog: CHILDREN_CATALOG, state, expectRecords: false, timeoutMs: 900_000 });
  let full, quiet, nextDay, fresh;
  try {
    full = await run(undefined);
    checkRun(full, 'history with job_details and tests, full');
    quiet = await run(full.state);
    checkRun(quiet, 'history with job_details and tests, no change');
    data.world.advance(DAY);
    fresh = newJobs(data.world, data.slugs, NOW.getTime());
    nextDay = await run(quiet.state);
    checkRun(nextDay, 'history with job_details and tests, a day later');
  } finally {
    await mock.close();
  }
  const row = (name, r) => [name, f0(r.requests), f0(r.routes.jobDetails), f0(r.routes.tests), f0(r.byStream.job_details ?? 0), f0(r.byStream.tests ?? 0), f1(r.wall)];
  table(['sync', 'requests, all', 'job_details requests', 'tests requests (pages)', 'job_details records', 'tests records', 'wall s here'], [
    row('full (no state)', full),
    row('no change since', quiet),
    row(`a day later (${f0(fresh.numbered)} new numbered build jobs, ${f0(fresh.stopped)} of them stopped)`, nextDay),
  ]);
  console.log('');
  console.log(`job_details costs one request per numbered build job and workflow it appears in; tests one request per 20 results (at least one) per finished numbered build job.` +
    ` After the first sync, each costs what changed: jobs of new workflows, and jobs that were still running.` +
    ` The no-change sync asked for ${f0(quiet.routes.jobDetails)} details and ${f0(quiet.routes.tests)} test pages; the day later ${f0(nextDay.routes.jobDetails)} and ${f0(nextDay.routes.tests)} for ${f0(fresh.numbered)} new jobs.`);
  results.historyChildren = { full: brief(full), quiet: brief(quiet), nextDay: brief(nextDay), newJobs: fresh };
}

/** Requests a second of a bare client process against `base`, and the CPU both sides used. */
async function bareClient(mode, concurrency, base, paths) {
  const file = join(tmp, `paths-${++runNo}.json`);
  writeFileSync(file, JSON.stringify({ base, token: TOKEN, paths }));
  const cpu0 = process.cpuUsage();
  const child = spawn(process.execPath, [join(ROOT, 'bench/http-client.mjs'), mode, String(concurrency), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
  await new Promise((resolve) => child.on('close', resolve));
  const cpu = process.cpuUsage(cpu0);
  const r = JSON.parse(out.trim().split('\n').at(-1));
  return { ...r, perSecond: r.requests / r.seconds, serverCpuS: (cpu.user + cpu.system) / 1e6 };
}

async function ceilingScenario() {
  console.log('\n## Ceiling: what one Node client process can do against a server in this process, nothing else running\n');
  const data = dataset({ days: 60, perDay: 10 });
  const paths = [];
  for (const slug of data.slugs) {
    for (const p of data.world.listPipelines(slug)) {
      paths.push(`/pipeline/${p.id}/workflow`);
      for (const wf of data.world.workflowsOf(p.id) ?? []) paths.push(`/workflow/${wf.id}/job`);
    }
  }
  const recordsPerRequest = data.expected.records / data.expected.requests;
  const mock = await startMockServer({ world: data.world, token: TOKEN, latencyMs: 0, ...PAGE });
  // The fixed server answers every request with one typical job page (a full page of 5 jobs).
  const typical = paths.filter((p) => p.endsWith('/job')).map((p) => data.world.jobsOf(p.split('/')[2])).find((jobs) => jobs && jobs.length >= PAGE.jobPageSize);
  const sample = JSON.stringify({ items: typical.slice(0, PAGE.jobPageSize), next_page_token: null });
  const fixed = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(sample) });
    res.end(sample);
  });
  await new Promise((resolve) => fixed.listen(0, '127.0.0.1', resolve));
  const fixedBase = `http://127.0.0.1:${fixed.address().port}/api/v2`;
  const rows = [];
  const out = [];
  try {
    for (const [server, base] of [['mock', mock.baseUrl], ['fixed page', fixedBase]]) {
      for (const mode of ['http', 'node-fetch']) {
        const r = await bareClient(mode, 8, base, paths);
        out.push({ server, ...r });
        rows.push([server, mode === 'http' ? 'node:http' : 'node-fetch + AbortSignal.timeout', f0(r.requests), f0(r.perSecond), f0((r.cpuS * 1e6) / r.requests), f0((r.serverCpuS * 1e6) / r.requests), f0(r.perSecond * recordsPerRequest)]);
      }
    }
  } finally {
    await mock.close();
    await new Promise((resolve) => fixed.close(resolve));
  }
  table(['server', 'client (8 in flight)', 'requests', 'requests/s', 'client CPU µs/request', 'server CPU µs/request', `records/s at ${recordsPerRequest.toFixed(2)} records a request`], rows);
  console.log('');
  console.log(`The requests are the connector's own mix (a workflow list per pipeline, a job list per workflow) of ${data.label}; the records column is what a connector with no cost of its own could emit at this dataset's ${recordsPerRequest.toFixed(2)} records a request.`);
  results.ceiling = { recordsPerRequest, runs: out };
}

// ------------------------------------------------------------------------------------------

/**
 * What one project costs a sync, to size connections (docs/performance.md, "What one project costs"; docs/operations.md uses it):
 * a first sync, then, one day later, incremental syncs from its state: every stream incremental,
 * jobs as a full refresh (it re-reads every job since start_date), and no jobs. 50 ms latency,
 * default max_concurrency; the mock counts the requests.
 */
async function projectsScenario() {
  const latencyMs = 50;
  const shape = QUICK ? { projects: 4, days: 20, perDay: 10 } : { projects: 8, days: 60, perDay: 10 };
  const slugs = Array.from({ length: shape.projects }, (_, i) => `gh/acme/service-${i + 1}`);
  console.log(`\n## Projects: what one project costs a sync (${latencyMs} ms a request, default max_concurrency)\n`);
  const world = new World({ seed: 7, now: NOW, historyDays: shape.days, pipelinesPerDay: shape.perDay, projects: slugs });
  const data = { world, slugs, startDate: new Date(NOW.getTime() - (shape.days + 2) * DAY).toISOString().slice(0, 10), expected: { records: 0, requests: 0 } };
  world.groundTruth(new Date(data.startDate)); // generate the world before timing anything
  const catalogs = {};
  const modes = [
    ['all', { pipelines: 'incremental', workflows: 'incremental', jobs: 'incremental' }],
    ['jobsFull', { pipelines: 'incremental', workflows: 'incremental', jobs: 'full_refresh' }],
    ['noJobs', { pipelines: 'incremental', workflows: 'incremental' }],
  ];
  for (const [name, streams] of modes) {
    const cursor = { pipelines: 'updated_at', workflows: 'created_at', jobs: '_workflow_created_at' };
    catalogs[name] = join(tmp, `catalog-${name}.json`);
    writeFileSync(catalogs[name], JSON.stringify({ streams: Object.entries(streams).map(([s, mode]) => ({
      stream: { name: s, json_schema: {}, supported_sync_modes: ['full_refresh', 'incremental'] },
      sync_mode: mode, destination_sync_mode: mode === 'incremental' ? 'append_dedup' : 'overwrite', ...(mode === 'incremental' ? { cursor_field: [cursor[s]] } : {}),
    })) }));
  }
  const mock = await startMockServer({ world, token: TOKEN, latencyMs, ...PAGE });
  const runs = {};
  try {
    runs.first = await read(mock, data, { catalog: catalogs.all, expectRecords: false });
    checkRun(runs.first, 'projects, first sync');
    world.advance(DAY);
    world.groundTruth(new Date(data.startDate));
    runs.daily = await read(mock, data, { catalog: catalogs.all, state: runs.first.state, expectRecords: false });
    checkRun(runs.daily, 'projects, daily sync');
    runs.dailyJobsFull = await read(mock, data, { catalog: catalogs.jobsFull, state: runs.first.state, expectRecords: false });
    checkRun(runs.dailyJobsFull, 'projects, daily sync with jobs full refresh');
    const noJobsState = runs.first.state.filter((st) => st.stream.stream_descriptor.name !== 'jobs');
    runs.dailyNoJobs = await read(mock, data, { catalog: catalogs.noJobs, state: noJobsState, expectRecords: false });
    checkRun(runs.dailyNoJobs, 'projects, daily sync without jobs');
  } finally {
    await mock.close();
  }
  const P = shape.projects;
  const pipelines = P * shape.days * shape.perDay;
  const rows = [
    ['first sync (all history, every stream)', runs.first],
    ['a day later: every stream incremental', runs.daily],
    ['a day later: pipelines + workflows incremental, jobs full refresh', runs.dailyJobsFull],
    ['a day later: pipelines + workflows incremental, no jobs', runs.dailyNoJobs],
  ].map(([what, r]) => [what, f0(r.requests), f0(r.requests / P), f1(r.requests / pipelines), f0(r.records), f1(r.wall), f0(r.requests / r.wall)]);
  console.log(`Dataset: ${P} projects × ${shape.days} days × ${shape.perDay} pipelines/day (${f0(pipelines)} pipelines); lookback_days 7.`);
  table(['sync', 'requests', 'requests a project', 'requests a pipeline of history', 'records', 'wall s', 'requests/s'], rows);
  console.log('');
  console.log('A first sync, and every sync with jobs as a full refresh, costs about "requests a pipeline of history" × the pipelines since start_date;');
  console.log('an incremental sync costs about (days since the last sync + lookback_days) × pipelines a day, plus a page, per project, and a job list for each workflow it emits.');
  results.projects = { latencyMs, shape, runs: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, { requests: r.requests, records: r.records, wall: r.wall }])) };
}

/**
 * An organization of hundreds of small projects, discovered from `organizations` alone (issue 19):
 * what discovery costs, a first and a no-change sync, the STATE one read writes against the final
 * state, peak memory, and how long `check` takes.
 */
async function orgScenario() {
  const latencyMs = 20;
  const shape = QUICK ? { projects: 100, days: 30, perDay: 2 } : { projects: 500, days: 30, perDay: 2 };
  const slugs = Array.from({ length: shape.projects }, (_, i) => `gh/acme/service-${i + 1}`);
  console.log(`\n## Organization: ${shape.projects} projects discovered from organizations (${latencyMs} ms a request, default max_concurrency)\n`);
  const world = new World({ seed: 9, now: NOW, historyDays: shape.days, pipelinesPerDay: shape.perDay, projects: slugs });
  const data = { world, slugs, organizations: ['gh/acme'], startDate: new Date(NOW.getTime() - (shape.days + 2) * DAY).toISOString().slice(0, 10), expected: { records: 0, requests: 0 } };
  world.groundTruth(new Date(data.startDate)); // generate the world before timing anything
  const mock = await startMockServer({ world, token: TOKEN, latencyMs, ...PAGE });
  const discovery = (c) => ['collaborations', 'v3Orgs', 'v3Projects', 'v1Projects'].reduce((n, r) => n + (c.byRoute[r] ?? 0), 0);
  const runs = {};
  let checkSeconds;
  try {
    runs.first = await read(mock, data, { catalog: INCREMENTAL_CATALOG, expectRecords: false, timeoutMs: 3_600_000 });
    runs.first.discovery = discovery(mock.counters);
    checkRun(runs.first, 'organization, first sync');
    runs.noChange = await read(mock, data, { catalog: INCREMENTAL_CATALOG, state: runs.first.state, expectRecords: false, timeoutMs: 600_000 });
    runs.noChange.discovery = discovery(mock.counters);
    checkRun(runs.noChange, 'organization, no-change sync');
    const configPath = join(tmp, 'config-org-check.json');
    writeFileSync(configPath, JSON.stringify({ token: TOKEN, organizations: data.organizations, base_url: mock.baseUrl }));
    // Spawned asynchronously: the mock answers from this process.
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, 'check', '--config', configPath], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    await new Promise((resolve) => child.on('close', resolve));
    checkSeconds = (performance.now() - t0) / 1000;
    if (!/"status":"SUCCEEDED"/.test(out)) failures.push(`organization check: ${out.slice(-300)}`);
  } finally {
    await mock.close();
  }
  const finalBytes = (state) => state.reduce((n, s) => n + JSON.stringify({ type: 'STATE', state: s }).length + 1, 0);
  const rows = [
    ['first sync', runs.first],
    ['no-change sync', runs.noChange],
  ].map(([what, r]) => [what, f0(r.discovery), f0(r.requests), f0(r.records), f1(r.wall), f0(r.notes.states), f1(r.notes.stateBytes / 1e6), f1(finalBytes(r.state) / 1e3), f1(r.notes.stateBytes / finalBytes(r.state)), f0(r.peakRssMb)]);
  console.log(`Dataset: ${shape.projects} projects × ${shape.days} days × ${shape.perDay} pipelines/day, one organization; pipelines, workflows and jobs incremental.`);
  table(['sync', 'discovery requests', 'requests', 'records', 'wall s', 'STATE messages', 'STATE MB', 'final state kB', 'STATE ÷ final state', 'peak RSS MB'], rows);
  console.log(`\ncheck with the organization: ${f1(checkSeconds)} s.`);
  for (const [name, r] of [['first', runs.first], ['no-change', runs.noChange]]) {
    const ratio = r.notes.stateBytes / finalBytes(r.state);
    target(`org: STATE of a ${name} sync ÷ its final state`, `${f1(ratio)}×`, '≤ 20×', ratio <= 20);
    target(`org: peak RSS, ${name} sync`, `${f0(r.peakRssMb)} MB`, '≤ 250 MB', r.peakRssMb <= 250);
  }
  target('org: check wall time', `${f1(checkSeconds)} s`, '≤ 10 s', checkSeconds <= 10);
  results.org = { latencyMs, shape, checkSeconds, runs: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, { discovery: r.discovery, requests: r.requests, records: r.records, wall: r.wall, states: r.notes.states, stateBytes: r.notes.stateBytes, finalStateBytes: finalBytes(r.state), peakRssMb: r.peakRssMb }])) };
}

/**
 * The usage stream parsing one big export: the mock serves a ~100 MB (uncompressed) gzipped CSV as
 * the single part of every completed export; the connector downloads it without a token, gunzips
 * and parses it as a stream, types every row and writes it to stdout. The bench counts the RECORD
 * lines; the probe gives the connector's peak RSS (the point: a 100 MB part never sits in memory).
 */
async function usageScenario() {
  const bytes = QUICK ? 20e6 : 100e6;
  console.log(`\n## Usage: one export of about ${f0(bytes / 1e6)} MB of CSV, downloaded, gunzipped, parsed and typed as a stream\n`);
  const file = join(tmp, 'usage-export.csv.gz');
  const t0 = performance.now();
  const made = await writeUsageExport(file, bytes);
  console.log(`Export written: ${f0(made.rows)} rows, ${f1(made.bytes / 1e6)} MB of CSV (${f1(statSync(file).size / 1e6)} MB gzipped) in ${f1((performance.now() - t0) / 1000)} s.`);
  const world = new World({ seed: 5, now: NOW, historyDays: 3, pipelinesPerDay: 1, projects: ['gh/acme/api'] });
  const mock = await startMockServer({ world, token: TOKEN, usage: { exportFile: file, readyAfterPolls: 1 } });
  const catalogPath = join(tmp, 'catalog-usage.json');
  writeFileSync(catalogPath, JSON.stringify({ streams: [{ stream: { name: 'usage', json_schema: {}, supported_sync_modes: ['full_refresh', 'incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', cursor_field: ['_window_end'], primary_key: [['job_id']] }] }));
  const data = { slugs: ['gh/acme/api'], startDate: new Date(NOW.getTime() - 2 * DAY).toISOString().slice(0, 10), expected: { requests: 0, records: 0 } };
  let r;
  try {
    r = await read(mock, data, { catalog: catalogPath, expectRecords: false, timeoutMs: 600_000 });
  } finally {
    await mock.close();
  }
  const rows = r.byStream.usage ?? 0;
  if (r.code !== 0 || rows !== made.rows) failures.push(`usage: exit ${r.code}, ${rows} of ${made.rows} rows${r.notes.errors.length ? `: ${r.notes.errors.join(' | ')}` : ''}`);
  const seconds = r.syncSeconds ?? r.wall;
  table(['rows', 'CSV MB', 'sync s (connector\'s own)', 'wall s (spawn to exit)', 'rows/s (sync)', 'peak RSS MB'], [[f0(rows), f1(made.bytes / 1e6), f1(seconds), f1(r.wall), f0(rows / seconds), f1(r.peakRssMb)]]);
  target('usage: peak RSS reading a 100 MB export', `${f0(r.peakRssMb)} MB`, '< 200 MB', r.peakRssMb < 200);
  results.usage = { rows, csvBytes: made.bytes, seconds, wall: r.wall, rowsPerSecond: rows / seconds, peakRssMb: r.peakRssMb };
}

const started = performance.now();
console.log(`# source-circleci benchmark${QUICK ? ' (--quick: smaller datasets; targets are for the full run)' : ''}`);
console.log(`Load average before the start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`);
console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), mock in this process, connector spawned as \`node dist/cli/airbyte.js read\` (all three streams, full refresh).`);
try {
  if (chosen.includes('latency')) await latencyScenario();
  if (chosen.includes('ratelimit')) await rateLimitScenario();
  if (chosen.includes('window')) await windowScenario();
  if (chosen.includes('throughput')) await throughputScenario();
  if (chosen.includes('memory')) await memoryScenario();
  if (chosen.includes('history')) await historyScenario();
  if (chosen.includes('ceiling')) await ceilingScenario();
  if (chosen.includes('projects')) await projectsScenario();
  if (chosen.includes('org')) await orgScenario();
  if (chosen.includes('usage')) await usageScenario();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

console.log('\n## Targets\n');
table(['target', 'measured', 'goal', 'result'], targets.map((t) => [t.name, t.measured, t.goal, t.pass ? 'PASS' : 'FAIL']));
const missed = targets.filter((t) => !t.pass).length;
console.log(`\n${targets.length - missed} of ${targets.length} targets met${missed ? `, ${missed} missed` : ''}; ${((performance.now() - started) / 1000).toFixed(0)} s in all.`);
if (disturbed.length) console.log(`Other processes kept more than a quarter of a core busy during ${disturbed.length} run(s) (${disturbed.join(', ')}): rerun on a quiet machine before trusting those numbers.`);
if (failures.length) console.log(`Runs that did not complete cleanly (their numbers are not valid): ${failures.join('; ')}`);
if (JSON_OUT) {
  const strip = (r) => (r && typeof r === 'object' ? { ...r, stderr: r.stderr?.slice(-500) } : r);
  writeFileSync(JSON_OUT, JSON.stringify({ when: new Date().toISOString(), node: process.version, cores: cpus().length, quick: QUICK, concurrency: CONCURRENCY, targets, failures, results }, (k, v) => (k === 'run' || k === 'serial' ? strip(v) : v), 2));
  console.log(`Raw numbers in ${JSON_OUT}.`);
}
if (failures.length) process.exitCode = 2;
else if (STRICT && missed) process.exitCode = 1;

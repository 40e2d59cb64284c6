import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockServer } from './server.js';
import { World } from './world.js';

/**
 * `npm run demo`: starts the bundled mock CircleCI API, runs a full read and then an incremental
 * read through the real CLI, and narrates what the connector prints. No token or network needed.
 */

const CLI = fileURLToPath(new URL('../../dist/cli/airbyte.js', import.meta.url));
const TOKEN = 'demo-token-not-a-secret';
const dir = mkdtempSync(join(tmpdir(), 'source-circleci-demo-'));
const file = (name: string, content: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(content, null, 2));
  return path;
};

const world = new World({ seed: 42, historyDays: 45, pipelinesPerDay: 6 });
const mock = await startMockServer({ world, token: TOKEN, latencyMs: 20 });
const stream = (name: string, mode: string) => ({
  stream: { name, json_schema: {}, supported_sync_modes: mode === 'incremental' ? ['full_refresh', 'incremental'] : ['full_refresh'] },
  sync_mode: mode,
  destination_sync_mode: mode === 'incremental' ? 'append_dedup' : 'overwrite',
});
const config = file('config.json', {
  token: TOKEN,
  project_slugs: world.projectSlugs(),
  start_date: new Date(world.now().getTime() - 30 * 86_400_000).toISOString().slice(0, 10),
  base_url: mock.baseUrl,
});
// Every stream, the opt-in job_details and tests too (they cost a request or more per job).
const catalog = file('catalog.json', {
  streams: [
    stream('projects', 'full_refresh'),
    ...['pipelines', 'workflows', 'jobs', 'job_details', 'tests'].map((name) => stream(name, 'incremental')),
  ],
});

async function read(title: string, statePath?: string): Promise<{ state: unknown[]; requests: number }> {
  const args = ['read', '--config', config, '--catalog', catalog, ...(statePath ? ['--state', statePath] : [])];
  console.log(`\n=== ${title}\n$ source-circleci ${args.join(' ')}`);
  const outPath = join(dir, `${title.split(' ')[0].toLowerCase()}-output.jsonl`);
  const out = createWriteStream(outPath);
  const counts: Record<string, number> = {};
  const states = new Map<string, unknown>();
  mock.resetCounters();
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out.write(chunk);
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      const m = JSON.parse(line);
      if (m.type === 'RECORD') counts[m.record.stream] = (counts[m.record.stream] ?? 0) + 1;
      else if (m.type === 'LOG') console.log(`  LOG ${m.log.level}: ${m.log.message}`);
      else if (m.type === 'STATE') {
        states.set(m.state.stream.stream_descriptor.name, m.state);
        const projects = Object.values(m.state.stream.stream_state as Record<string, { resume?: unknown }>);
        const unfinished = projects.filter((p) => p.resume).length;
        console.log(`  STATE ${m.state.stream.stream_descriptor.name}: ${m.state.sourceStats.recordCount} records since the previous one; ` +
          `${projects.length} projects${unfinished ? `, ${unfinished} still in progress (resume markers)` : ''}`);
      } else if (m.type === 'TRACE' && m.trace.type === 'ERROR') console.log(`  ERROR: ${m.trace.error.message}`);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  out.end();
  console.log(`  → exit ${code}, ${((Date.now() - started) / 1000).toFixed(1)} s, ${mock.counters.total} API requests, records: ${JSON.stringify(counts)}`);
  console.log(`  every line is in ${outPath}; the final state:`);
  for (const st of states.values()) console.log(`    ${JSON.stringify(st)}`);
  return { state: [...states.values()], requests: mock.counters.total };
}

try {
  console.log(`Mock CircleCI API at ${mock.baseUrl} with projects ${world.projectSlugs().join(', ')}.`);
  const full = await read('Full first sync');
  const statePath = file('state.json', full.state);
  world.advance(12 * 3_600_000);
  console.log('\n(The mock clock moves 12 hours: new pipelines, finished workflows, reruns.)');
  const next = await read('Incremental sync with the saved state', statePath);
  console.log(
    `\nThe incremental sync made ${next.requests} requests, ${Math.round((100 * next.requests) / full.requests)}% of the full sync's ${full.requests}: ` +
      'it paged the pipelines back only as far as the lookback (7 days) needs, asked for the jobs of the workflows it emitted ' +
      '(new ones, and those still running or on hold), not of every workflow since start_date, and for the details and test ' +
      'results of the jobs that had not stopped when the full sync looked.',
  );
  console.log(`\nConfig, catalog and state are in ${dir}.`);
} finally {
  await mock.close();
}

#!/usr/bin/env node
/**
 * Writes the two generated acceptance fixtures (needs `npm run build`):
 *
 *   integration_tests/expected_records.jsonl  the ground truth of the acceptance world
 *       (integration_tests/acceptance_mock.json: seed, fixed clock, history) for the start_date of
 *       integration_tests/sample_config.json: World.groundTruth(), the records a correct full
 *       sync must hold; insightsTruth() for workflow_runs and flaky_tests; usageRows() for usage
 *       (one export window per organization). Not the connector's output.
 *   integration_tests/spec.json  the ConnectorSpecification `spec` must print (basic fields
 *       plus spec.json as connectionSpecification), for the spec test's spec_path.
 *
 *   node scripts/acceptance-fixtures.mjs           # write them
 *   node scripts/acceptance-fixtures.mjs --check   # exit 1 when a file is stale
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const check = process.argv.includes('--check');
if (!existsSync(`${root}dist-dev/mock/world.js`)) {
  console.error('acceptance-fixtures: dist-dev/ is missing; run `npm run build` first');
  process.exit(1);
}
const { World } = await import(`${root}dist-dev/mock/world.js`);
const { insightsTruth } = await import(`${root}dist-dev/mock/insightsRoutes.js`);
const { usageRows } = await import(`${root}dist-dev/mock/usageCsv.js`);
const read = (p) => JSON.parse(readFileSync(`${root}${p}`, 'utf8'));

const env = read('integration_tests/acceptance_mock.json');
const config = read(env.config);
const world = new World({ seed: env.seed, now: new Date(env.now), historyDays: env.history_days, pipelinesPerDay: env.pipelines_per_day });
const missing = config.project_slugs.filter((s) => world.canonicalSlug(s) === undefined);
if (missing.length) {
  console.error(`acceptance-fixtures: ${env.config} names projects the mock world lacks: ${missing.join(', ')}`);
  process.exit(1);
}
const truth = world.groundTruth(new Date(config.start_date));
const configured = new Set(config.project_slugs.map((s) => world.canonicalSlug(s)));
truth.projects = truth.projects.filter((p) => configured.has(p.slug));
// The key column _file is file, or "" where CircleCI sends null (see schemas/tests.json).
truth.tests = truth.tests.map((t) => ({ ...t, _file: t.file ?? '' }));
// Insights: runs CircleCI still keeps (90 days) from start_date on, and today's flaky tests.
const NINETY_DAYS = 90 * 86_400_000;
const insights = insightsTruth(world, [...configured], new Date(Math.max(Date.parse(config.start_date), Date.parse(env.now) - NINETY_DAYS)));
Object.assign(truth, insights);
// Usage: start_date to the start of the world's day is one export window (at most 31 days), so
// every row of the configured projects' organizations carries that window's end.
const DAY = 86_400_000;
const usageStart = Date.parse(config.start_date);
const usageEnd = Math.floor(Date.parse(env.now) / DAY) * DAY;
if (usageEnd - usageStart > 31 * DAY || usageEnd <= usageStart) {
  console.error(`acceptance-fixtures: ${env.config}'s start_date must be 1 to 31 days before the start of ${env.now}'s UTC day (one usage export window)`);
  process.exit(1);
}
const orgs = [...new Set([...configured].map((slug) => world.project(slug).organization_id))];
truth.usage = orgs.flatMap((org) =>
  usageRows(world, org, new Date(usageStart), new Date(usageEnd)).map((r) => ({ ...r, _organization_id: org, _window_end: new Date(usageEnd).toISOString() })),
);
const STREAMS = ['projects', 'pipelines', 'workflows', 'jobs', 'job_details', 'tests', 'workflow_runs', 'flaky_tests', 'usage'];
// Job details: one per job, under the workflow its details name as latest (a read emits no key twice).
const emittedAt = Date.parse(env.now);
const lines = [];
for (const stream of STREAMS) {
  for (const data of truth[stream]) lines.push(JSON.stringify({ stream, data, emitted_at: emittedAt }));
}
const expectedRecords = lines.join('\n') + '\n';

const spec = spawnSync(process.execPath, [`${root}dist/cli/airbyte.js`, 'spec'], { encoding: 'utf8' });
const specMessage = JSON.parse(spec.stdout.trim().split('\n')[0]);
if (specMessage.type !== 'SPEC') {
  console.error(`acceptance-fixtures: \`spec\` printed ${spec.stdout.slice(0, 200)}`);
  process.exit(1);
}
const expectedSpec = JSON.stringify(specMessage.spec, null, 2) + '\n';

let stale = 0;
for (const [path, text] of [['integration_tests/expected_records.jsonl', expectedRecords], ['integration_tests/spec.json', expectedSpec]]) {
  const current = existsSync(`${root}${path}`) ? readFileSync(`${root}${path}`, 'utf8') : undefined;
  if (current === text) {
    console.log(`acceptance-fixtures: ${path} is up to date`);
  } else if (check) {
    console.error(`acceptance-fixtures: ${path} is stale; run node scripts/acceptance-fixtures.mjs`);
    stale++;
  } else {
    writeFileSync(`${root}${path}`, text);
    console.log(`acceptance-fixtures: wrote ${path}`);
  }
}
console.log(`acceptance-fixtures: ${STREAMS.map((s) => `${truth[s].length} ${s}`).join(', ')} at ${env.now}`);
process.exit(stale ? 1 : 0);

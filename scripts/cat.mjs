#!/usr/bin/env node
/**
 * Airbyte's own Connector Acceptance Tests (CAT 0.11.5) against the image, with the bundled mock
 * CircleCI API standing in for circleci.com.
 *
 *   AIRBYTE_CAT_RUN=<CAT run.sh> node scripts/cat.mjs [--image IMAGE] [-- pytest args...]
 *
 * AIRBYTE_CAT_RUN is a runner with the interface of the vendored CAT's run.sh:
 * `run.sh <connector dir> --image IMAGE --config-json FILE [pytest args]`, exiting with pytest's
 * code. This script:
 *   1. starts the mock as integration_tests/acceptance_mock.json describes it (seed, fixed clock,
 *      history, token), on 127.0.0.1 and a free port (CAT runs connectors with the host's network);
 *   2. stages the connector's acceptance inputs (acceptance-test-config.yml, metadata.yaml,
 *      integration_tests/) in a temporary folder, where every config file the acceptance config
 *      names under integration_tests/ gets the mock's base_url, and writes secrets/config.json
 *      (sample_config.json with the mock's token and base_url);
 *   3. runs CAT, keeps its JUnit report, and passes only when pytest passed, no test failed or
 *      errored, and the tests that matter ran (none of them may be skipped);
 *   4. stops the mock.
 * The tokens are the mock's; CAT's output is still checked for them.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const fail = (msg) => {
  console.error(`cat: ${msg}`);
  process.exit(2);
};

const argv = process.argv.slice(2);
const dd = argv.indexOf('--');
const own = dd >= 0 ? argv.slice(0, dd) : argv;
const pytestArgs = dd >= 0 ? argv.slice(dd + 1) : [];
const cfg = YAML.parse(readFileSync(join(ROOT, 'acceptance-test-config.yml'), 'utf8'));
let image = process.env.ACCEPTANCE_IMAGE || cfg.connector_image;
for (let i = 0; i < own.length; i++) {
  if (own[i] === '--image' && own[i + 1]) image = own[++i];
  else fail(`unknown argument ${own[i]}; usage: AIRBYTE_CAT_RUN=<CAT run.sh> node scripts/cat.mjs [--image IMAGE] [-- pytest args]`);
}
const runner = process.env.AIRBYTE_CAT_RUN;
if (!runner) {
  fail(
    "AIRBYTE_CAT_RUN is not set: it names the runner of Airbyte's Connector Acceptance Tests 0.11.5 " +
      '(run.sh of the vendored CAT; see docs/airbyte.md, "Tests"). .ci/run sets it.',
  );
}
if (!existsSync(runner)) fail(`AIRBYTE_CAT_RUN=${runner}: no such file`);
if (!existsSync(join(ROOT, 'dist-dev/mock/server.js'))) fail('dist-dev/ is missing: run `npm run build` first (it builds the mock)');

const { startMockServer } = await import(join(ROOT, 'dist-dev/mock/server.js'));
const { World } = await import(join(ROOT, 'dist-dev/mock/world.js'));

const env = JSON.parse(readFileSync(join(ROOT, 'integration_tests/acceptance_mock.json'), 'utf8'));
const world = new World({ seed: env.seed, now: new Date(env.now), historyDays: env.history_days, pipelinesPerDay: env.pipelines_per_day });
// The account's usage export (acceptance_mock.json says why): its create limit, when an export is ready.
const usage = { createLimit: { count: env.usage.creates_per_hour, windowMs: 3_600_000 }, readyAfterPolls: env.usage.ready_after_polls };
const mock = await startMockServer({ world, usage, token: env.token, host: '127.0.0.1', port: 0 });

const work = mkdtempSync(join(tmpdir(), 'source-circleci-cat-'));
const stage = join(work, 'connector');
mkdirSync(stage);
cpSync(join(ROOT, 'acceptance-test-config.yml'), join(stage, 'acceptance-test-config.yml'));
cpSync(join(ROOT, 'metadata.yaml'), join(stage, 'metadata.yaml'));
cpSync(join(ROOT, 'integration_tests'), join(stage, 'integration_tests'), { recursive: true });

// Every config the acceptance config names: secrets/ ones are the mock account's; the ones kept
// in integration_tests/ talk to the mock too (it stands in for circleci.com).
const configPaths = new Set();
for (const suite of Object.values(cfg.acceptance_tests ?? {})) for (const t of suite.tests ?? []) if (t.config_path) configPaths.add(t.config_path);
for (const p of configPaths) {
  if (p.startsWith('secrets/')) {
    if (p !== 'secrets/config.json') fail(`${p}: only secrets/config.json can be provided to CAT; keep other configs in integration_tests/`);
    continue;
  }
  const c = JSON.parse(readFileSync(join(ROOT, p), 'utf8'));
  writeFileSync(join(stage, p), JSON.stringify({ ...c, base_url: mock.baseUrl }, null, 2));
}
const secrets = join(work, 'config.json');
const sample = JSON.parse(readFileSync(join(ROOT, env.config), 'utf8'));
writeFileSync(secrets, JSON.stringify({ ...sample, token: env.token, base_url: mock.baseUrl }, null, 2));

const junit = process.env.CAT_JUNIT || join(ROOT, '.tmp/cat-junit.xml');
mkdirSync(dirname(junit), { recursive: true });
rmSync(junit, { force: true });
console.log(`cat: mock CircleCI API at ${mock.baseUrl}; CAT against ${image}; inputs staged in ${stage}`);

const started = Date.now();
const child = spawn('bash', [runner, stage, '--image', image, '--config-json', secrets, '--', `--junitxml=${junit}`, ...pytestArgs], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
for (const s of [child.stdout, child.stderr]) {
  s.setEncoding('utf8');
  s.on('data', (d) => {
    output += d;
    (s === child.stdout ? process.stdout : process.stderr).write(d);
  });
}
const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
await mock.close();
const seconds = ((Date.now() - started) / 1000).toFixed(0);

const problems = [];
if (code !== 0) problems.push(`CAT (pytest) exited with code ${code}`);
for (const token of [env.token]) if (output.includes(token)) problems.push('a token appears in the CAT output');

// The JUnit report: one testcase per test, with <failure>, <error> or <skipped> inside.
const results = [];
if (existsSync(junit)) {
  const xml = readFileSync(junit, 'utf8');
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attr = (k) => new RegExp(`\\b${k}="([^"]*)"`).exec(m[1])?.[1] ?? '';
    const body = m[3] ?? '';
    const outcome = /<failure\b/.test(body) ? 'failed' : /<error\b/.test(body) ? 'error' : /<skipped\b/.test(body) ? 'skipped' : 'passed';
    const why = /<skipped\b[^>]*message="([^"]*)"/.exec(body)?.[1];
    results.push({ name: `${attr('classname').split('.').pop()}::${attr('name')}`, outcome, why });
  }
} else problems.push(`no JUnit report at ${junit}`);
const count = (o) => results.filter((r) => r.outcome === o).length;
for (const r of results) if (r.outcome === 'failed' || r.outcome === 'error') problems.push(`${r.name}: ${r.outcome}`);
// These must run and pass: a skip would hide exactly what this stage is for.
const mustPass = ['TestSpec::test_config_match_spec', 'TestConnection::test_check', 'TestDiscovery::test_discover', 'TestBasicRead::test_read',
  'TestFullRefresh::test_sequential_reads', 'TestIncremental::test_two_sequential_reads', 'TestIncremental::test_read_sequential_slices',
  'TestIncremental::test_state_with_abnormally_large_values'];
for (const name of mustPass) {
  const ran = results.filter((r) => r.name.startsWith(name));
  if (!ran.length) problems.push(`${name} did not run`);
  else if (!ran.every((r) => r.outcome === 'passed')) problems.push(`${name}: ${ran.map((r) => r.outcome).join(', ')}`);
}
const skipped = results.filter((r) => r.outcome === 'skipped');
console.log(`\ncat: CAT 0.11.5 against ${image}: ${count('passed')} passed, ${skipped.length} skipped (by CAT), ${count('failed')} failed, ${count('error')} errors, ${seconds} s; JUnit report ${junit}`);
for (const r of skipped) console.log(`cat:   skipped ${r.name}${r.why ? `: ${r.why}` : ''}`);
if (problems.length) {
  console.error(`cat: FAILED\n  ${problems.join('\n  ')}`);
  process.exitCode = 1;
} else rmSync(work, { recursive: true, force: true });

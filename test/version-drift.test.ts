/**
 * One source of truth, no Docker needed: package.json's version is metadata.yaml's dockerImageTag
 * and the Dockerfile's io.airbyte.version; the Dockerfile's io.airbyte.name is metadata's
 * dockerRepository; the Dockerfile keeps Airbyte's contract; the generated acceptance fixtures are
 * current (integration_tests/spec.json, and expected_records.jsonl is the mock world's ground truth).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { acceptanceWorld, loadAcceptanceEnv, readJsonl } from './docker/acceptance.js';
import { ROOT } from './helpers.js';

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const pkg = JSON.parse(read('package.json'));
const metadata = YAML.parse(read('metadata.yaml'));
const dockerfile = read('Dockerfile');

/** The final stage's instructions (after the last FROM). */
const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
const label = (key: string) => finalStage.match(new RegExp(`^LABEL\\s+${key.replace(/\./g, '\\.')}="?([^"\\s]+)"?`, 'm'))?.[1];

describe('version and name: package.json → metadata.yaml → Dockerfile', () => {
  test('package.json version = metadata dockerImageTag = io.airbyte.version', () => {
    expect({ metadata: String(metadata.data.dockerImageTag), label: label('io.airbyte.version') }).toEqual({ metadata: pkg.version, label: pkg.version });
  });

  test('io.airbyte.name = metadata dockerRepository', () => {
    expect(label('io.airbyte.name')).toBe(metadata.data.dockerRepository);
  });

  test('metadata.yaml describes a source with the fields Airbyte needs', () => {
    expect(metadata.data).toMatchObject({ connectorType: 'source', dockerRepository: expect.any(String), definitionId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(metadata.data.documentationUrl).toMatch(/^https:\/\//);
  });

  test('sync-version --check agrees, and fixes a drifted copy', () => {
    const check = spawnSync(process.execPath, [join(ROOT, 'scripts/sync-version.mjs'), '--check'], { encoding: 'utf8' });
    expect({ status: check.status, stderr: check.stderr }).toEqual({ status: 0, stderr: '' });

    const dir = mkdtempSync(join(tmpdir(), 'sync-version-'));
    for (const f of ['package.json', 'metadata.yaml', 'Dockerfile']) cpSync(join(ROOT, f), join(dir, f));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, version: '7.8.9' }));
    const drift = spawnSync(process.execPath, [join(ROOT, 'scripts/sync-version.mjs'), '--check', '--root', dir], { encoding: 'utf8' });
    expect(drift.status).toBe(1);
    expect(drift.stderr).toMatch(/dockerImageTag is .* package.json version is 7\.8\.9/);
    const fix = spawnSync(process.execPath, [join(ROOT, 'scripts/sync-version.mjs'), '--root', dir], { encoding: 'utf8' });
    expect(fix.status).toBe(0);
    expect(YAML.parse(readFileSync(join(dir, 'metadata.yaml'), 'utf8')).data.dockerImageTag).toBe('7.8.9');
    expect(readFileSync(join(dir, 'Dockerfile'), 'utf8')).toContain('LABEL io.airbyte.version="7.8.9"');
    // Comments and the rest of the files survive.
    expect(readFileSync(join(dir, 'metadata.yaml'), 'utf8').replace('7.8.9', String(metadata.data.dockerImageTag))).toBe(read('metadata.yaml'));
  });
});

describe('the Dockerfile keeps the Airbyte contract', () => {
  test('multi-stage from node:24-bookworm-slim (Node 24 LTS); the final stage takes the production dependencies and the built code only', () => {
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(new Set(froms)).toEqual(new Set(['node:24-bookworm-slim']));
    const copies = [...finalStage.matchAll(/^COPY\s+(.+)$/gm)].map((m) => m[1]);
    expect(copies.every((c) => c.startsWith('--from='))).toBe(true);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });

  test('ENTRYPOINT is absolute and AIRBYTE_ENTRYPOINT is the same words joined by spaces', () => {
    const entrypoint: string[] = JSON.parse(finalStage.match(/^ENTRYPOINT\s+(\[.*\])\s*$/m)![1]);
    const env = finalStage.match(/^ENV\s+AIRBYTE_ENTRYPOINT="([^"]+)"/m)![1];
    expect(entrypoint[0].startsWith('/')).toBe(true);
    expect(env).toBe(entrypoint.join(' '));
  });

  test('runs as the user airbyte, who owns /airbyte', () => {
    expect(finalStage).toMatch(/^USER\s+airbyte\s*$/m);
    expect(finalStage).toMatch(/useradd\b.*\bairbyte/);
    expect(finalStage).toMatch(/chown\s+airbyte:airbyte\s+\/airbyte\b/);
  });

  test('.dockerignore excludes everything but the build inputs', () => {
    const lines = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(lines[0]).toBe('*');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    for (const a of allowed) expect(['package.json', 'package-lock.json', 'tsconfig.json', 'scripts/gen-types.mjs', 'schemas', 'spec.json', 'src']).toContain(a);
    for (const never of ['**/.env', '**/secrets']) expect(lines).toContain(never);
  });
});

describe('generated acceptance fixtures are current', () => {
  test('integration_tests/spec.json carries spec.json as connectionSpecification', () => {
    expect(JSON.parse(read('integration_tests/spec.json')).connectionSpecification).toEqual(JSON.parse(read('spec.json')));
  });

  test('expected_records.jsonl is the ground truth of the acceptance world (regenerate: node scripts/acceptance-fixtures.mjs)', () => {
    // The generator computes it from the mock's truths (World.groundTruth, insightsTruth, usageRows),
    // never from the connector's output; --check fails when the file differs from them.
    const check = spawnSync(process.execPath, [join(ROOT, 'scripts/acceptance-fixtures.mjs'), '--check'], { encoding: 'utf8' });
    expect({ code: check.status, stderr: check.stderr }).toEqual({ code: 0, stderr: '' });
    const env = loadAcceptanceEnv();
    const config = JSON.parse(read(env.config));
    const world = acceptanceWorld(env);
    const expected = readJsonl(join(ROOT, 'integration_tests/expected_records.jsonl'));
    const of = (stream: string) => expected.filter((e) => e.stream === stream).map((e) => e.data);
    // It exercises what matters: every stream, every project, a job shared by two workflows,
    // test results with a null file and identical entries, Insights runs that join to workflows,
    // usage rows of every organization that join to jobs.
    for (const stream of ['projects', 'pipelines', 'workflows', 'jobs', 'job_details', 'tests', 'workflow_runs', 'flaky_tests', 'usage']) expect({ stream, some: of(stream).length > 0 }).toEqual({ stream, some: true });
    const tests = of('tests');
    expect(tests.some((t) => t.file === null) && tests.some((t) => t._occurrence > 0)).toBe(true);
    expect(new Set(of('pipelines').map((p) => p.project_slug))).toEqual(new Set(config.project_slugs));
    const jobIds = of('jobs').map((j) => j.id);
    expect(new Set(jobIds).size).toBeLessThan(jobIds.length);
    const workflowIds = new Set(of('workflows').map((w) => w.id));
    expect(of('workflow_runs').every((r) => workflowIds.has(r.id))).toBe(true);
    expect(new Set(of('usage').map((u) => u._organization_id))).toEqual(new Set(config.project_slugs.map((s: string) => world.project(s)!.organization_id)));
    expect(of('usage').every((u) => jobIds.includes(u.job_id))).toBe(true);
  });
});

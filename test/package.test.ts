/**
 * What the npm package ships, installed as npm installs it: the tarball `npm pack` makes is
 * unpacked beside only the production dependencies (no dev dependency can be found from there),
 * each declared bin is linked as npm links it, and the linked CLIs run. A file missing from the
 * package, an import of a dev dependency, a bin that points nowhere or a CLI that does not run
 * through a link fails here. The package also holds no test tool: not the mock CircleCI API
 * (dist-dev/), not tests or sources.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, parseLines } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'source-circleci-pack-'));
let files: string[] = [];
let bins: Record<string, string> = {};

beforeAll(() => {
  const pack = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
  expect(pack.status).toBe(0);
  const [report] = JSON.parse(pack.stdout);
  files = report.files.map((f: { path: string }) => f.path).sort();
  const install = join(dir, 'node_modules');
  mkdirSync(install);
  expect(spawnSync('tar', ['-xzf', join(dir, report.filename), '-C', dir]).status).toBe(0);
  const pkg = JSON.parse(readFileSync(join(dir, 'package/package.json'), 'utf8'));
  // Production dependencies only, from this checkout's install (no network).
  for (const dep of Object.keys(pkg.dependencies ?? {})) symlinkSync(join(ROOT, 'node_modules', dep), join(install, dep));
  symlinkSync(join(dir, 'package'), join(install, pkg.name));
  mkdirSync(join(install, '.bin'));
  bins = Object.fromEntries(Object.entries(pkg.bin as Record<string, string>).map(([name, path]) => {
    const link = join(install, '.bin', name);
    symlinkSync(join('..', pkg.name, path), link);
    return [name, link];
  }));
});

const run = (bin: string, args: string[]) => spawnSync(process.execPath, [bins[bin], ...args], { cwd: dir, encoding: 'utf8' });

test('both linked CLIs run from the installed package: the spec, the catalog, the tap\'s about and discovery', () => {
  expect(Object.keys(bins).sort()).toEqual(['source-circleci', 'tap-circleci']);
  const spec = run('source-circleci', ['spec']);
  expect({ status: spec.status, stderr: spec.stderr }).toEqual({ status: 0, stderr: '' });
  expect(parseLines(spec.stdout).map((m) => m.type)).toEqual(['SPEC']);
  expect(parseLines(spec.stdout)[0].spec.connectionSpecification).toEqual(JSON.parse(readFileSync(join(ROOT, 'spec.json'), 'utf8')));
  const about = run('tap-circleci', ['--about', '--format', 'json']);
  expect(about.status).toBe(0);
  expect(parseLines(about.stdout)[0].name).toBe('tap-circleci');
  // Discovery reads the shipped schemas; a config that is not there is ignored, as Meltano expects.
  const catalog = run('tap-circleci', ['--discover', '--config', join(dir, 'nowhere.json')]);
  expect(catalog.status).toBe(0);
  expect(parseLines(catalog.stdout)[0].streams.map((s: { tap_stream_id: string }) => s.tap_stream_id).sort()).toEqual(['flaky_tests', 'job_details', 'jobs', 'pipelines', 'projects', 'tests', 'usage', 'workflow_runs', 'workflows']);
  // check on a missing config: one FAILED status (every module, the HTTP client included, is loaded at start).
  const check = run('source-circleci', ['check', '--config', join(dir, 'nowhere.json')]);
  expect(check.status).toBe(0);
  expect(parseLines(check.stdout).map((m) => m.connectionStatus?.status)).toEqual(['FAILED']);
});

test('the package holds no mock, no TypeScript sources, no tests, no dist-dev', () => {
  expect(files).toContain('dist/cli/airbyte.js');
  const unwanted = files.filter((f) => /^(src|test|bench|dist-dev|integration_tests)\//.test(f) || f.startsWith('dist/mock/') || f.endsWith('.ts'));
  expect(unwanted).toEqual([]);
});

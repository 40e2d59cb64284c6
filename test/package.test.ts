/**
 * What the npm package ships: `npm pack --dry-run` (the real packing, without writing the
 * tarball) holds the built connector, its schemas and spec, and no test tool: not the mock
 * CircleCI API (built into dist-dev/ for the demo, tests and bench), not tests or sources.
 * Every module the shipped code imports is a production dependency or a Node built-in.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

function packedFiles(): string[] {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  const [report] = JSON.parse(r.stdout);
  return report.files.map((f: { path: string }) => f.path).sort();
}

const files = packedFiles();

test('the package holds the CLIs, the engine, schemas and spec', () => {
  for (const f of ['dist/cli/airbyte.js', 'dist/cli/singer.js', 'spec.json', 'package.json', 'README.md', 'schemas/jobs.json']) expect(files).toContain(f);
});

test('the package holds no mock, no TypeScript sources, no tests, no dist-dev', () => {
  const unwanted = files.filter((f) => /^(src|test|bench|dist-dev|integration_tests)\//.test(f) || f.startsWith('dist/mock/') || f.endsWith('.ts'));
  expect(unwanted).toEqual([]);
});

test('every package the shipped code imports is a production dependency; test-only packages are dev dependencies', () => {
  const imported = new Set<string>();
  for (const f of files.filter((p) => p.startsWith('dist/') && p.endsWith('.js'))) {
    const code = readFileSync(join(ROOT, f), 'utf8');
    for (const m of code.matchAll(/(?:^|\n)\s*import\s[^'"]*?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  }
  expect(imported.size).toBeGreaterThan(0);
  expect([...imported].filter((d) => !(d in pkg.dependencies))).toEqual([]);
  // Nothing in dependencies that the shipped code does not use (ajv-formats is for the tests).
  expect(Object.keys(pkg.dependencies).filter((d) => !imported.has(d))).toEqual([]);
  expect(pkg.devDependencies['ajv-formats']).toBeDefined();
});

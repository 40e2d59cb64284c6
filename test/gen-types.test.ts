/**
 * The guard of the generated record types. The build runs `gen-types --check` (package.json
 * build:dist), so that the types are current is proven by every build; here, that the guard fails
 * when a schema changes and the types were not regenerated.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const gen = join(ROOT, 'scripts/gen-types.mjs');

test('gen-types --check fails when a schema changes and the types are not regenerated', () => {
  const dir = mkdtempSync(join(tmpdir(), 'types-'));
  cpSync(join(ROOT, 'schemas'), join(dir, 'schemas'), { recursive: true });
  const out = join(dir, 'records.ts');
  writeFileSync(out, readFileSync(join(ROOT, 'src/types/records.ts')));
  const check = () => spawnSync(process.execPath, [gen, '--check', '--schemas', join(dir, 'schemas'), '--out', out], { encoding: 'utf8' });
  // The copy passes as it is, so what fails below is the change.
  expect(check().status).toBe(0);
  const schema = JSON.parse(readFileSync(join(dir, 'schemas/jobs.json'), 'utf8'));
  schema.properties.new_field = { type: ['null', 'string'] };
  writeFileSync(join(dir, 'schemas/jobs.json'), JSON.stringify(schema));
  const r = check();
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/stale/);
});

test('gen-types --check fails when spec.json changes and the config validator is not regenerated', () => {
  const dir = mkdtempSync(join(tmpdir(), 'validator-'));
  const spec = join(dir, 'spec.json');
  const validator = join(dir, 'config-validate.ts');
  writeFileSync(spec, readFileSync(join(ROOT, 'spec.json')));
  writeFileSync(validator, readFileSync(join(ROOT, 'src/config-validate.ts')));
  const check = () => spawnSync(process.execPath, [gen, '--check', '--spec', spec, '--validator', validator], { encoding: 'utf8' });
  expect(check().status).toBe(0);
  const changed = JSON.parse(readFileSync(spec, 'utf8'));
  changed.properties.lookback_days.maximum = 30;
  writeFileSync(spec, JSON.stringify(changed));
  const r = check();
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/src\/config-validate\.ts is stale/);
});

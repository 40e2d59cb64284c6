import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const gen = join(ROOT, 'scripts/gen-types.mjs');

describe('record types generated from schemas/', () => {
  test('src/types/records.ts is up to date', () => {
    execFileSync(process.execPath, [gen, '--check'], { cwd: ROOT });
  });

  test('--check fails when a schema changes and the types are not regenerated', () => {
    const dir = mkdtempSync(join(tmpdir(), 'types-'));
    cpSync(join(ROOT, 'schemas'), join(dir, 'schemas'), { recursive: true });
    const out = join(dir, 'records.ts');
    writeFileSync(out, readFileSync(join(ROOT, 'src/types/records.ts')));
    const schema = JSON.parse(readFileSync(join(dir, 'schemas/jobs.json'), 'utf8'));
    schema.properties.new_field = { type: ['null', 'string'] };
    writeFileSync(join(dir, 'schemas/jobs.json'), JSON.stringify(schema));
    const r = spawnSync(process.execPath, [gen, '--check', '--schemas', join(dir, 'schemas'), '--out', out], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/stale/);
  });
});

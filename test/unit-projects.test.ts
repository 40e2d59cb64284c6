/**
 * Which projects a connection syncs (src/sync/projects.ts): listed and discovered joined, the
 * excluded left out, and partitions that split any set of projects with no overlap and no gap.
 */
import fc from 'fast-check';
import { normaliseOrg, parseConfig } from '../src/config.js';
import { outOfScope, partitionOf, selectProjects } from '../src/sync/projects.js';

const TOKEN = 'test-token-0123456789abcdef';
const base = { projectSlugs: [] as string[], excludeProjects: [] as string[] };
const slugArb = fc.tuple(fc.constantFrom('gh', 'bb'), fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), fc.stringMatching(/^[a-z][a-z0-9._-]{0,12}$/)).map((p) => p.join('/'));

describe('partitions', () => {
  test('every project lands in exactly one of n partitions, whatever the set and n', () => {
    fc.assert(
      fc.property(fc.uniqueArray(slugArb, { maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (slugs, count) => {
        const shares = Array.from({ length: count }, (_, index) => selectProjects({ ...base, partition: { index, count } }, slugs).slugs);
        expect(shares.flat().sort()).toEqual([...slugs].sort());
        expect(new Set(shares.flat()).size).toBe(slugs.length);
      }),
    );
  });

  test('the hash is FNV-1a of the slug: fixed values, so a project never moves between versions or machines', () => {
    // FNV-1a 32-bit test vectors: "" = 0x811c9dc5, "a" = 0xe40c292c, "foobar" = 0xbf9cf968.
    expect(partitionOf('', 2 ** 32)).toBe(0x811c9dc5);
    expect(partitionOf('a', 2 ** 32)).toBe(0xe40c292c);
    expect(partitionOf('foobar', 2 ** 32)).toBe(0xbf9cf968);
  });

  test('a new project joins exactly one partition and moves no other', () => {
    const slugs = Array.from({ length: 40 }, (_, i) => `gh/acme/service-${i}`);
    const before = [0, 1, 2].map((index) => selectProjects({ ...base, partition: { index, count: 3 } }, slugs).slugs);
    const after = [0, 1, 2].map((index) => selectProjects({ ...base, partition: { index, count: 3 } }, [...slugs, 'gh/acme/brand-new']).slugs);
    expect(after.map((a, i) => a.filter((s) => s !== 'gh/acme/brand-new'))).toEqual(before);
    expect(after.filter((a) => a.includes('gh/acme/brand-new')).length).toBe(1);
  });
});

describe('listed, discovered and excluded', () => {
  test('listed and discovered are joined once; only the discovered ones count as discovered', () => {
    const sel = selectProjects({ ...base, projectSlugs: ['gh/acme/api', 'bb/acme/web'] }, ['gh/acme/api', 'gh/acme/new']);
    expect(sel.slugs).toEqual(['gh/acme/api', 'bb/acme/web', 'gh/acme/new']);
    expect([...sel.discovered]).toEqual(['gh/acme/new']);
  });

  test('exclude_projects globs match whole slugs, * within one part, case-insensitive', () => {
    const config = { ...base, excludeProjects: ['gh/acme/legacy-*', '*/*/sandbox'] };
    const sel = selectProjects(config, ['gh/acme/legacy-api', 'gh/acme/api', 'bb/other/sandbox', 'gh/acme/legacy/x', 'gh/acme/Legacy-Web']);
    expect(sel.slugs).toEqual(['gh/acme/api', 'gh/acme/legacy/x']);
    expect(sel.excluded).toBe(3);
    expect(outOfScope(config, 'gh/acme/legacy-api')).toBe(true);
    expect(outOfScope(config, 'gh/acme/api')).toBe(false);
  });
});

describe('config', () => {
  test('organizations alone is enough; a string is split; slugs and ids are normalised', () => {
    const c = parseConfig({ token: TOKEN, organizations: 'github/acme bb/acme 0B1C2D3E-4F50-4617-8A9B-C0D1E2F3A4B5', exclude_projects: 'gh/acme/x-*' });
    expect(c.organizations).toEqual(['gh/acme', 'bb/acme', '0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5']);
    expect(c.projectSlugs).toEqual([]);
    expect(c.excludeProjects).toEqual(['gh/acme/x-*']);
    expect(normaliseOrg('circleci/8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f')).toBe('circleci/8f3c1a2e-4b5d-4c6e-9f70-1a2b3c4d5e6f');
  });

  test.each([
    ['neither project_slugs nor organizations', { token: TOKEN }, /no projects to sync.*"organizations"/],
    ['an organization that is not a slug or an id', { token: TOKEN, organizations: ['gh/acme/api'] }, /Organization "gh\/acme\/api" is not an org slug/],
    ['a partition index past its count', { token: TOKEN, organizations: ['gh/acme'], partition: { index: 3, count: 3 } }, /"partition" has index 3 but count 3/],
    ['a partition without a count', { token: TOKEN, organizations: ['gh/acme'], partition: { index: 0 } }, /"partition"/],
  ])('%s is one clear config error', (_, raw, message) => {
    expect(() => parseConfig(raw)).toThrow(message);
  });
});

import { normaliseSlug, parseConfig, DEFAULT_BASE_URL } from '../src/config.js';
import { ConnectorError } from '../src/errors.js';

const NOW = new Date('2026-11-27T12:00:00Z');
const base = { token: 'abcdef123456', project_slugs: ['gh/acme/api'] };

function configErrorOf(raw: unknown): string {
  try {
    parseConfig(raw, NOW);
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectorError);
    expect((e as ConnectorError).failureType).toBe('config_error');
    return (e as Error).message;
  }
  throw new Error('expected a config error');
}

describe('config parsing', () => {
  test('defaults: start_date one year back, base_url, lookback, concurrency', () => {
    const c = parseConfig(base, NOW);
    expect(c.startDate.toISOString()).toBe('2025-11-27T12:00:00.000Z');
    expect(c.baseUrl).toBe(DEFAULT_BASE_URL);
    expect(c.lookbackDays).toBe(7);
    expect(c.maxConcurrency).toBe(8);
    expect(c.warnings).toEqual([]);
  });

  test('a tap-circle-ci config works unchanged: space-separated slugs, date-time start', () => {
    const c = parseConfig({ token: 'abcdef123456', project_slugs: 'gh/acme/api  github/acme/web bitbucket/acme/x', start_date: '2025-01-01T00:00:00Z' }, NOW);
    expect(c.projectSlugs).toEqual(['gh/acme/api', 'gh/acme/web', 'bb/acme/x']);
    expect(c.startDate.toISOString()).toBe('2025-01-01T00:00:00.000Z');
  });

  test('a date-only start_date is midnight UTC', () => {
    expect(parseConfig({ ...base, start_date: '2025-03-04' }, NOW).startDate.toISOString()).toBe('2025-03-04T00:00:00.000Z');
  });

  test.each([
    ['not an object', [1, 2], /must be a JSON object/],
    ['missing token', { project_slugs: ['gh/a/b'] }, /missing "token".*personal API token/],
    ['empty token', { token: '   ', project_slugs: ['gh/a/b'] }, /"token" is empty/],
    ['no slugs', { token: 'abcdef123456', project_slugs: [] }, /"project_slugs".*fewer than 1/],
    ['blank slug string', { token: 'abcdef123456', project_slugs: '  ' }, /"project_slugs"/],
    ['ill-formed slug', { token: 'abcdef123456', project_slugs: ['acme/api'] }, /"acme\/api" is not of the form vcs\/org\/repo/],
    ['unknown vcs', { token: 'abcdef123456', project_slugs: ['gl/acme/api'] }, /is not of the form/],
    ['start_date not a date', { ...base, start_date: 'yesterday' }, /"start_date" is not in the expected form \("yesterday"\): set "start_date" to a UTC date/],
    ['start_date impossible', { ...base, start_date: '2025-02-31T00:00:00Z' }, /"start_date"/],
    ['start_date in the future', { ...base, start_date: '2027-01-01' }, /lies in the future/],
    ['base_url not http', { ...base, base_url: 'ftp://example.com/api/v2' }, /must use http or https/],
    ['base_url not a URL', { ...base, base_url: 'circleci' }, /"base_url" is not a URL/],
    ['lookback negative', { ...base, lookback_days: -1 }, /"lookback_days"/],
    ['concurrency zero', { ...base, max_concurrency: 0 }, /"max_concurrency"/],
  ])('%s is a config error naming the field', (_name, raw, pattern) => {
    expect(configErrorOf(raw)).toMatch(pattern);
  });

  test('the token never appears in a config error message', () => {
    const msg = configErrorOf({ token: 'supersecret-token-xyz', project_slugs: ['nope'] });
    expect(msg).not.toContain('supersecret-token-xyz');
  });

  test('unknown keys are warnings; plain http to a remote host is an error, a warning once allowed', () => {
    expect(configErrorOf({ ...base, base_url: 'http://ci.example.com/api/v2/' })).toMatch(/plain http to ci\.example\.com.*"allow_insecure_http"/);
    const c = parseConfig({ ...base, tokn: 'x', base_url: 'http://ci.example.com/api/v2/', allow_insecure_http: true }, NOW);
    expect(c.baseUrl).toBe('http://ci.example.com/api/v2');
    expect(c.warnings.join(' ')).toMatch(/unknown keys.*tokn/);
    expect(c.warnings.join(' ')).toMatch(/plain http/);
    expect(parseConfig({ ...base, base_url: 'http://127.0.0.1:8080/api/v2' }, NOW).warnings).toEqual([]);
  });
});

describe('slug normalisation', () => {
  test.each([
    ['gh/acme/api', 'gh/acme/api'],
    ['github/acme/api', 'gh/acme/api'],
    ['GitHub/acme/api', 'gh/acme/api'],
    ['bitbucket/acme/web', 'bb/acme/web'],
    ['gh%2Facme%2Fapi', 'gh/acme/api'],
    [' /gh/acme/api/ ', 'gh/acme/api'],
    ['circleci/43G3kM5RtfFE7v5sa4nWAU/44n9pujWcTnVZ2b5S8Fnat', 'circleci/43G3kM5RtfFE7v5sa4nWAU/44n9pujWcTnVZ2b5S8Fnat'],
  ])('%s → %s', (raw, slug) => expect(normaliseSlug(raw)).toBe(slug));

  test.each(['gh/acme', 'gh/acme/api/extra', 'svn/acme/api', 'gh//api'])('%s is rejected', (raw) => {
    expect(() => normaliseSlug(raw)).toThrow(/not of the form/);
  });

  test('duplicate slugs in aliases are synced once', () => {
    expect(parseConfig({ token: 'abcdef123456', project_slugs: ['gh/a/b', 'github/a/b'] }, NOW).projectSlugs).toEqual(['gh/a/b']);
  });
});

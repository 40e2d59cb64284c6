import { configError } from '../errors.js';
import { isId, normaliseOrg, normaliseSlug, vcsShort } from '../config.js';
import { HttpError, type CircleCIClient } from './client.js';
import { tokenRejected } from './probes.js';

/**
 * Which projects an organization has. API v2 cannot say; API v3 lists every project of an
 * organization (CircleCI cloud), and where there is no v3 (CircleCI Server) API v1.1 lists the
 * projects the token's user follows. Facts: docs/operations.md, "Whole organizations".
 */

export interface Discovery {
  /** Every project found, normalised, in the order found. */
  slugs: string[];
  /** One line per organization: how many projects, from which API. */
  notes: string[];
  /** The organizations as resolved: id (unknown on a CircleCI Server without API v3) and slug. */
  organizations: Org[];
}


export interface Org {
  id?: string;
  slug?: string;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);

export async function discoverProjects(client: CircleCIClient, organizations: readonly string[]): Promise<Discovery> {
  const found = new Set<string>();
  const notes: string[] = [];
  const resolved: Org[] = [];
  let collaborations: Org[] | undefined;
  let followed: Json[] | undefined;
  for (const entry of organizations) {
    collaborations ??= await memberships(client);
    const org = await resolve(client, entry, collaborations);
    resolved.push(org);
    const name = org.slug ?? org.id ?? entry;
    const cloud = org.id ? await v3Projects(client, org.id) : undefined;
    if (cloud) {
      for (const s of cloud) found.add(s);
      notes.push(`Organization ${name}: ${cloud.length} projects, every project of the organization (API v3).`);
      continue;
    }
    // No API v3 (CircleCI Server): the followed projects of this organization.
    followed ??= await v1Projects(client);
    if (!org.slug) {
      throw configError(
        `Organization "${entry}" is given by id, but this CircleCI has no API v3 (as on CircleCI Server) and the token's organizations do not name it. Give it by slug (gh/acme) in "organizations".`,
      );
    }
    const mine = followed.map(slugOfV1).filter((s): s is string => !!s && s.startsWith(`${org.slug}/`));
    for (const s of mine) found.add(s);
    notes.push(
      `Organization ${name}: ${mine.length} projects the token's user follows (API v1.1: this CircleCI has no API v3, as on CircleCI Server; projects nobody follows are not found).`,
    );
  }
  return { slugs: [...found], notes, organizations: resolved };
}

/** GET /me/collaborations: the token's organizations (the key is vcs_type, or vcs-type in CircleCI's OpenAPI document). */
async function memberships(client: CircleCIClient): Promise<Org[]> {
  let body: unknown;
  try {
    body = await client.get('/me/collaborations');
  } catch (e) {
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) throw tokenRejected();
    if (e instanceof HttpError && e.status === 404) return [];
    throw e;
  }
  if (!Array.isArray(body)) return [];
  return body.filter(isObject).map((o) => {
    const vcs = vcsShort(String(o.vcs_type ?? o['vcs-type'] ?? ''));
    const slug = text(o.slug) ?? (vcs && text(o.name) ? `${vcs}/${o.name}` : undefined);
    return { id: text(o.id), slug: slug && orgSlugOrUndefined(slug) };
  });
}

/** An organization's id and slug, from the token's organizations, else API v3's orgs. */
async function resolve(client: CircleCIClient, entry: string, collaborations: Org[]): Promise<Org> {
  if (isId(entry)) return collaborations.find((o) => o.id?.toLowerCase() === entry) ?? { id: entry };
  const known = collaborations.find((o) => o.slug === entry);
  if (known?.id) return known;
  // circleci/<org-id>: the slug carries the id.
  if (entry.startsWith('circleci/') && isId(entry.slice('circleci/'.length))) return { id: entry.slice('circleci/'.length).toLowerCase(), slug: entry };
  try {
    const body = await client.get('/orgs', { 'filter[slug]': entry }, 0, { api: 'v3' });
    const first = isObject(body) && Array.isArray(body.data) ? body.data.find(isObject) : undefined;
    if (first && text(first.id)) return { id: text(first.id), slug: entry };
  } catch (e) {
    if (!(e instanceof HttpError && e.status === 404)) throw e;
    // No API v3: CircleCI Server. The slug is enough for v1.1.
    return { slug: entry };
  }
  throw configError(
    `Organization "${entry}" is not one this token's user belongs to (not in GET /me/collaborations nor GET /api/v3/orgs). ` +
      'Check the slug in "organizations" (Organization Settings → Overview in CircleCI) and that the token belongs to a member.',
  );
}

/** Every project of an organization from API v3, or undefined where there is no v3 (404). */
async function v3Projects(client: CircleCIClient, orgId: string): Promise<string[] | undefined> {
  const slugs: string[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  do {
    let body: unknown;
    try {
      body = await client.get('/projects', { 'filter[org_id]': orgId, 'page[cursor]': cursor }, 0, { api: 'v3' });
    } catch (e) {
      if (e instanceof HttpError && e.status === 404 && cursor === undefined) return undefined;
      throw e;
    }
    if (!isObject(body) || !Array.isArray(body.data)) {
      throw configError('GET /api/v3/projects answered with something that is not a v3 list ({"data": [...], "page": {...}}). Check base_url.', 'not a v3 page');
    }
    for (const p of body.data.filter(isObject)) {
      const attributes = isObject(p.attributes) ? p.attributes : {};
      const raw = text(attributes.slug) ?? (text(p.id) ? `circleci/${orgId}/${p.id}` : undefined);
      if (raw) slugs.push(normaliseSlug(raw));
    }
    const page = isObject(body.page) ? body.page : {};
    cursor = text(page.next);
    if (cursor !== undefined) {
      if (seen.has(cursor)) throw configError('GET /api/v3/projects returned a page cursor it had already returned; stopped to avoid an endless loop.', 'repeated page cursor');
      seen.add(cursor);
    }
  } while (cursor !== undefined);
  return slugs;
}

/** GET /api/v1.1/projects: the projects the token's user follows. */
async function v1Projects(client: CircleCIClient): Promise<Json[]> {
  const body = await client.get('/projects', {}, 0, { api: 'v1.1' });
  return Array.isArray(body) ? body.filter(isObject) : [];
}

function slugOfV1(p: Json): string | undefined {
  const vcs = vcsShort(String(p.vcs_type ?? ''));
  const org = text(p.username);
  const repo = text(p.reponame);
  if (!vcs || !org || !repo || p.followed === false) return undefined;
  try {
    return normaliseSlug(`${vcs}/${org}/${repo}`);
  } catch {
    return undefined;
  }
}

/** An org slug from CircleCI's answer in the form config uses, or undefined if it is not one. */
function orgSlugOrUndefined(slug: string): string | undefined {
  try {
    return normaliseOrg(slug);
  } catch {
    return undefined;
  }
}

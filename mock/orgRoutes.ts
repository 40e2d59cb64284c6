/**
 * The mock's organization routes: which organizations and projects a token can see.
 *
 * - GET /api/v2/me/collaborations: a plain array, no paging.
 * - GET /api/v3/orgs?filter[slug]=: the v3 envelope; no match is empty data, not 404.
 * - GET /api/v3/projects?filter[org_id]= | filter[slug]= [&filter[name]=][&page[limit]=][&page[cursor]=]:
 *   the v3 envelope, by name then slug. Cursors are signed and bound to the query; they name the
 *   last project of the page (keyset), so projects that appear or vanish between pages make
 *   nothing skip or repeat. A garbled, forged or cross-query cursor, or a bad page[limit]: 400
 *   (the reference: newer routes answer 400; v2's 404 is for its own page-token).
 * - GET /api/v1.1/projects: followed projects only.
 */
import { hash32 } from './random.js';
import type { ProjectPayload, World } from './world.js';
import type { Reply } from './server.js';

export interface OrgRouteOptions {
  keyStyle: 'vcs_type' | 'vcs-type';
  pageSize: number;
  encode(payload: Record<string, unknown>): string;
  decode(token: string): Record<string, unknown> | undefined;
}

/** The largest page[limit] accepted (CircleCI does not document one; 100 is the usual v3 cap). */
const MAX_LIMIT = 100;
const VCS_TYPE: Record<string, string> = { gh: 'github', bb: 'bitbucket', circleci: 'circleci' };

const json = (status: number, payload: unknown): Reply => ({ status, body: JSON.stringify(payload) });
const message = (status: number, text: string): Reply => json(status, { message: text });
const v3Project = (p: ProjectPayload) => ({ id: p.id, attributes: { name: p.name, slug: p.slug }, references: { org: { id: p.organization_id } } });
const envelope = (data: unknown[], next: string | null): Reply => json(200, { data, page: { next, prev: null } });

export function orgRoutes(world: World, o: OrgRouteOptions) {
  return {
    collaborations(): unknown[] {
      return world.organizations().map((org) => ({
        id: org.id,
        [o.keyStyle]: org.vcs_type,
        name: org.name,
        slug: org.slug,
        avatar_url: `https://avatars.githubusercontent.com/u/${1000000 + (hash32(org.slug) % 9000000)}?v=4`,
      }));
    },

    v3Orgs(q: URLSearchParams): Reply {
      const slug = q.get('filter[slug]');
      const all = world.organizations();
      const data = slug === null ? all : all.filter((org) => org.slug.toLowerCase() === slug.toLowerCase());
      return envelope(data, null);
    },

    v3Projects(q: URLSearchParams): Reply {
      const orgId = q.get('filter[org_id]');
      const slug = q.get('filter[slug]');
      const name = q.get('filter[name]');
      if (orgId === null && slug === null) return message(400, 'filter[org_id] or filter[slug] is required.');
      let limit = o.pageSize;
      const rawLimit = q.get('page[limit]');
      if (rawLimit !== null) {
        if (!/^[0-9]{1,4}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > MAX_LIMIT) {
          return message(400, `page[limit] must be an integer from 1 to ${MAX_LIMIT}.`);
        }
        limit = Number(rawLimit);
      }
      let list: ProjectPayload[];
      if (orgId !== null) {
        // IDs that do not exist or cannot be accessed: 404, like every id route.
        if (!world.organizations().some((org) => org.id === orgId)) return message(404, 'Not Found');
        list = world.orgProjects(orgId);
      } else {
        const p = world.project(slug as string);
        list = p ? [p] : [];
      }
      if (orgId !== null && slug !== null) list = list.filter((p) => p.slug === world.canonicalSlug(slug));
      if (name !== null) list = list.filter((p) => p.name === name);

      const bind = { r: 'v3p', org: orgId, slug, name };
      let after: [string, string] | undefined;
      const cursor = q.get('page[cursor]');
      if (cursor !== null) {
        const t = o.decode(cursor);
        const ok = t && t.r === bind.r && t.org === bind.org && t.slug === bind.slug && t.name === bind.name && Array.isArray(t.a) && t.a.length === 2 && t.a.every((x) => typeof x === 'string');
        if (!ok) return message(400, 'Invalid page cursor.');
        after = t.a as [string, string];
      }
      const rest = after ? list.filter((p) => p.name > after[0] || (p.name === after[0] && p.slug > after[1])) : list;
      const items = rest.slice(0, limit);
      const last = items[items.length - 1];
      const next = rest.length > limit ? o.encode({ ...bind, a: [last.name, last.slug] }) : null;
      return envelope(items.map(v3Project), next);
    },

    /**
     * For circleci/<org-id>/<project-id> projects (GitHub App, GitLab) v1.1's shape is unverified:
     * this mock answers vcs_type "circleci", username = the org id and reponame = the project id,
     * so `<vcs>/<username>/<reponame>` is the v2 slug as for gh/ and bb/ projects.
     */
    v1Projects(): unknown[] {
      return world.followedProjects().map((p) => {
        const [vcs, username, reponame] = p.slug.split('/');
        return {
          vcs_url: p.vcs_info.vcs_url,
          followed: true,
          username,
          reponame,
          vcs_type: VCS_TYPE[vcs],
          default_branch: p.vcs_info.default_branch,
        };
      });
    },
  };
}

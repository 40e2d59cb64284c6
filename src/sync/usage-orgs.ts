import { HttpError, type CircleCIClient } from '../circleci/client.js';
import type { Org } from '../circleci/organizations.js';
import { isId, type Config } from '../config.js';
import { slugPath } from '../slug-path.js';
import { excluder, partitionOf } from './projects.js';
import type { UsageOrg } from './usage.js';

/**
 * The organizations the usage stream exports: those in "organizations" (discovery resolved their
 * ids) and those of the listed projects (a circleci/<org-id>/... slug names its id; otherwise the
 * project's organization_id, one GET /project per organization not known yet). With "partition",
 * an organization belongs to one connection (the same stable hash as projects, of its id), so
 * its exports are not made twice.
 */
export async function usageOrganizations(
  config: Pick<Config, 'projectSlugs' | 'excludeProjects' | 'partition'>,
  client: CircleCIClient,
  resolved: readonly Org[],
  log: (message: string) => Promise<void> | void,
): Promise<UsageOrg[]> {
  const byId = new Map<string, UsageOrg>();
  const idOfSlug = new Map<string, string>();
  for (const org of resolved) {
    if (org.id) {
      byId.set(org.id.toLowerCase(), { id: org.id.toLowerCase(), name: org.slug ?? org.id });
      if (org.slug) idOfSlug.set(org.slug, org.id.toLowerCase());
    } else {
      await log(`usage: organization ${org.slug}: its id is unknown (this CircleCI has no API v3, as on CircleCI Server, which has no Usage Export API either); not exported.`);
    }
  }
  const excluded = excluder(config);
  for (const slug of config.projectSlugs.filter((s) => !excluded(s))) {
    const [vcs, owner] = slug.split('/');
    const orgSlug = `${vcs}/${owner}`;
    if (vcs === 'circleci' && isId(owner)) idOfSlug.set(orgSlug, owner.toLowerCase());
    let id = idOfSlug.get(orgSlug);
    if (!id) {
      try {
        const body = (await client.get(`/project/${slugPath(slug)}`)) as { organization_id?: unknown } | null;
        if (typeof body?.organization_id === 'string' && isId(body.organization_id)) id = body.organization_id.toLowerCase();
      } catch (e) {
        if (!(e instanceof HttpError && (e.status === 404 || e.status === 403))) throw e;
      }
      if (!id) {
        await log(`usage: project ${slug}: its organization could not be found (GET /project/${slugPath(slug)} named none); its organization is not exported unless listed in "organizations".`);
        continue;
      }
      idOfSlug.set(orgSlug, id);
    }
    if (!byId.has(id)) byId.set(id, { id, name: vcs === 'circleci' ? id : orgSlug });
  }
  const mine = [...byId.values()].filter((o) => !config.partition || partitionOf(o.id, config.partition.count) === config.partition.index);
  return mine;
}

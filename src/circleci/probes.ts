import { configError } from '../errors.js';
import { slugPath } from '../slug-path.js';
import { HttpError, type CircleCIClient } from './client.js';

/** The two questions `check` asks CircleCI, and the messages for a "no". */

/** GET /me: false when the token is rejected. */
export async function tokenAccepted(client: CircleCIClient): Promise<boolean> {
  try {
    await client.get('/me');
    return true;
  } catch (e) {
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) return false;
    throw e;
  }
}

/** GET /project/{slug}: false when the project is missing or not accessible. */
export async function projectExists(client: CircleCIClient, slug: string): Promise<boolean> {
  try {
    await client.get(`/project/${slugPath(slug)}`);
    return true;
  } catch (e) {
    if (e instanceof HttpError && (e.status === 404 || e.status === 403)) return false;
    throw e;
  }
}

export const tokenRejected = () =>
  configError('CircleCI rejected the token (401 on GET /me). Create a personal API token in CircleCI (User Settings → Personal API Tokens) and put it in "token"; project tokens do not work with API v2.');

export const PROJECT_NOT_FOUND = 'project not found';

export const projectNotFound = (slug: string) =>
  configError(
    `Project "${slug}" was not found, or this token cannot access it (404 on GET /project/${slugPath(slug)}). Check the slug in "project_slugs" (copy it from the project settings in CircleCI) and that the token's user follows the project.`,
    PROJECT_NOT_FOUND,
  );

import { slugPath } from '../slug-path.js';
import { loadSchema, type StreamDeclaration } from './stream.js';

/** One record per configured project: the readable names behind circleci/<org-id>/<project-id> slugs. */
export const projects: StreamDeclaration = {
  name: 'projects',
  schema: loadSchema('projects'),
  primaryKey: ['id'],
  single: true,
  path: (ctx) => `/project/${slugPath(ctx.project)}`,
};

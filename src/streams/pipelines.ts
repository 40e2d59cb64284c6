import { slugPath } from '../slug-path.js';
import { loadSchema, type StreamDeclaration } from './stream.js';

export const pipelines: StreamDeclaration = {
  name: 'pipelines',
  schema: loadSchema('pipelines'),
  primaryKey: ['id'],
  cursorField: 'updated_at',
  contextKey: 'pipeline',
  path: (ctx) => `/project/${slugPath(ctx.project)}/pipeline`,
};

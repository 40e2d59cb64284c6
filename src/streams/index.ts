import { jobDetails } from './job-details.js';
import { jobs } from './jobs.js';
import { pipelines } from './pipelines.js';
import { projects } from './projects.js';
import type { StreamDeclaration } from './stream.js';
import { tests } from './tests.js';
import { usage } from './usage.js';
import { workflows } from './workflows.js';
import { workflowRuns } from './workflow-runs.js';
import { flakyTests } from './flaky-tests.js';

/** Every stream, parents before children. */
export const STREAMS: readonly StreamDeclaration[] = [projects, pipelines, workflows, jobs, jobDetails, tests, workflowRuns, flakyTests, usage];

/** The root of the tree the crawler walks: the pipeline list, newest first. */
export const TREE_ROOT: StreamDeclaration = pipelines;

export const streamByName = (name: string): StreamDeclaration | undefined => STREAMS.find((s) => s.name === name);

// The tree is fixed: its relations are worked out once (the crawler asks for each record it visits).
const CHILDREN = new Map(STREAMS.map((s) => [s.name, STREAMS.filter((c) => c.parent === s.name)]));
export const childrenOf = (name: string): StreamDeclaration[] => CHILDREN.get(name) ?? [];

const below = (s: StreamDeclaration): StreamDeclaration[] => [s, ...childrenOf(s.name).flatMap(below)];
const SUBTREE = new Map(STREAMS.map((s) => [s, below(s)]));
const TREE = new Set(below(TREE_ROOT));

/** A stream and everything below it. */
export const subtreeOf = (s: StreamDeclaration): StreamDeclaration[] => SUBTREE.get(s) ?? below(s);

/** Streams read per organization, outside the project crawl (usage). */
export const perOrganization = (s: StreamDeclaration): boolean => s.scope === 'organization';

/** Streams read while walking the pipeline list: they checkpoint per pipeline and can resume. */
export const inTree = (s: StreamDeclaration): boolean => TREE.has(s);


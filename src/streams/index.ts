import { jobs } from './jobs.js';
import { pipelines } from './pipelines.js';
import type { StreamDeclaration } from './stream.js';
import { workflows } from './workflows.js';

/** Every stream, parents before children. */
export const STREAMS: readonly StreamDeclaration[] = [pipelines, workflows, jobs];

export const streamByName = (name: string): StreamDeclaration | undefined => STREAMS.find((s) => s.name === name);

export const childrenOf = (name: string): StreamDeclaration[] => STREAMS.filter((s) => s.parent === name);

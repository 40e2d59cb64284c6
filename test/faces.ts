/**
 * The two faces as a test drives an incremental sync through them (the spawned CLIs), and the
 * check that what several syncs wrote, last write winning, equals the mock's ground truth.
 */
import { join } from 'node:path';
import {
  AIRBYTE_CLI, ROOT, TEST_TOKEN, byKey, configuredCatalog, lastStates, recordsOf, runCli, tempFiles, type Message, type StreamName,
} from './helpers.js';
import { invalidMessages } from './validate.js';

const SINGER_CLI = join(ROOT, 'dist/cli/singer.js');

export interface Face {
  name: string;
  cli: string;
  /** The arguments of one incremental sync of `streams` from `state` (files written to a temp folder). */
  args(config: unknown, state: unknown, streams: StreamName[]): Promise<string[]>;
  /** A stream's records among the messages of a run. */
  records(messages: Message[], stream: StreamName): Message[];
  /** The state a platform passes to the next sync after this run. */
  nextState(messages: Message[], previous: unknown): unknown;
  /** Runs one incremental sync of `streams` from the state the previous one left; its records and the next state. */
  sync(config: unknown, state: unknown, streams: StreamName[]): Promise<{ records: Record<string, Message[]>; state: unknown }>;
}

async function sync(face: Face, config: unknown, state: unknown, streams: StreamName[]) {
  const r = await runCli(face.cli, await face.args(config, state, streams));
  expect(r.code).toBe(0);
  if (face === airbyte) expect(invalidMessages(r.messages)).toEqual([]);
  return {
    records: Object.fromEntries(streams.map((s) => [s, face.records(r.messages, s)])),
    state: face.nextState(r.messages, state),
  };
}

export const airbyte: Face = {
  name: 'Airbyte (source-circleci read)',
  cli: AIRBYTE_CLI,
  async args(config, state, streams) {
    // projects is a full refresh only stream.
    const catalog = configuredCatalog(Object.fromEntries(streams.map((s) => [s, s === 'projects' ? 'full_refresh' : 'incremental'])));
    const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
    return ['read', '--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])];
  },
  records: (messages, stream) => recordsOf(messages, stream),
  nextState: (messages, previous) => lastStates(messages, (previous as Message[] | undefined) ?? []),
  sync: (config, state, streams) => sync(airbyte, config, state, streams),
};

let discovered: Message | undefined;
export const singer: Face = {
  name: 'Singer (tap-circleci)',
  cli: SINGER_CLI,
  async args(config, state, streams) {
    discovered ??= (await runCli(SINGER_CLI, ['--discover', '--config', tempFiles({ c: { token: TEST_TOKEN, project_slugs: ['gh/acme/api'] } }).c])).messages[0];
    const catalog = structuredClone(discovered!);
    for (const entry of catalog.streams) {
      const root = entry.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata;
      root.selected = streams.includes(entry.tap_stream_id);
    }
    const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
    return ['--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])];
  },
  records: (messages, stream) => messages.filter((m) => m.type === 'RECORD' && m.stream === stream).map((m) => m.record),
  nextState(messages, previous) {
    const states = messages.filter((m) => m.type === 'STATE');
    return states.length ? states[states.length - 1].value : previous;
  },
  sync: (config, state, streams) => sync(singer, config, state, streams),
};

/** The union, by key with the last write winning, equals the ground truth, field for field. */
export function expectUnionEqualsTruth(union: Record<string, Map<string, Message>>, truth: Record<string, unknown[]>, streams: StreamName[]) {
  for (const s of streams) {
    const expected = byKey(s, truth[s] as Message[]);
    const missing = [...expected.keys()].filter((k) => !union[s].has(k));
    expect({ s, missing }).toEqual({ s, missing: [] });
    expect(union[s].size).toBe(expected.size);
    for (const [k, v] of expected) expect({ s, k, record: union[s].get(k) }).toEqual({ s, k, record: v });
  }
}


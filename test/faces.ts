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
  /** Runs one incremental sync of `streams` from the state the previous one left; its records and the next state. */
  sync(config: unknown, state: unknown, streams: StreamName[]): Promise<{ records: Record<string, Message[]>; state: unknown }>;
  /** The CLI and arguments of such a sync, for a test that runs it itself. */
  command(config: unknown, state: unknown, streams: StreamName[]): Promise<{ cli: string; args: string[] }>;
  /** A sync's records and the state the next one starts from, out of its stdout. */
  parse(messages: Message[], state: unknown, streams: StreamName[]): { records: Record<string, Message[]>; state: unknown };
}

/** A sync through `face`: its command run to the end, exit 0. */
async function syncThrough(face: Face, config: unknown, state: unknown, streams: StreamName[]) {
  const { cli, args } = await face.command(config, state, streams);
  const r = await runCli(cli, args);
  expect(r.code).toBe(0);
  return face.parse(r.messages, state, streams);
}

export const airbyte: Face = {
  name: 'Airbyte (source-circleci read)',
  sync(config, state, streams) {
    return syncThrough(airbyte, config, state, streams);
  },
  async command(config, state, streams) {
    // projects is a full refresh only stream.
    const catalog = configuredCatalog(Object.fromEntries(streams.map((s) => [s, s === 'projects' ? 'full_refresh' : 'incremental'])));
    const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
    return { cli: AIRBYTE_CLI, args: ['read', '--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])] };
  },
  parse(messages, state, streams) {
    expect(invalidMessages(messages)).toEqual([]);
    return {
      records: Object.fromEntries(streams.map((s) => [s, recordsOf(messages, s)])),
      // A state in another shape (tap-circle-ci's) is replaced by the STATE messages of this sync.
      state: lastStates(messages, Array.isArray(state) ? (state as Message[]) : []),
    };
  },
};

let discovered: Message | undefined;
export const singer: Face = {
  name: 'Singer (tap-circleci)',
  sync(config, state, streams) {
    return syncThrough(singer, config, state, streams);
  },
  async command(config, state, streams) {
    discovered ??= (await runCli(SINGER_CLI, ['--discover', '--config', tempFiles({ c: { token: TEST_TOKEN, project_slugs: ['gh/acme/api'] } }).c])).messages[0];
    const catalog = structuredClone(discovered!);
    for (const entry of catalog.streams) {
      const root = entry.metadata.find((m: Message) => m.breadcrumb.length === 0).metadata;
      root.selected = streams.includes(entry.tap_stream_id);
    }
    const files = tempFiles({ config, catalog, ...(state ? { state } : {}) });
    return { cli: SINGER_CLI, args: ['--config', files.config, '--catalog', files.catalog, ...(state ? ['--state', files.state] : [])] };
  },
  parse(messages, state, streams) {
    const states = messages.filter((m) => m.type === 'STATE');
    return {
      records: Object.fromEntries(streams.map((s) => [s, messages.filter((m) => m.type === 'RECORD' && m.stream === s).map((m) => m.record)])),
      state: states.length ? states[states.length - 1].value : state,
    };
  },
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


import { parseAirbyteState } from '../src/protocol/airbyte-state.js';

const msg = (name: string, stream_state: unknown) => ({ type: 'STREAM', stream: { stream_descriptor: { name }, stream_state } });

describe('Airbyte state parsing', () => {
  test('an array of STREAM messages, slugs normalised, timestamps canonical', () => {
    const state = parseAirbyteState([
      msg('pipelines', { 'github/acme/api': { updated_at: '2026-01-01T00:00:00Z' } }),
      msg('workflows', { 'gh/acme/api': { created_at: '2026-01-02T00:00:00.000Z', rescan_from: '2025-12-30T00:00:00Z' } }),
    ]);
    expect(state).toEqual({
      pipelines: { 'gh/acme/api': { updated_at: '2026-01-01T00:00:00.000Z' } },
      workflows: { 'gh/acme/api': { created_at: '2026-01-02T00:00:00.000Z', rescan_from: '2025-12-30T00:00:00.000Z' } },
    });
  });

  test('a single message and a legacy blob are accepted too', () => {
    expect(parseAirbyteState(msg('pipelines', {}))).toEqual({ pipelines: {} });
    expect(parseAirbyteState({ pipelines: { 'gh/a/b': { updated_at: '2026-01-01T00:00:00Z' } } })).toEqual({
      pipelines: { 'gh/a/b': { updated_at: '2026-01-01T00:00:00.000Z' } },
    });
    expect(parseAirbyteState([])).toEqual({});
  });

  test.each([
    ['a number', 42, /JSON array of STREAM state messages/],
    ['a LEGACY message', [{ type: 'LEGACY', data: {} }], /type LEGACY/],
    ['a message without a stream', [{ type: 'STREAM' }], /not a STREAM state/],
    ['a cursor that is not a date', [msg('pipelines', { 'gh/a/b': { updated_at: 'soon' } })], /updated_at = "soon", which is not a date-time/],
    ['a project value that is not an object', [msg('pipelines', { 'gh/a/b': '2026-01-01' })], /must be an object/],
  ])('%s is a config error that says how to fix it', (_n, raw, pattern) => {
    expect(() => parseAirbyteState(raw)).toThrow(pattern);
    expect(() => parseAirbyteState(raw)).toThrow(/Fix or remove the state file/);
  });
});

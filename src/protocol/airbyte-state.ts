import { configError } from '../errors.js';
import { STREAMS, streamByName } from '../streams/index.js';
import { parseStreamState, type SyncState } from '../sync/state.js';
import { migrateTapCircleCiState } from './tap-circle-ci-state.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const FIX = 'Fix or remove the state file (a sync without state starts again from start_date).';

/**
 * Airbyte state: an array of STREAM state messages (what the platform and CAT pass), a single
 * such message, a legacy blob keyed by stream name, or tap-circle-ci's state. Unknown streams
 * are kept, unused.
 */
export function parseAirbyteState(raw: unknown, note?: (message: string) => void): SyncState {
  if (raw === null || raw === undefined) return {};
  // tap-circle-ci's state file, so its users switch without a full re-sync.
  const peer = migrateTapCircleCiState(raw, note);
  if (peer) return peer;
  const messages = Array.isArray(raw) ? raw : isObject(raw) && 'type' in raw ? [raw] : undefined;
  const state: SyncState = {};
  if (!messages) {
    if (!isObject(raw)) throw configError(`The state file must hold a JSON array of STREAM state messages. ${FIX}`);
    const keys = Object.keys(raw);
    // A legacy blob is keyed by stream; anything else (a Singer STATE, another connector's state) is not ours.
    if (keys.length && !keys.some((k) => streamByName(k))) {
      throw configError(
        `The state file is not a state of this source: it names no stream of it (${keys.slice(0, 5).join(', ')}). ` +
          `Expected an array of STREAM state messages for ${STREAMS.map((s) => s.name).join(', ')}. ${FIX}`,
      );
    }
    for (const [name, value] of Object.entries(raw)) if (streamByName(name)) state[name] = parseStreamState(name, value, 'legacy state');
    return state;
  }
  for (const [i, m] of messages.entries()) {
    if (!isObject(m)) throw configError(`State message ${i + 1} is not an object. ${FIX}`);
    // A line copied from read's output: the platform passes what is inside it.
    if (m.type === 'STATE' && isObject(m.state)) {
      throw configError(
        `State message ${i + 1} is a whole STATE line as read prints it ({"type": "STATE", "state": {...}}). ` +
          'Pass a JSON array of their "state" objects instead, the last one of each stream: ' +
          `jq -s '[.[] | select(.type=="STATE") | .state] | group_by(.stream.stream_descriptor.name) | map(last)' messages.jsonl > state.json`,
      );
    }
    if (m.type === 'GLOBAL' || m.type === 'LEGACY') {
      throw configError(`State message ${i + 1} is of type ${String(m.type)}; source-circleci keeps per-stream (STREAM) state. ${FIX}`);
    }
    const stream = isObject(m.stream) ? m.stream : undefined;
    const name = isObject(stream?.stream_descriptor) ? stream.stream_descriptor.name : undefined;
    if (m.type !== 'STREAM' || typeof name !== 'string') {
      throw configError(`State message ${i + 1} is not a STREAM state ({"type": "STREAM", "stream": {"stream_descriptor": {"name": ...}, "stream_state": {...}}}). ${FIX}`);
    }
    state[name] = parseStreamState(name, stream?.stream_state ?? {}, `state message ${i + 1}`);
  }
  return state;
}

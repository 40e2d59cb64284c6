/**
 * The Airbyte face run in this process: the command logic of `source-circleci` (src/cli/airbyte.ts
 * `execute`) with its stdout captured. For the many cases whose output contract one spawned run
 * per face already proves (exit code, stdout holding only messages); the token must not appear.
 */
import { Writable } from 'node:stream';
import { execute } from '../src/cli/airbyte.js';
import { Output } from '../src/protocol/output.js';
import { TEST_TOKEN, parseLines, type Message } from './helpers.js';

export interface InProcessResult {
  /** The exit code the spawned CLI would end with (0 or 1). */
  code: number;
  stdout: string;
  messages: Message[];
}

function sink(into: string[]): Writable {
  return new Writable({
    write(chunk, _encoding, done) {
      into.push(String(chunk));
      done();
    },
  });
}

export async function airbyteInProcess(argv: string[]): Promise<InProcessResult> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await execute(argv, new Output(sink(stdout), sink(stderr)), new AbortController().signal);
  const out = stdout.join('');
  if (out.includes(TEST_TOKEN) || stderr.join('').includes(TEST_TOKEN)) throw new Error(`the token leaked into the output of: ${argv.join(' ')}`);
  return { code, stdout: out, messages: parseLines(out) };
}

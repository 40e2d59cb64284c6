/**
 * How a sync ends when the terminal or the platform stops it, or stops listening to its logs
 * (issue #17 item 6): SIGINT (Ctrl-C, an interrupted `meltano run`) is handled as SIGTERM is,
 * a checkpoint of what is complete and then a death by the signal, and a stderr its reader closed
 * does not stop the data on stdout. Both faces, spawned against the mock on 127.0.0.1.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { airbyte, expectUnionEqualsTruth, singer, type Face } from './faces.js';
import { TEST_TOKEN, byKey, parseLines, runCli, type Message, type StreamName } from './helpers.js';

const DAY = 86_400_000;
const STREAMS: StreamName[] = ['pipelines', 'workflows', 'jobs'];
const SLUG = 'gh/acme/api';

let world: World;
let startDate: Date;
let mock: MockServer;

beforeAll(async () => {
  world = new World({ seed: 17, historyDays: 10, pipelinesPerDay: 6, projects: [SLUG] });
  startDate = new Date(world.now().getTime() - 10 * DAY);
  mock = await startMockServer({ world, token: TEST_TOKEN });
});
afterAll(() => mock.close());

const configFor = (baseUrl: string) => ({ token: TEST_TOKEN, project_slugs: [SLUG], start_date: startDate.toISOString(), base_url: baseUrl });

/**
 * A loopback server in front of the mock that forwards the first `passed` requests, then answers
 * every other one 429 "come back in 10 minutes" and calls `onHold` once: the sync is stuck
 * mid-read, which is when a person presses Ctrl-C.
 */
async function stallAfter(passed: number, onHold: () => void) {
  let n = 0;
  const server = http.createServer((req, res) => {
    if (++n <= passed) {
      const up = http.request(`http://127.0.0.1:${mock.port}${req.url}`, { headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end();
      return;
    }
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '600' });
    res.end('{"message":"Rate limit exceeded."}');
    if (n === passed + 1) onHold();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const truth = () => world.groundTruth(startDate) as unknown as Record<string, unknown[]>;

describe('SIGINT mid-read (Ctrl-C) is a clean stop, as SIGTERM is', () => {
  test.each([
    { name: airbyte.name, face: airbyte, checkpoint: (messages: Message[]) => {
      // The stop is said on stdout, then each stream's last checkpoint marks the pipelines completed.
      const stopAt = messages.findIndex((m) => m.type === 'LOG' && /Received SIGINT: stopping/.test(m.log.message));
      expect(stopAt).toBeGreaterThan(-1);
      const after = messages.slice(stopAt).filter((m) => m.type === 'STATE');
      expect(after.map((m) => m.state.stream.stream_descriptor.name).sort()).toEqual([...STREAMS].sort());
      expect(after.every((m) => m.state.stream.stream_state[SLUG]?.resume)).toBe(true);
    } },
    { name: singer.name, face: singer, checkpoint: (messages: Message[], stderr: string) => {
      // The stop is said on stderr; the last STATE marks, for each stream, the pipelines completed.
      expect(stderr).toMatch(/Received SIGINT: stopping/);
      const last = messages.filter((m) => m.type === 'STATE').pop();
      for (const s of STREAMS) {
        const partition = last?.value.bookmarks[s]?.partitions.find((p: Message) => p.context.project_slug === SLUG);
        expect({ s, resume: !!partition?.resume }).toEqual({ s, resume: true });
      }
    } },
  ] as Array<{ name: string; face: Face; checkpoint: (messages: Message[], stderr: string) => void }>)('$name: a checkpoint, death by SIGINT, and a resumed sync completes', async ({ face, checkpoint }) => {
    let child: { kill(sig: NodeJS.Signals): boolean } | undefined;
    let interrupted = false;
    const front = await stallAfter(40, () => {
      interrupted = true;
      child?.kill('SIGINT');
    });
    try {
      const { cli, args } = await face.command(configFor(front.baseUrl), undefined, STREAMS);
      // Real back-off: the sync would wait the 10 minutes the 429 asks for.
      const r = await runCli(cli, args, { env: { SOURCE_CIRCLECI_BACKOFF_SCALE: '1' }, timeoutMs: 30_000, onSpawn: (c) => (child = c) });
      expect(interrupted).toBe(true);
      // Died by the signal, as a shell or Meltano expects of an interrupted process.
      expect({ signal: r.signal, code: r.code }).toEqual({ signal: 'SIGINT', code: null });
      checkpoint(r.messages, r.stderr);
      // (parse also checks every Airbyte message against the protocol.)
      const stopped = face.parse(r.messages, undefined, STREAMS);
      expect(r.stderr).not.toMatch(/\n\s+at /);

      // The next sync, from the state the interrupted one left, completes; together they hold everything.
      const resumed = await face.sync(configFor(mock.baseUrl), stopped.state, STREAMS);
      const union = Object.fromEntries(STREAMS.map((s) => [s, byKey(s, [...stopped.records[s], ...resumed.records[s]])]));
      expectUnionEqualsTruth(union, truth(), STREAMS);
    } finally {
      await front.close();
    }
  });
});

describe('a stderr closed by its reader', () => {
  test.each([airbyte, singer])('$name finishes the read: exit 0 and every record on stdout', async (face) => {
    const { cli, args } = await face.command(configFor(mock.baseUrl), undefined, STREAMS);
    const r = await runCli(cli, args, { timeoutMs: 30_000, onSpawn: (c) => c.stderr.destroy() });
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    expect(r.stdout.endsWith('\n')).toBe(true);
    parseLines(r.stdout);
    const { records } = face.parse(r.messages, undefined, STREAMS);
    const union = Object.fromEntries(STREAMS.map((s) => [s, byKey(s, records[s])]));
    expectUnionEqualsTruth(union, truth(), STREAMS);
  });
});

import { spawnSync } from 'node:child_process';
import { startMockServer, type MockServer } from '../mock/server.js';
import { World } from '../mock/world.js';
import { AIRBYTE_CLI, ALL_FULL, TEST_TOKEN, runCommand, tempFiles } from './helpers.js';

/** A person at a terminal sees a live progress line on stderr; a pipe gets none. */

/**
 * `script` runs a command on a pseudo-terminal (Node cannot open one itself). util-linux's (Linux)
 * and BSD's (macOS) take the command differently; without either, the terminal case cannot run.
 */
function scriptArgs(command: string): string[] | undefined {
  const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
  if (probe.error) return undefined;
  if (/util-linux/.test(probe.stdout + probe.stderr)) return ['-qec', command, '/dev/null'];
  return ['-q', '/dev/null', 'sh', '-c', command];
}
const TERMINAL = scriptArgs('true');

let mock: MockServer;
let world: World;
beforeAll(async () => {
  world = new World({ seed: 5, historyDays: 20, pipelinesPerDay: 4, projects: ['gh/acme/api'] });
  mock = await startMockServer({ world, token: TEST_TOKEN, latencyMs: 40 });
});
afterAll(() => mock.close());

const files = () =>
  tempFiles({
    config: { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: new Date(world.now().getTime() - 10 * 86_400_000).toISOString(), base_url: mock.baseUrl },
    catalog: ALL_FULL,
  });

(TERMINAL ? test : test.skip)(`on a terminal, stderr shows a live progress line that is cleared at the end${TERMINAL ? '' : ' (skipped: no `script` command to open a pseudo-terminal; install util-linux)'}`, async () => {
  const f = files();
  // The CLI runs on a pseudo-terminal; stdout is sent to /dev/null so that only stderr reaches it.
  const r = await runCommand('script', scriptArgs(`${process.execPath} ${AIRBYTE_CLI} read --config ${f.config} --catalog ${f.catalog} > /dev/null`)!);
  expect(r.code).toBe(0);
  expect(r.stdout).not.toContain(TEST_TOKEN);
  expect(r.stdout).toMatch(/\r\x1b\[Kpipelines \d+ · workflows \d+ · jobs \d+ · \d+ requests \(\d+\/s, \d+ in flight max\) · \d+ s/);
  expect(r.stdout.endsWith('\r\x1b[K')).toBe(true);
});

test('when stderr is not a terminal, no progress line is written', async () => {
  const f = files();
  const r = await runCommand(process.execPath, [AIRBYTE_CLI, 'read', '--config', f.config, '--catalog', f.catalog]);
  expect(r.code).toBe(0);
  expect(r.stderr).not.toMatch(/\x1b\[K/);
});

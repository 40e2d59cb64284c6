import { spawn } from 'node:child_process';
import { startMockServer, type MockServer } from '../src/mock/server.js';
import { World } from '../src/mock/world.js';
import { AIRBYTE_CLI, ALL_FULL, TEST_TOKEN, tempFiles } from './helpers.js';

/** A person at a terminal sees a live progress line on stderr; a pipe gets none. */

let mock: MockServer;
let world: World;
beforeAll(async () => {
  world = new World({ seed: 5, historyDays: 20, pipelinesPerDay: 4, projects: ['gh/acme/api'] });
  mock = await startMockServer({ world, token: TEST_TOKEN, latencyMs: 40 });
});
afterAll(() => mock.close());

/** Runs a command to its end without blocking this process (the mock answers from here). */
function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const files = () =>
  tempFiles({
    config: { token: TEST_TOKEN, project_slugs: world.projectSlugs(), start_date: new Date(world.now().getTime() - 10 * 86_400_000).toISOString(), base_url: mock.baseUrl },
    catalog: ALL_FULL,
  });

test('on a terminal, stderr shows a live progress line that is cleared at the end', async () => {
  const f = files();
  // util-linux `script` runs the CLI on a pseudo-terminal; stdout is sent to a file so that only
  // stderr reaches the terminal.
  const r = await run('script', ['-qec', `${process.execPath} ${AIRBYTE_CLI} read --config ${f.config} --catalog ${f.catalog} > /dev/null`, '/dev/null']);
  expect(r.status).toBe(0);
  expect(r.stdout).not.toContain(TEST_TOKEN);
  expect(r.stdout).toMatch(/\r\x1b\[Kpipelines \d+ · workflows \d+ · jobs \d+ · \d+ requests \(\d+\/s, \d+ in flight max\) · \d+ s/);
  expect(r.stdout.endsWith('\r\x1b[K')).toBe(true);
});

test('when stderr is not a terminal, no progress line is written', async () => {
  const f = files();
  const r = await run(process.execPath, [AIRBYTE_CLI, 'read', '--config', f.config, '--catalog', f.catalog]);
  expect(r.status).toBe(0);
  expect(r.stderr).not.toMatch(/\x1b\[K/);
});

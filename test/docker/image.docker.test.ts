/**
 * The image's contract (`npm run test:docker`; needs an engine and `npm run docker:build`):
 * labels, entrypoint, user and /airbyte; what the build context and the final image hold;
 * spec/check/discover/read print the same lines as the local CLI with inputs mounted read-only;
 * `docker stop` during a read ends it within seconds with the last checkpoint flushed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import YAML from 'yaml';
import {
  ImageConnector, LocalConnector, ROOT, assembleState, checkImageEntrypoint, checkImageLabels, checkProtocol, inspectImage, loadTestConfig, parseOutput,
  recordsOf, startAcceptanceMock, statesOf, type AcceptanceMock, type Command, type Inputs, type Json, type Message,
} from './acceptance.js';

const IMAGE = process.env.ACCEPTANCE_IMAGE || loadTestConfig().connector_image;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const metadata = YAML.parse(readFileSync(join(ROOT, 'metadata.yaml'), 'utf8'));
// The base every stage is built FROM; the Node major it pins is the one the image must run.
const FROMS = [...readFileSync(join(ROOT, 'Dockerfile'), 'utf8').matchAll(/^FROM\s+(\S+)/gim)].map((m) => m[1]);
const BASE = FROMS[FROMS.length - 1];
const NODE_MAJOR = 24;

const docker = (args: string[], input?: string) => {
  const r = spawnSync('docker', args, { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
};
/** A shell in the image, as its own user. */
const sh = (script: string, extra: string[] = []) => docker(['run', '--rm', ...extra, '--entrypoint', '/bin/sh', IMAGE, '-c', script]);

let mock: AcceptanceMock;

beforeAll(async () => {
  inspectImage(IMAGE); // fails early, saying how to build it
  mock = await startAcceptanceMock();
});

afterAll(async () => {
  await mock?.close();
});

describe('image metadata', () => {
  test('labels: io.airbyte.name = metadata dockerRepository, io.airbyte.version = metadata dockerImageTag = package.json version', () => {
    const info = inspectImage(IMAGE);
    expect(checkImageLabels(info, metadata)).toEqual([]);
    expect(info.labels['io.airbyte.version']).toBe(pkg.version);
  });

  test('ENTRYPOINT absolute, AIRBYTE_ENTRYPOINT equal to it, user airbyte, amd64', () => {
    const info = inspectImage(IMAGE);
    expect(checkImageEntrypoint(info)).toEqual([]);
    expect(info.entrypoint).toEqual(['/airbyte/integration_code/dist/cli/airbyte.js']);
    expect(info.env.AIRBYTE_ENTRYPOINT).toBe(info.entrypoint.join(' '));
    expect(info.architecture).toBe('amd64');
  });

  test('the container runs as the non-root user airbyte, who owns and can write /airbyte; the code is read-only to it', () => {
    const lines = sh('id -un; id -u; stat -c %U /airbyte; touch /airbyte/probe && echo writable; touch /airbyte/integration_code/dist/probe 2>/dev/null || echo code-read-only').trim().split('\n');
    expect(lines[0]).toBe('airbyte');
    expect(Number(lines[1])).toBeGreaterThan(0);
    expect(lines.slice(2)).toEqual(['airbyte', 'writable', 'code-read-only']);
  });

  test('the final image holds the built code and production dependencies only', () => {
    const [top, modules] = sh('ls -A /airbyte/integration_code; echo ---; ls -A /airbyte/integration_code/node_modules').split('---\n');
    expect(top.trim().split('\n').sort()).toEqual(['dist', 'node_modules', 'package.json', 'schemas', 'spec.json']);
    const installed = modules.trim().split('\n');
    for (const dep of Object.keys(pkg.dependencies)) expect(installed).toContain(dep);
    for (const dev of Object.keys(pkg.devDependencies)) expect({ dev, installed: installed.includes(dev.split('/')[0]) }).toEqual({ dev, installed: false });
    // No scope folder of a dev tool left behind, and no TypeScript sources or tests.
    expect(installed.filter((d) => ['@types', '@jest', '@babel'].includes(d))).toEqual([]);
    expect(sh('find /airbyte/integration_code -path "*/node_modules" -prune -o \\( -name "*.ts" -o -name "*.test.*" \\) -print').trim()).toBe('');
    // The mock CircleCI API is a test tool: not shipped (npm run demo, the tests and the bench build it into dist-dev/).
    expect(sh('ls /airbyte/integration_code/dist').trim().split('\n')).not.toContain('mock');
    expect(installed).not.toContain('ajv-formats');
  });
});

describe('Node.js in the image', () => {
  test(`every stage is FROM node:${NODE_MAJOR}-bookworm-slim and the image runs Node ${NODE_MAJOR} (an LTS line with security fixes)`, () => {
    expect(FROMS.length).toBeGreaterThanOrEqual(2);
    for (const from of FROMS) expect(from).toMatch(new RegExp(`^node:${NODE_MAJOR}-bookworm-slim\\b`));
    const version = docker(['run', '--rm', '--entrypoint', 'node', IMAGE, '--version']).trim();
    expect(version).toMatch(new RegExp(`^v${NODE_MAJOR}\\.\\d+\\.\\d+$`));
    // package.json's engines admits the Node the image runs.
    const min = Number(/>=\s*(\d+)/.exec(pkg.engines.node)?.[1]);
    expect(min).toBeLessThanOrEqual(NODE_MAJOR);
  });
});

describe('.dockerignore', () => {
  /** Builds `FROM base; COPY . /ctx` from a context folder and lists what arrived. */
  function contextOf(dir: string): string[] {
    const tag = `source-circleci-context-probe:${randomBytes(4).toString('hex')}`;
    docker(['build', '-q', '-t', tag, '-f', '-', dir], `FROM ${BASE}\nCOPY . /ctx\n`);
    try {
      return docker(['run', '--rm', '--entrypoint', 'find', tag, '/ctx', '-mindepth', '1']).trim().split('\n').filter(Boolean).map((p) => p.slice('/ctx/'.length)).sort();
    } finally {
      spawnSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
    }
  }

  test('a context with node_modules, tests, secrets and git data sends only the build inputs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dockerignore-'));
    const files = [
      'package.json', 'package-lock.json', 'tsconfig.json', 'spec.json', 'schemas/jobs.json', 'src/cli/airbyte.ts', 'scripts/gen-types.mjs',
      // Everything below must stay out.
      'node_modules/jest/index.js', 'dist/cli/airbyte.js', 'test/e2e.test.ts', 'test/docker/acceptance.ts', 'secrets/config.json', '.git/HEAD', '.git/config',
      '.env', '.env.local', 'src/.env', 'src/secrets/token.json', 'integration_tests/sample_config.json', 'coverage/lcov.info', 'npm-debug.log', '.ci/run',
      'scripts/acceptance-fixtures.mjs', 'README.md', 'bench/run.mjs',
    ];
    for (const f of files) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), 'x');
    }
    copyFileSync(join(ROOT, '.dockerignore'), join(dir, '.dockerignore'));
    const sent = contextOf(dir).filter((p) => !['schemas', 'src', 'src/cli', 'scripts'].includes(p));
    expect(sent).toEqual(['package-lock.json', 'package.json', 'schemas/jobs.json', 'scripts/gen-types.mjs', 'spec.json', 'src/cli/airbyte.ts', 'tsconfig.json']);
    rmSync(dir, { recursive: true, force: true });
  });

  test("this checkout's context holds no node_modules, dist, tests, secrets or git data", () => {
    const sent = contextOf(ROOT);
    const top = [...new Set(sent.map((p) => p.split('/')[0]))].sort();
    expect(top.every((t) => ['package-lock.json', 'package.json', 'schemas', 'scripts', 'spec.json', 'src', 'tsconfig.json'].includes(t))).toBe(true);
    expect(sent.filter((p) => /(^|\/)(node_modules|dist|test|secrets|\.git|\.env)(\/|$)/.test(p))).toEqual([]);
  });
});

// =================================================================================================

/** Usage export bookkeeping that depends on the moment and on the mock's job ids, masked. */
const USAGE_VOLATILE = new Set(['pending_job', 'pending_created', 'creates', 'create_after']);
function maskUsageState(state: Record<string, Record<string, unknown>> | undefined): unknown {
  return Object.fromEntries(Object.entries(state ?? {}).map(([org, s]) => [org, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, USAGE_VOLATILE.has(k) ? '<volatile>' : v]))]));
}
/**
 * Lines without emitted_at, with wall-clock durations in LOG text masked: what must be identical.
 * Insights and usage are read beside the pipeline walk (usage waiting on exports in wall time), so
 * the interleaving of lines, and the checkpoints taken along the way, depend on timing: the lines
 * are compared as a multiset (export job ids and create times masked), the states as the final ones.
 */
function comparable(messages: Message[]): string[] {
  const line = (m: Message) => {
    const c = structuredClone(m);
    if (c.record) delete c.record.emitted_at;
    if (c.trace) delete c.trace.emitted_at;
    if (c.type === 'LOG') c.log.message = c.log.message.replace(/\d+(\.\d+)? m?s\b/g, '<t>').replace(/\(job [0-9a-f-]{36}\)/g, '(job <id>)');
    return JSON.stringify(c);
  };
  return [...messages.filter((m) => m.type !== 'STATE').map(line).sort(), ...finalStates(messages).map(canonical)];
}

/** JSON with every object's keys sorted: states built in different orders compare equal. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));

/** The final states, usage's bookkeeping masked. */
const finalStates = (messages: Message[]): Message[] =>
  assembleState(messages).map((st: Message) => (st.stream?.stream_descriptor?.name === 'usage' ? { ...st, stream: { ...st.stream, stream_state: maskUsageState(st.stream.stream_state) } } : st));

describe('the image prints what the local CLI prints (inputs mounted read-only at /secrets, --network host)', () => {
  const local = new LocalConnector();
  const image = new ImageConnector(IMAGE);
  const catalog = JSON.parse(readFileSync(join(ROOT, 'integration_tests/configured_catalog.json'), 'utf8'));
  const incremental = JSON.parse(readFileSync(join(ROOT, 'integration_tests/incremental_catalog.json'), 'utf8'));
  const sampleState = JSON.parse(readFileSync(join(ROOT, 'integration_tests/sample_state.json'), 'utf8'));
  // One request at a time: the pipeline walk's lines come in a fixed order.
  const config = () => ({ ...mock.secretsConfig, max_concurrency: 1 });
  const cases: Array<[string, Command, () => Inputs]> = [
    ['spec', 'spec', () => ({})],
    ['check (good token)', 'check', () => ({ config: config() })],
    ['check (bad token)', 'check', () => ({ config: { ...config(), token: 'not-the-token' } })],
    ['discover', 'discover', () => ({ config: config() })],
    ['read (every stream, full refresh)', 'read', () => ({ config: config(), catalog })],
    ['read (incremental, from sample_state.json)', 'read', () => ({ config: config(), catalog: incremental, state: sampleState })],
    ['read (a bogus catalog: TRACE ERROR, exit 1)', 'read', () => ({ config: config(), catalog: { streams: [{ stream: { name: 'nope', json_schema: {}, supported_sync_modes: ['full_refresh'] }, sync_mode: 'INVALID', destination_sync_mode: 'append' }] } })],
  ];
  test.each(cases)('%s', async (_, command, inputs) => {
    const [a, b] = await Promise.all([local.run(command, inputs()), image.run(command, inputs())]);
    expect(b.code).toBe(a.code);
    expect(checkProtocol(b, [mock.env.token])).toEqual([]);
    expect(comparable(b.messages)).toEqual(comparable(a.messages));
    expect(b.messages.length).toBeGreaterThan(0);
  });

  test('with the default concurrency the records and final states are the same', async () => {
    const inputs = { config: mock.secretsConfig, catalog };
    const [a, b] = await Promise.all([local.run('read', inputs), image.run('read', inputs)]);
    expect(b.code).toBe(0);
    const sorted = (ms: Message[]) => recordsOf(ms).map((r) => JSON.stringify({ s: r.stream, d: r.data })).sort();
    expect(sorted(b.messages)).toEqual(sorted(a.messages));
    expect(finalStates(b.messages).map(canonical)).toEqual(finalStates(a.messages).map(canonical));
  });

  test('a read-only root file system and no capabilities are enough: the connector writes nowhere', async () => {
    const locked = new ImageConnector(IMAGE, ['--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges']);
    const r = await locked.run('read', { config: mock.secretsConfig, catalog });
    expect(r.code).toBe(0);
    expect(recordsOf(r.messages).length).toBeGreaterThan(0);
  });

  test('the mounts really are read-only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ro-'));
    chmodSync(dir, 0o777);
    const out = sh('touch /secrets/x 2>&1 || echo refused', ['-v', `${dir}:/secrets:ro`]);
    expect(out).toMatch(/Read-only file system|refused/);
    rmSync(dir, { recursive: true, force: true });
  });
});

// =================================================================================================

describe('docker stop during a read', () => {
  test('ends it within seconds, exit 143, every line complete, and the last checkpoint resumes the sync', async () => {
    // 250 ms a request, two at a time: a full read would take about 20 s.
    const slow = await startAcceptanceMock({ latencyMs: 250 });
    const dir = mkdtempSync(join(tmpdir(), 'stop-'));
    chmodSync(dir, 0o755);
    // The three streams of the pipeline walk: with job_details and tests too, the first project
    // takes every request slot for half a minute (its pipelines were listed first) and the others
    // have no pipeline complete, so nothing to checkpoint, when the stop comes.
    const catalog = JSON.parse(readFileSync(join(ROOT, 'integration_tests/configured_catalog.json'), 'utf8'));
    catalog.streams = catalog.streams.filter((e: Json) => ['pipelines', 'workflows', 'jobs'].includes(e.stream.name));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...slow.secretsConfig, max_concurrency: 2 }), { mode: 0o644 });
    writeFileSync(join(dir, 'catalog.json'), JSON.stringify(catalog), { mode: 0o644 });
    const name = `source-circleci-stop-${randomBytes(4).toString('hex')}`;
    try {
      const child = spawn('docker', ['run', '--rm', '--name', name, '--network', 'host', '-v', `${dir}:/secrets:ro`, IMAGE, 'read', '--config', '/secrets/config.json', '--catalog', '/secrets/catalog.json'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let stopMs = 0;
      let stopRequested = false;
      let stopDone: Promise<void> = Promise.resolve();
      const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        // Stop once a checkpoint is out and the sync is well under way.
        if (!stopRequested && statesOf(parseOutput('read', stdout.slice(0, stdout.lastIndexOf('\n') + 1), '', null, 0).messages).length >= 2) {
          stopRequested = true;
          const t = Date.now();
          const stop = spawn('docker', ['stop', '-t', '20', name], { stdio: 'ignore' });
          stopDone = new Promise((resolve) => stop.on('close', () => resolve(void (stopMs = Date.now() - t))));
        }
      });
      const code = await closed;
      // docker stop returns once the container is gone: wait for it rather than for a while.
      await stopDone;
      expect(stopRequested).toBe(true);
      // Within seconds: well inside docker stop's 20 s grace period, so SIGTERM did it, not SIGKILL.
      expect(stopMs).toBeGreaterThan(0);
      expect(stopMs).toBeLessThan(5000);
      expect({ code, stderr: code === 143 ? '' : stderr }).toEqual({ code: 143, stderr: '' });
      expect(stdout.endsWith('\n')).toBe(true);
      const out = parseOutput('read', stdout, stderr, code, 0);
      expect(out.nonJson).toEqual([]); // the last line is complete JSON, like every other
      expect(checkProtocol(out, [slow.env.token])).toEqual([]);
      // It said so, and checkpointed what the interrupted projects had completed after that.
      const warned = out.messages.findIndex((m) => m.type === 'LOG' && m.log.level === 'WARN' && /SIGTERM/.test(m.log.message));
      expect(warned).toBeGreaterThan(0);
      expect(statesOf(out.messages.slice(warned)).length).toBeGreaterThan(0);
      // It was stopped mid-way: not every expected record came out.
      const expectedLines = readFileSync(join(ROOT, 'integration_tests/expected_records.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const expected = expectedLines.filter((l) => catalog.streams.some((e: Json) => e.stream.name === l.stream)).length;
      const firstRecords = recordsOf(out.messages);
      expect(firstRecords.length).toBeLessThan(expected);
      const stopped = assembleState(out.messages);
      expect(stopped.length).toBeGreaterThan(0);
      console.info(`docker stop took ${stopMs} ms; ${firstRecords.length} of ${expected} records and ${statesOf(out.messages).length} STATE messages before it`);

      // The flushed checkpoints are valid state: a second sync from them finishes, and the two
      // syncs together hold every record (per stream: full-refresh jobs resume too).
      const resumed = await new ImageConnector(IMAGE).run('read', { config: mock.secretsConfig, catalog, state: stopped });
      expect(resumed.code).toBe(0);
      const keyOf = (r: Json) => `${r.stream}|${r.data.id}|${r.data._workflow_id ?? ''}`;
      const union = new Set([...firstRecords, ...recordsOf(resumed.messages)].map(keyOf));
      const want = expectedLines.filter((l) => catalog.streams.some((e: Json) => e.stream.name === l.stream)).map(keyOf);
      expect(want.filter((k) => !union.has(k))).toEqual([]);
    } finally {
      spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
      await slow.close();
    }
  });
});

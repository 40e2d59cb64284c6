import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const AIRBYTE_CLI = join(ROOT, 'dist/cli/airbyte.js');
/** The token every test uses; every spawned CLI's stdout and stderr is searched for it. */
export const TEST_TOKEN = 'test-token-0123456789abcdef';

export type Message = Record<string, any>;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed line by line; a line that is not JSON fails the test here. */
  messages: Message[];
}

export function parseLines(stdout: string): Message[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        throw new Error(`stdout line is not JSON: ${l.slice(0, 200)}`);
      }
    });
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Then the child is killed with SIGKILL (and the test sees signal SIGKILL); default 100 s. */
  timeoutMs?: number;
  onStdoutLine?: (line: string, kill: (sig: NodeJS.Signals) => void) => void;
  /** Called once the child is spawned, e.g. to signal it from elsewhere or close its stderr. */
  onSpawn?: (child: ChildProcessByStdio<null, Readable, Readable>) => void;
}

export function runCli(cli: string, args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, SOURCE_CIRCLECI_BACKOFF_SCALE: '0.01', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    let partial = '';
    const kill = (sig: NodeJS.Signals) => child.kill(sig);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (opts.onStdoutLine) {
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) opts.onStdoutLine(l, kill);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 100_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // The token must appear in no output of any run, on any path.
      if (stdout.includes(TEST_TOKEN) || stderr.includes(TEST_TOKEN)) {
        reject(new Error(`the token leaked into the output of: ${args.join(' ')}`));
        return;
      }
      try {
        resolve({ code, signal, stdout, stderr, messages: parseLines(stdout) });
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Any command run to its end, stdout as text (help, version, a pseudo-terminal); the token must not appear. */
export function runCommand(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (stdout.includes(TEST_TOKEN) || stderr.includes(TEST_TOKEN)) reject(new Error(`the token leaked into the output of: ${cmd} ${args.join(' ')}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** Writes JSON files into a fresh temp folder and returns their paths. */
export function tempFiles(files: Record<string, unknown>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'source-circleci-'));
  const paths: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    paths[name] = join(dir, `${name}.json`);
    writeFileSync(paths[name], typeof content === 'string' ? content : JSON.stringify(content));
  }
  return paths;
}

export type Mode = 'full_refresh' | 'incremental';

export type StreamName = 'projects' | 'pipelines' | 'workflows' | 'jobs' | 'job_details' | 'tests' | 'workflow_runs' | 'flaky_tests';

const CURSORS: Record<string, string> = { pipelines: 'updated_at', workflows: 'created_at', jobs: '_workflow_created_at', job_details: '_workflow_created_at', tests: '_workflow_created_at', workflow_runs: 'created_at' };
/** Each stream's primary key, as the README documents it. */
export const KEYS: Record<StreamName, string[]> = {
  projects: ['id'],
  pipelines: ['id'],
  workflows: ['id'],
  jobs: ['id', '_workflow_id'],
  job_details: ['_project_slug', 'number'],
  tests: ['_project_slug', '_job_number', 'classname', 'name', '_file', '_occurrence'],
  workflow_runs: ['id'],
  flaky_tests: ['_project_slug', 'workflow_name', 'job_name', 'classname', 'test_name'],
};

export function configuredCatalog(streams: Partial<Record<StreamName, Mode>>) {
  return {
    streams: Object.entries(streams).map(([name, mode]) => ({
      stream: { name, json_schema: {}, supported_sync_modes: CURSORS[name] ? ['full_refresh', 'incremental'] : ['full_refresh'] },
      sync_mode: mode,
      destination_sync_mode: mode === 'incremental' ? 'append_dedup' : 'overwrite',
      ...(mode === 'incremental' ? { cursor_field: [CURSORS[name]] } : {}),
      primary_key: (KEYS[name as StreamName] ?? ['id']).map((k) => [k]),
    })),
  };
}

export const ALL_FULL = configuredCatalog({ pipelines: 'full_refresh', workflows: 'full_refresh', jobs: 'full_refresh' });
export const ALL_INCREMENTAL = configuredCatalog({ pipelines: 'incremental', workflows: 'incremental', jobs: 'incremental' });

export const recordsOf = (messages: Message[], stream: string) => messages.filter((m) => m.type === 'RECORD' && m.record.stream === stream).map((m) => m.record.data);
export const statesOf = (messages: Message[]) => messages.filter((m) => m.type === 'STATE');

/** The state a platform would pass to the next sync: the last STATE of each stream. */
export function lastStates(messages: Message[], previous: Message[] = []): Message[] {
  const byStream = new Map<string, Message>();
  for (const s of previous) byStream.set(s.stream.stream_descriptor.name, s);
  for (const m of statesOf(messages)) byStream.set(m.state.stream.stream_descriptor.name, m.state);
  return [...byStream.values()];
}

export const keyOf = (stream: string, r: Message) => (KEYS[stream as StreamName] ?? ['id']).map((k) => String(r[k])).join('|');

/** Records by key, last write wins. */
export function byKey(stream: string, records: Message[], into = new Map<string, Message>()): Map<string, Message> {
  for (const r of records) into.set(keyOf(stream, r), r);
  return into;
}

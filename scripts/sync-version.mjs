#!/usr/bin/env node
/**
 * One source of truth for the connector's version: package.json "version".
 *
 *   node scripts/sync-version.mjs          # writes it into metadata.yaml (data.dockerImageTag) and
 *                                          # the Dockerfile (LABEL io.airbyte.version), and makes the
 *                                          # Dockerfile's io.airbyte.name equal metadata's dockerRepository
 *   node scripts/sync-version.mjs --check  # changes nothing; exits 1 and says what differs
 *   ... --root DIR                         # another checkout (the tests use a temp copy)
 *
 * test/version-drift.test.ts fails whenever the three disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const check = args.includes('--check');
const rootAt = args.indexOf('--root');
const root = rootAt >= 0 ? resolve(args[rootAt + 1]) : fileURLToPath(new URL('..', import.meta.url));

const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
if (typeof version !== 'string' || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  console.error(`sync-version: package.json version ${JSON.stringify(version)} is not a semantic version`);
  process.exit(1);
}

const problems = [];
const edits = [];

// metadata.yaml: edit the one line in place, so comments and layout survive.
const metaPath = join(root, 'metadata.yaml');
const meta = readFileSync(metaPath, 'utf8');
const tagLine = /^(\s+dockerImageTag:\s*)["']?([^"'\s#]*)["']?(.*)$/m;
const repoLine = /^\s+dockerRepository:\s*["']?([^"'\s#]+)["']?/m;
const tag = meta.match(tagLine);
const repo = meta.match(repoLine)?.[1];
if (!tag) problems.push('metadata.yaml has no data.dockerImageTag line');
if (!repo) problems.push('metadata.yaml has no data.dockerRepository line');
if (tag && tag[2] !== version) {
  problems.push(`metadata.yaml dockerImageTag is ${tag[2]}, package.json version is ${version}`);
  edits.push([metaPath, meta.replace(tagLine, `$1${version}$3`)]);
}

// Dockerfile: LABEL io.airbyte.version / io.airbyte.name lines.
const dockerPath = join(root, 'Dockerfile');
let docker = readFileSync(dockerPath, 'utf8');
const before = docker;
for (const [key, want] of [['io.airbyte.version', version], ['io.airbyte.name', repo]]) {
  if (!want) continue;
  const re = new RegExp(`^(LABEL\\s+${key.replace(/\./g, '\\.')}=)"?([^"\\s]*)"?(.*)$`, 'm');
  const m = docker.match(re);
  if (!m) problems.push(`Dockerfile has no "LABEL ${key}=..." line`);
  else if (m[2] !== want) {
    problems.push(`Dockerfile LABEL ${key} is ${m[2]}, expected ${want}`);
    docker = docker.replace(re, `$1"${want}"$3`);
  }
}
if (docker !== before) edits.push([dockerPath, docker]);

if (check) {
  if (problems.length) {
    for (const p of problems) console.error(`sync-version: ${p}`);
    console.error('sync-version: run `node scripts/sync-version.mjs` to write package.json\'s version everywhere.');
    process.exit(1);
  }
  console.log(`sync-version: ${repo}:${version} everywhere`);
} else {
  const fatal = problems.filter((p) => p.includes(' has no '));
  if (fatal.length) {
    for (const p of fatal) console.error(`sync-version: ${p}`);
    process.exit(1);
  }
  for (const [path, text] of edits) writeFileSync(path, text);
  console.log(edits.length ? `sync-version: wrote ${version} into ${edits.map(([p]) => p.slice(root.length + 1)).join(', ')}` : `sync-version: already ${version}`);
}

#!/usr/bin/env node
/**
 * Builds the Airbyte image from this checkout, tagged <dockerRepository>:dev (what
 * acceptance-test-config.yml's connector_image names) and <dockerRepository>:<version>.
 *
 *   node scripts/docker-build.mjs [extra docker build args...]     (npm run docker:build)
 *
 * Refuses to build while package.json, metadata.yaml and the Dockerfile LABELs disagree.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const sync = spawnSync(process.execPath, [`${root}scripts/sync-version.mjs`, '--check'], { stdio: 'inherit' });
if (sync.status !== 0) process.exit(sync.status ?? 1);

const { dockerRepository, dockerImageTag } = YAML.parse(readFileSync(`${root}metadata.yaml`, 'utf8')).data;
const tags = [`${dockerRepository}:dev`, `${dockerRepository}:${dockerImageTag}`];
const args = ['build', ...tags.flatMap((t) => ['-t', t]), ...process.argv.slice(2), root];
console.log(`$ docker ${args.join(' ')}`);
const started = Date.now();
const build = spawnSync('docker', args, { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
console.log(`docker-build: ${tags.join(', ')} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);

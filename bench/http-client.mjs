/**
 * A bare HTTP client for `npm run bench -- --scenario ceiling`: how many GETs a second one Node
 * process can make against a server on this machine, with nothing else to do (parse the JSON,
 * drop it). Spawned by bench/run.mjs; prints one JSON line with what it measured.
 *
 *   node bench/http-client.mjs MODE CONCURRENCY PATHS_FILE
 *
 * MODE: http (node:http with a keep-alive agent) or node-fetch (as the connector's
 * src/circleci/http.ts calls it: keep-alive agent, AbortSignal.timeout per request).
 * PATHS_FILE: JSON {"base": "...", "token": "...", "paths": ["/workflow/.../job", ...]}.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import fetch from 'node-fetch';

const [mode, concurrencyArg, pathsFile] = process.argv.slice(2);
const { base, token, paths } = JSON.parse(readFileSync(pathsFile, 'utf8'));
const concurrency = Number(concurrencyArg);
const agent = new http.Agent({ keepAlive: true });
const headers = { Accept: 'application/json', 'User-Agent': 'source-circleci-bench', 'Circle-Token': token };

const viaHttp = (url) =>
  new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
const viaFetch = async (url) => {
  const res = await fetch(url, { headers, agent, redirect: 'manual', signal: AbortSignal.timeout(60_000) });
  return JSON.parse(await res.text());
};
const get = mode === 'node-fetch' ? viaFetch : viaHttp;

// A short warm-up, so the JIT and the keep-alive sockets are ready.
for (let i = 0; i < Math.min(200, paths.length); i++) await get(base + paths[i]);
let next = 0;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < paths.length) await get(base + paths[next++]);
  }),
);
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
agent.destroy();
console.log(JSON.stringify({ mode, concurrency, requests: paths.length, seconds, cpuS: (cpu.user + cpu.system) / 1e6 }));

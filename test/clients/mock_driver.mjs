#!/usr/bin/env node
/**
 * The bundled mock CircleCI API (dist-dev/mock, `npm run build`) run for the Python client tests,
 * with its clock and ground truth reachable over stdin, which the standalone mock CLI does not offer.
 *
 *   node test/clients/mock_driver.mjs [--seed N] [--history-days N] [--pipelines-per-day N]
 *
 * Prints one JSON line {"base_url", "token", "now"} once listening on 127.0.0.1, then answers one
 * JSON line per JSON line on stdin:
 *   {"advance_hours": H}                      -> {"now": ISO}        the world's clock moves H hours
 *   {"truth": ISO, "project_slugs": [...]}    -> the ground truth a full sync with that start_date
 *                                                holds now, for those projects, stream by stream
 *   {"requests": true}                         -> {"total": N, "by_route": {...}} since the last ask
 * Exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startMockServer } from '../../dist-dev/mock/server.js';
import { World } from '../../dist-dev/mock/world.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '11' },
    'history-days': { type: 'string', default: '20' },
    'pipelines-per-day': { type: 'string', default: '4' },
    token: { type: 'string', default: 'clients-test-token-0123456789' },
  },
});

const world = new World({ seed: Number(values.seed), historyDays: Number(values['history-days']), pipelinesPerDay: Number(values['pipelines-per-day']) });
const mock = await startMockServer({ world, token: values.token, jobPageSize: 4 });

/** The slug a record belongs to, whatever the stream. */
const slugOf = (stream, r) => (stream === 'projects' ? r.slug : stream === 'job_details' || stream === 'tests' ? r._project_slug : r.project_slug);

function answer(cmd) {
  if (typeof cmd.advance_hours === 'number') {
    world.advance(cmd.advance_hours * 3_600_000);
    return { now: world.now().toISOString() };
  }
  if (typeof cmd.truth === 'string') {
    const slugs = new Set(cmd.project_slugs);
    const truth = world.groundTruth(new Date(cmd.truth));
    // The tests stream's key column _file is the result's file, or "" where CircleCI sends null.
    truth.tests = truth.tests.map((t) => ({ ...t, _file: t.file ?? '' }));
    return Object.fromEntries(Object.entries(truth).map(([stream, records]) => [stream, records.filter((r) => slugs.has(slugOf(stream, r)))]));
  }
  if (cmd.requests) {
    const out = { total: mock.counters.total, by_route: mock.counters.byRoute };
    mock.resetCounters();
    return out;
  }
  return { error: `unknown command ${JSON.stringify(cmd)}` };
}

process.stdout.write(JSON.stringify({ base_url: mock.baseUrl, token: values.token, now: world.now().toISOString() }) + '\n');
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  let reply;
  try {
    reply = answer(JSON.parse(line));
  } catch (e) {
    reply = { error: String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
// No process.exit: it would cut a long reply still being written to the pipe.
lines.on('close', () => void mock.close());

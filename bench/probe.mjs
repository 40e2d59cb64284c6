/**
 * Preloaded into the connector process by bench/run.mjs (`node --import bench/probe.mjs ...`).
 * When the process exits it writes its own getrusage() to $BENCH_PROBE_FILE: the peak resident
 * set size (ru_maxrss, the kernel's high-water mark of the whole process: heap, code, buffers)
 * and the CPU time it used. Nothing else about the connector changes.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_PROBE_FILE;
if (file) {
  process.on('exit', (code) => {
    const r = process.resourceUsage();
    try {
      writeFileSync(
        file,
        JSON.stringify({ code, maxRssKb: r.maxRSS, userUs: r.userCPUTime, systemUs: r.systemCPUTime, heapUsed: process.memoryUsage().heapUsed }),
      );
    } catch {
      // the bench reports a missing probe file
    }
  });
}

/**
 * Wall time of a syscall-heavy command run natively and under runProbe; prints the ratio (target <= 1.2).
 * Usage: node --import tsx bench/discover-overhead.ts [runs]   (default 3; best of the runs is kept)
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from '../src/core/exec.js';
import { runProbe } from '../src/core/trace/probe.js';

const runs = Number(process.argv[2] ?? 3);
const commands: string[][] = [
  ['find', '/usr/lib', '-name', '*.so*'],
  ['python3', '-c', 'import json, email, http.client, xml.dom.minidom, sqlite3, decimal, asyncio, unittest'],
];
for (const argv of commands) {
  let native = Number.POSITIVE_INFINITY;
  let traced = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await run(argv, { allowFailure: true, maxBuffer: 1 << 28 });
    native = Math.min(native, performance.now() - t);
    const probe = await runProbe({ argv, allowFailure: true });
    traced = Math.min(traced, probe.durationMs);
    await rm(dirname(probe.logPath), { recursive: true, force: true });
  }
  console.log(
    JSON.stringify({
      command: argv.join(' '),
      nativeMs: +native.toFixed(0),
      probeMs: +traced.toFixed(0),
      ratio: +(traced / native).toFixed(2),
    }),
  );
}

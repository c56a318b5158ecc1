/**
 * How many bytes a second the serial console carries out of Nanos under local QEMU: a dynamically linked
 * prover writes a proof file of each size, the preloaded proof-out library prints it at exit (base64), and
 * the console is timed from the begin marker's arrival to the end marker's. Also the whole run, and what
 * the Compute Engine route assumes (CONSOLE_BYTES_PER_SECOND in src/core/proof/route.ts).
 * Needs ops, a Nanos release, QEMU and gcc. Run: node --import tsx bench/console-throughput.ts [MB...] [--accel tcg|kvm]
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { opsHomeDir } from '../src/core/ops/build.js';
import { CONSOLE_BYTES_PER_PROOF_BYTE } from '../src/core/proof/console-file.js';
import { CONSOLE_BYTES_PER_SECOND } from '../src/core/proof/route.js';
import { runProver } from '../src/core/run/index.js';

const args = process.argv.slice(2);
const accelAt = args.indexOf('--accel');
const accel = (accelAt >= 0 ? args.splice(accelAt, 2)[1] : 'tcg') as 'tcg' | 'kvm';
const sizesMb = args.length ? args.map(Number) : [0.25, 1, 4];

const WRITER = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  size_t n = strtoul(argv[2], 0, 10);
  FILE *f = fopen(argv[1], "wb");
  unsigned x = 1;
  for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; fputc((int)(x >> 16), f); }
  return fclose(f) != 0;
}`;

const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-console-'));
try {
  await writeFile(join(dir, 'writer.c'), WRITER);
  await execa('gcc', ['-O2', '-o', join(dir, 'writer'), join(dir, 'writer.c')]);
  console.log(
    `console throughput, Nanos under QEMU ${accel}, proof-out library (base64, ${CONSOLE_BYTES_PER_PROOF_BYTE.toFixed(4)} console bytes per proof byte)`,
  );
  console.log('proof MB | console bytes | console s | console B/s | proof B/s | run s | sha256');
  const rates: number[] = [];
  for (const mb of sizesMb) {
    const bytes = Math.round(mb * 2 ** 20);
    await writeFile(
      join(dir, 'recipe.json'),
      JSON.stringify({
        name: 'console-bench',
        binary: './writer',
        args: ['/proof.bin', String(bytes)],
        probe: { skip: true },
        proof: { kind: 'file', path: '/proof.bin' },
        resources: { memory: '512M', cpus: 1 },
      }),
    );
    let begin: number | undefined;
    let end: number | undefined;
    let seen = '';
    const t0 = performance.now();
    const result = await runProver({
      target: dir,
      cwd: dir,
      runsDir: join(dir, 'runs'),
      packageOut: join(dir, 'pkg'),
      cacheDir: join(dir, 'cache'),
      opsHome: opsHomeDir({ HOME: homedir() }),
      accel,
      proofVia: 'console',
      timeoutMs: 1800_000,
      noReport: true,
      imageSize: `${Math.ceil(mb) + 96}m`,
      // The live console has the data lines taken out; the markers still pass, which is what is timed.
      onConsole: (chunk) => {
        seen = (seen + chunk).slice(-4096);
        if (begin === undefined && seen.includes('UNIPROVE-FILE-PROOF-BEGIN')) begin = performance.now();
        if (end === undefined && seen.includes('UNIPROVE-FILE-PROOF-END')) end = performance.now();
      },
    });
    const run = (performance.now() - t0) / 1000;
    const proof = result.proofs[0];
    const text = await readFile(join(result.dir, 'console.log'), 'latin1');
    const from = text.indexOf('UNIPROVE-FILE-PROOF-BEGIN');
    const to = text.indexOf('\n', text.indexOf('UNIPROVE-FILE-PROOF-END'));
    const consoleBytes = to - from;
    const secs = begin !== undefined && end !== undefined ? (end - begin) / 1000 : Number.NaN;
    const ok =
      proof &&
      createHash('sha256')
        .update(await readFile(join(result.dir, proof.path)))
        .digest('hex') === proof.sha256;
    rates.push(consoleBytes / secs);
    console.log(
      `${mb.toString().padStart(8)} | ${consoleBytes.toString().padStart(13)} | ${secs.toFixed(2).padStart(9)} | ${Math.round(
        consoleBytes / secs,
      )
        .toString()
        .padStart(11)} | ${Math.round(bytes / secs)
        .toString()
        .padStart(9)} | ${run.toFixed(1).padStart(5)} | ${ok ? 'equal' : `MISSING (${result.outcome})`}`,
    );
  }
  const slowest = Math.min(...rates);
  console.log(
    `slowest: ${Math.round(slowest)} console B/s; the local limit assumes ${CONSOLE_BYTES_PER_SECOND.local} (must be no more), Compute Engine ${CONSOLE_BYTES_PER_SECOND.gce} (documented: none; a 1 MB window read every 2 s)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}

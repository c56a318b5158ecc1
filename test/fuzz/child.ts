/**
 * Fuzz one target in this process: `node --import tsx test/fuzz/child.ts TARGET SEED RUNS [PATH]`.
 * Prints `@N` before input N (so a parent that kills it for hanging can say where), and on a finding the
 * shrunk counterexample with the seed and path that replay it. Exit 0: nothing found; 1: a finding.
 */
import { writeSync } from 'node:fs';
import fc from 'fast-check';
import { isUniproveError } from '../../src/core/errors.js';
import { makeTarget } from './targets.js';

/** An input slower than this is a finding too: a hang in the making (quadratic work, a runaway loop). */
const SLOW_MS = Number(process.env.UNIPROVE_FUZZ_SLOW_MS ?? 5000);

const [name = '', seedText = '0', runsText = '10000', path] = process.argv.slice(2);
const seed = Number(seedText);
const numRuns = Number(runsText);
const target = makeTarget(name);
let n = 0;
let slowest = 0;

/**
 * Write to stdout synchronously; when the parent is slow to read (a loaded host) the pipe fills and a
 * non-blocking write says EAGAIN: wait a moment and write the rest, rather than call that a finding.
 */
function writeOut(text: string): void {
  let data = Buffer.from(text);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (data.length > 0) {
    try {
      data = data.subarray(writeSync(1, data));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
}

const property = fc.asyncProperty(target.arbitrary, async (input) => {
  // Synchronous: still on the pipe if this input never returns.
  writeOut(`@${n++}\n`);
  const started = performance.now();
  try {
    await target.run(input);
  } catch (error) {
    if (!isUniproveError(error)) throw error;
    if (error.code === 'E_INTERNAL') throw error;
    if (typeof error.message !== 'string' || error.message === '')
      throw new Error('a UniproveError without a message');
  }
  const ms = performance.now() - started;
  slowest = Math.max(slowest, ms);
  if (ms > SLOW_MS) throw new Error(`one input took ${Math.round(ms)} ms (limit ${SLOW_MS} ms)`);
});

const started = performance.now();
const details = await fc.check(property, {
  seed,
  numRuns,
  examples: (target.examples ?? []).map((e) => [e] as [unknown]),
  ...(path ? { path } : {}),
});
const seconds = ((performance.now() - started) / 1000).toFixed(1);
if (details.failed) {
  process.stderr.write(`${fc.defaultReportMessage(details) ?? 'failed'}\n`);
  const error = details.errorInstance;
  process.stderr.write(`\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.stderr.write(
    `\nreplay: node --import tsx test/fuzz/child.ts ${name} ${seed} ${numRuns} ${details.counterexamplePath ?? ''}\n`,
  );
  process.exit(1);
}
writeOut(
  `done ${name}: ${details.numRuns} inputs in ${seconds} s, the slowest ${Math.round(slowest)} ms (seed ${seed})\n`,
);

/**
 * How much the fuzz suite does: in `npm test` a fixed seed and a bounded number of inputs; for longer hunts
 * UNIPROVE_FUZZ_SEED=random (or a number) and UNIPROVE_FUZZ_RUNS=N. The seed is printed on every run.
 */

/** The seed `npm test` uses, so that CI runs the same inputs every time. */
const FIXED_SEED = 20261130;

function seedFrom(value: string | undefined): number {
  if (value === undefined || value === '') return FIXED_SEED;
  if (value === 'random') return Math.floor(Math.random() * 2 ** 31);
  const n = Number(value);
  if (!Number.isInteger(n))
    throw new Error(`UNIPROVE_FUZZ_SEED must be an integer or "random", got ${value}`);
  return n;
}

export const SEED = seedFrom(process.env.UNIPROVE_FUZZ_SEED);

/** Inputs per in-process target (at least 10 000 in `npm test`). */
export const RUNS = Number(process.env.UNIPROVE_FUZZ_RUNS ?? 10_000);

/** Spawned CLI runs in all, a few hundred: each is a whole process. */
export const CLI_RUNS = Number(process.env.UNIPROVE_FUZZ_CLI_RUNS ?? Math.max(200, Math.round(RUNS / 50)));

/** How to replay what this run did. */
export const REPLAY = `UNIPROVE_FUZZ_SEED=${SEED} UNIPROVE_FUZZ_RUNS=${RUNS} node scripts/test.mjs fuzz`;

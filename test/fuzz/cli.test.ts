/**
 * The CLI under fuzz: a few hundred real runs of the built CLI with mangled command lines, mutated logs for
 * `debug` and `discover --from-log`, mutated recipes for `package` and mutated parameters.json for
 * `volume import`. Each must end within its time with a documented exit status (never 70, never a signal),
 * and under --json print one JSON value on stdout, an `{ error }` one when it failed for a reason other than
 * the work's own failure.
 *
 * The runs have only strace, bwrap and a few file tools on PATH (no ops, cargo, QEMU or gcloud) and a HOME of
 * their own, so no command gets as far as a VM, a cloud or a build; they run in a temp folder, never in the
 * repository.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { type Case, problem, toolsOnly } from './cli-outcome.js';
import { applyByteEdits, applyJsonEdits, byteEdit, jsonEdit } from './mutate.js';
import { CLI_RUNS, REPLAY, SEED } from './settings.js';

/** A run that takes longer is hung: every command here ends in well under a second when nothing is wrong. */
const RUN_TIMEOUT_MS = 30_000;
const CONCURRENCY = 4;

const FIXTURES = join(REPO_ROOT, 'test/fixtures');
const NANOS_LOGS = [
  'nanos/dlopen-missing.tcg/console.log',
  'nanos/exit3-reboot_on_exit-WITHOUT-no-reboot-LOOPS.tcg/console.log',
  'nanos/volume-mounted-readonly.tcg/console.log',
  'nanos/hello-static.kvm-stock-FAILS/console.log',
  'nanos/dl-present-execprot-libc-marked-only.tcg/console.log',
].map((p) => join(FIXTURES, p));
const MANIFESTS = [
  'nanos/dlopen-present-in-lib64-NOT-FOUND.tcg/image.manifest',
  'nanos/volume-mounted-readonly.tcg/image.manifest',
  'nanos/exit0-no-debug_exit.tcg/image.manifest',
].map((p) => join(FIXTURES, p));
const STRACE_LOGS = ['escapes', 'garbled-and-cut', 'relative-cwd', 'unfinished-across-pids'].map((c) =>
  join(FIXTURES, 'strace', c, 'input.log'),
);

/** Words of the command line: verbs, flags, and values that are wrong in many ways. */
const VERBS = [
  'discover',
  'why',
  'package',
  'verify',
  'run',
  'volume',
  'debug',
  'report',
  'gcp',
  'doctor',
  'help',
];
const SUB_VERBS = ['fetch', 'build', 'ls', 'rm', 'import', 'image', 'run', 'gc'];
const FLAGS = [
  '--json',
  '--help',
  '-q',
  '--timeout',
  '--root',
  '--from-log',
  '--no-probe',
  '--family',
  '--binary',
  '--arg',
  '--env',
  '--memory',
  '--cpus',
  '--out',
  '-o',
  '--sector-size',
  '--base-url',
  '-j',
  '--jobs',
  '--name',
  '--size',
  '--manifest',
  '--package',
  '--no-host',
  '--accel',
  '--parallel',
  '--inputs',
  '--from',
  '--dry-run',
  '--project',
  '--bind',
  '--proof-markers',
  '--probe-cpu',
  '--gpus',
  '--format',
  '--chart',
  '--since',
  '--fleet',
  '--prover',
  '--bogus',
  '-x',
  '--',
  '-',
  '--json=1',
  '--timeout=5',
  '--no-such-flag=',
];
const VALUES = [
  '0',
  '-1',
  '1e9',
  '99999999999999999999',
  'abc',
  '',
  ' ',
  '/',
  '.',
  '..',
  '/nonexistent/x',
  '../../..',
  'demo',
  'benchy',
  'no-such-recipe',
  'x'.repeat(300),
  '%s%n',
  '$(id)',
  'é',
  '2KiB',
  '3 parsecs',
  'kvm',
  'tcg',
  'nss',
  'A=B',
  '=',
  '/tmp=/nonexistent',
  'begin,end',
  ',',
  'file:///nonexistent/',
  'ftp://x',
  '/bin/true',
  '/etc/hostname',
  ...NANOS_LOGS.slice(0, 2),
  STRACE_LOGS[0] as string,
  join(FIXTURES, 'volume/filecoin/parameters.json'),
];

const argvArb = fc
  .tuple(
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...VERBS) },
      { weight: 1, arbitrary: fc.constantFrom(...FLAGS, ...VALUES) },
    ),
    fc.option(fc.constantFrom(...SUB_VERBS), { freq: 3 }),
    fc.array(fc.oneof(fc.constantFrom(...FLAGS), fc.constantFrom(...VALUES), fc.string({ maxLength: 6 })), {
      maxLength: 7,
    }),
  )
  .map(([verb, sub, rest]) => [verb, ...(sub ? [sub] : []), ...rest].filter((a) => !a.includes('\0')));

/** A recipe whose binary is a copy of /bin/true: packaging it stages one small program. */
function recipeCorpus(dir: string): unknown[] {
  cpSync('/bin/true', join(dir, 'prover'));
  writeFileSync(join(dir, 'data.bin'), 'data');
  return [
    {
      name: 'fuzzed',
      binary: './prover',
      args: ['--size', '2KiB'],
      env: { A: 'b' },
      files: [{ host: 'data.bin', guest: '/data/data.bin' }],
      probe: { skip: true, timeoutSeconds: 5 },
      libraries: [],
      proof: { kind: 'file', path: '/tmp/proof' },
      resources: { memory: '512M', cpus: 1 },
      debugFlags: ['trace'],
    },
    { name: 'probed', binary: './prover', probe: { timeoutSeconds: 5, allowFailure: true } },
    JSON.parse(readFileSync(join(REPO_ROOT, 'provers/demo/recipe.json'), 'utf8')),
  ];
}

/** Every case, drawn from the seed: argv alone, and commands fed mutated files. */
function cases(dir: string): Case[] {
  const share = (n: number) => Math.max(1, Math.round((CLI_RUNS * n) / 100));
  const out: Case[] = [];
  for (const argv of fc.sample(argvArb, { seed: SEED, numRuns: share(40) })) out.push({ what: 'argv', argv });

  const manifests = MANIFESTS.map((p) => new Uint8Array(readFileSync(p)));
  const manifestEdits = fc.record({
    index: fc.nat({ max: manifests.length - 1 }),
    edits: fc.array(byteEdit(manifests.length), { maxLength: 6 }),
  });
  for (const [i, m] of fc.sample(manifestEdits, { seed: SEED + 5, numRuns: share(5) }).entries()) {
    const manifest = join(dir, `image-${i}.manifest`);
    writeFileSync(manifest, applyByteEdits(manifests[m.index] as Uint8Array, m.edits, manifests));
    const log = join(dirname(MANIFESTS[m.index] as string), 'console.log');
    out.push({
      what: 'debug --manifest',
      argv: ['debug', log, '--manifest', manifest, '--json', '--no-host'],
    });
  }

  const logs = [...NANOS_LOGS, ...STRACE_LOGS].map((p) => new Uint8Array(readFileSync(p)));
  const logEdits = fc.record({
    index: fc.nat({ max: logs.length - 1 }),
    edits: fc.array(byteEdit(logs.length), { maxLength: 8 }),
    flags: fc.subarray(['--json', '--no-host', '--fix']),
  });
  for (const [i, m] of fc.sample(logEdits, { seed: SEED + 1, numRuns: share(20) }).entries()) {
    const log = join(dir, `debug-${i}.log`);
    writeFileSync(log, applyByteEdits(logs[m.index] as Uint8Array, m.edits, logs));
    out.push({ what: 'debug', argv: ['debug', log, ...m.flags] });
  }
  for (const [i, m] of fc.sample(logEdits, { seed: SEED + 2, numRuns: share(12) }).entries()) {
    const log = join(dir, `strace-${i}.log`);
    writeFileSync(log, applyByteEdits(logs[m.index] as Uint8Array, m.edits, logs));
    out.push({ what: 'discover', argv: ['discover', '/bin/true', '--from-log', log, '--json'] });
  }

  const recipes = recipeCorpus(dir);
  const recipeEdits = fc.record({
    index: fc.nat({ max: recipes.length - 1 }),
    edits: fc.array(jsonEdit(['name', 'binary', 'files', 'probe', 'skip', 'args', 'env', 'build']), {
      maxLength: 4,
    }),
  });
  for (const [i, m] of fc.sample(recipeEdits, { seed: SEED + 3, numRuns: share(13) }).entries()) {
    const recipeDir = join(dir, `recipe-${i}`);
    mkdirSync(recipeDir);
    cpSync(join(dir, 'prover'), join(recipeDir, 'prover'));
    cpSync(join(dir, 'data.bin'), join(recipeDir, 'data.bin'));
    writeFileSync(join(recipeDir, 'recipe.json'), JSON.stringify(applyJsonEdits(recipes[m.index], m.edits)));
    out.push({ what: 'package', argv: ['package', recipeDir, '--out', join(dir, `pkg-${i}`), '--json'] });
  }

  const params = ['parameters.json', 'srs-inner-product.json'].map((n) =>
    JSON.parse(readFileSync(join(FIXTURES, 'volume/filecoin', n), 'utf8')),
  );
  const paramEdits = fc.record({
    index: fc.nat({ max: params.length - 1 }),
    edits: fc.array(jsonEdit(['cid', 'digest', 'sector_size']), { maxLength: 4 }),
    size: fc.constantFrom([], ['--sector-size', '2KiB'], ['--sector-size', '0'], ['--sector-size', 'x']),
  });
  for (const [i, m] of fc.sample(paramEdits, { seed: SEED + 4, numRuns: share(10) }).entries()) {
    const file = join(dir, `parameters-${i}.json`);
    writeFileSync(file, JSON.stringify(applyJsonEdits(params[m.index], m.edits)));
    out.push({ what: 'volume import', argv: ['volume', 'import', file, ...m.size, '--json'] });
  }
  return out;
}

test(`fuzz the CLI (seed ${SEED}, ${CLI_RUNS} runs)`, { timeout: 10 * 60_000 }, async (t) => {
  t.diagnostic(`seed ${SEED}; replay: ${REPLAY}`);
  const dir = await tempDir('uniprove-fuzz-cli-');
  const home = join(dir, 'home');
  mkdirSync(home);
  const all = cases(dir);
  const env = {
    PATH: toolsOnly(join(dir, 'bin')),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    CLOUDSDK_CONFIG: join(home, 'gcloud'),
    GOOGLE_APPLICATION_CREDENTIALS: join(home, 'none.json'),
    UNIPROVE_CACHE: join(dir, 'cache'),
  };
  const failures: string[] = [];
  const time: Record<string, { runs: number; ms: number; exits: Record<number, number> }> = {};
  let next = 0;
  const worker = async () => {
    while (next < all.length) {
      const c = all[next++] as Case;
      const started = performance.now();
      const run = await uniprove(c.argv, { cwd: dir, env, timeoutMs: RUN_TIMEOUT_MS });
      const kind = time[c.what] ?? { runs: 0, ms: 0, exits: {} };
      time[c.what] = kind;
      kind.runs++;
      kind.ms += performance.now() - started;
      kind.exits[run.exitCode] = (kind.exits[run.exitCode] ?? 0) + 1;
      const wrong = problem(c, run);
      if (wrong) {
        failures.push(
          `${c.what}: uniprove ${c.argv.map((a) => JSON.stringify(a)).join(' ')}\n  ${wrong}\n  exit ${run.exitCode}\n` +
            `  stdout: ${run.stdout.slice(0, 2000)}\n  stderr: ${run.stderr.slice(-3000)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  t.diagnostic(`${all.length} CLI runs`);
  for (const [what, k] of Object.entries(time)) {
    t.diagnostic(
      `  ${what}: ${k.runs} runs, ${Math.round(k.ms / k.runs)} ms each, exit statuses ${JSON.stringify(k.exits)}`,
    );
  }
  assert.equal(all.length >= CLI_RUNS - 5, true, `${all.length} cases drawn`);
  assert.deepEqual(
    failures,
    [],
    `${failures.length} findings (seed ${SEED}; inputs kept with UNIPROVE_KEEP_TMP=1)`,
  );
});

/**
 * Usage errors (unknown flag, missing argument, bad option value, unknown command) on every verb and sub-verb:
 * with --json, one `{ error: { code, message, hint } }` object on stdout and exit 2; without it, the same error
 * on stderr in uniprove's own shape. --help and --version still exit 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CliRun, parseJson, uniprove } from '../helpers/cli.js';

/** Every verb and sub-verb, as typed. */
const VERBS = [
  ['discover'],
  ['why'],
  ['package'],
  ['verify'],
  ['run'],
  ['volume', 'fetch'],
  ['volume', 'build'],
  ['volume', 'ls'],
  ['volume', 'rm'],
  ['volume', 'import'],
  ['debug'],
  ['gcp', 'image'],
  ['gcp', 'run'],
  ['gcp', 'ls'],
  ['gcp', 'gc'],
  ['doctor'],
];

interface UsageCase {
  argv: string[];
  /** The words of the command whose --help the hint names. */
  command: string;
  message: RegExp;
}

const CASES: UsageCase[] = [
  ...VERBS.map((verb) => ({
    argv: [...verb, 'x', '--bogus-flag', '--json'],
    command: verb.join(' '),
    // `why` checks its mandatory --from first.
    message: verb[0] === 'why' ? /required option '--from/ : /unknown option '--bogus-flag'/,
  })),
  // The flag before the argument: commander stops reading options at the first unknown one.
  { argv: ['package', '--bogus-flag', 'demo', '--json'], command: 'package', message: /--bogus-flag/ },
  { argv: ['discover', '--json'], command: 'discover', message: /missing required argument 'binary'/ },
  { argv: ['why', 'libc.so.6', '--json'], command: 'why', message: /required option '--from/ },
  { argv: ['package', '--json'], command: 'package', message: /missing required argument/ },
  { argv: ['verify', '--json'], command: 'verify', message: /missing required argument/ },
  { argv: ['run', '--json'], command: 'run', message: /missing required argument/ },
  { argv: ['debug', '--json'], command: 'debug', message: /missing required argument 'log'/ },
  {
    argv: ['volume', 'fetch', '--json'],
    command: 'volume fetch',
    message: /missing required argument 'set'/,
  },
  { argv: ['volume', 'build', '--json'], command: 'volume build', message: /missing required argument/ },
  { argv: ['volume', 'rm', '--json'], command: 'volume rm', message: /missing required argument/ },
  { argv: ['volume', 'import', '--json'], command: 'volume import', message: /missing required argument/ },
  { argv: ['gcp', 'image', '--json'], command: 'gcp image', message: /give exactly one of a recipe/ },
  { argv: ['doctor', 'extra', '--json'], command: 'doctor', message: /too many arguments/ },
  {
    argv: ['volume', 'fetch', 'filecoin-2KiB', '--jobs', '99', '--json'],
    command: 'volume fetch',
    message: /--jobs.*'99' is invalid/,
  },
  {
    argv: ['volume', 'fetch', 'filecoin-2KiB', '--sector-size', 'huge', '--json'],
    command: 'volume fetch',
    message: /--sector-size.*'huge' is invalid/,
  },
  {
    argv: ['run', 'demo', '--accel', 'warp', '--json'],
    command: 'run',
    message: /--accel.*'warp' is invalid/,
  },
  { argv: ['discover', '--timeout', '--json'], command: 'discover', message: /--timeout must be/ },
  { argv: ['run', 'demo', '--timeout', '-5', '--json'], command: 'run', message: /--timeout must be/ },
  { argv: ['gcp', 'run', 'demo', '--timeout', 'soon', '--json'], command: 'gcp run', message: /"soon"/ },
  {
    argv: ['discover', 'x', '--json', '--root'],
    command: 'discover',
    message: /--root <dir>' argument missing/,
  },
  { argv: ['bogus', '--json'], command: '', message: /unknown command 'bogus'/ },
  { argv: ['volume', 'bogus', '--json'], command: 'volume', message: /unknown command 'bogus'/ },
  { argv: ['gcp', 'bogus', '--json'], command: 'gcp', message: /unknown command 'bogus'/ },
  { argv: ['--json'], command: '', message: /--json|needs a command/ },
  { argv: ['gcp', '--json'], command: 'gcp', message: /--json|needs a command/ },
  {
    argv: ['run', 'demo', '--parallel', '2', '--json'],
    command: 'run',
    message: /--parallel needs --inputs/,
  },
];

/** Run the CLI for each argv, a few at a time (dozens of Node processes at once would crowd a small machine). */
async function runAll(argvs: string[][]): Promise<CliRun[]> {
  const runs: CliRun[] = [];
  let next = 0;
  const worker = async () => {
    while (next < argvs.length) {
      const i = next++;
      runs[i] = await uniprove(argvs[i] as string[], { timeoutMs: 60_000 });
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return runs;
}

function describe(run: CliRun): string {
  return `exit ${run.exitCode}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
}

test('every usage error under --json is one { error } object on stdout with exit 2', async () => {
  const runs = await runAll(CASES.map((c) => c.argv));
  for (const [i, run] of runs.entries()) {
    const c = CASES[i] as UsageCase;
    const what = `uniprove ${c.argv.join(' ')}: ${describe(run)}`;
    assert.equal(run.exitCode, 2, what);
    const body = parseJson<{ error: { code: string; message: string; hint?: string } }>(run);
    assert.deepEqual(Object.keys(body), ['error'], what);
    assert.equal(body.error.code, 'E_USAGE', what);
    assert.match(body.error.message, c.message, what);
    assert.equal(typeof body.error.hint, 'string', what);
    // Every complaint about the command line's shape sends the user to that command's --help; checks of one
    // value (a duration, a count) say what the value should be instead.
    if (/unknown|missing|is invalid|too many|required option/.test(body.error.message)) {
      assert.ok(body.error.hint?.includes(`\`uniprove ${c.command}${c.command ? ' ' : ''}--help\``), what);
    }
    assert.match(run.stderr, /^error\[E_USAGE\]: /m, what);
  }
});

test('without --json a usage error is told on stderr, stdout stays empty', async () => {
  const run = await uniprove(['volume', 'fetch', '--bogus-flag']);
  assert.equal(run.exitCode, 2, describe(run));
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /error\[E_USAGE\]: unknown option '--bogus-flag'/);
  assert.match(run.stderr, /hint: Run `uniprove volume fetch --help`/);
  assert.match(run.stderr, /see: docs\/errors\.md#e_usage/);
});

test('a --json after -- belongs to the probed program, not to uniprove', async () => {
  const run = await uniprove(['discover', '--bogus-flag', '--', '--json']);
  assert.equal(run.exitCode, 2, describe(run));
  assert.equal(run.stdout, '');
});

test('--help and --version still exit 0, on every verb, with or without --json', async () => {
  const argvs = [
    ['--help'],
    ['--version'],
    ['help'],
    ['help', 'volume'],
    ...VERBS.map((verb) => [...verb, '--help']),
    ['gcp', 'run', '--help', '--json'],
  ];
  const runs = await runAll(argvs);
  for (const [i, run] of runs.entries()) {
    const argv = argvs[i] as string[];
    assert.equal(run.exitCode, 0, `uniprove ${argv.join(' ')}: ${describe(run)}`);
    assert.match(run.stdout, argv[0] === '--version' ? /^\d+\.\d+\.\d+/ : /^Usage: uniprove/);
  }
});

test('a command with sub-verbs given none is a usage error, its help on stderr', async () => {
  const run = await uniprove(['gcp']);
  assert.equal(run.exitCode, 2, describe(run));
  assert.match(run.stderr, /Usage: uniprove gcp/);
  assert.match(run.stderr, /error\[E_USAGE\]: uniprove gcp needs a command: image, run, ls, gc/);
});

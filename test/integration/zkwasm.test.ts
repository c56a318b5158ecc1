/**
 * DelphinusLab's zkWasm (`zkwasm-cli`), a real prover that others wrote, through uniprove: its `setup` at
 * k=18 run from a package alone (natively, in bubblewrap: the real binary, 134 CPU-s), the setup output made
 * an Ops volume, the prove recipe packaged, and the CLI started inside Nanos on that volume (`dry-run`: it
 * reads the setup's config from the volume and executes the wasm program; no proof). Its `prove` takes 403
 * CPU-s natively and the better part of an hour or more under TCG (docs/provers.md), more than a test may
 * take: it is run by hand (`uniprove run provers/zkwasm --binary zkwasm-cli --timeout 28800`). Needs the CLI
 * (UNIPROVE_ZKWASM_CLI and UNIPROVE_ZKWASM_WASM, or UNIPROVE_TOOLCHAIN); without it these tests skip (and
 * fail under UNIPROVE_REQUIRE=zkwasm or all).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { gate, needTool, needUnikernel } from '../helpers/tools.js';
import { findZkwasmCli, findZkwasmWasm, ZKWASM_BUILD } from '../helpers/zkwasm.js';

const cli = findZkwasmCli();
const wasm = findZkwasmWasm();
const noCli = gate('zkwasm', cli && wasm ? undefined : `no zkwasm-cli or wasm_output.wasm: ${ZKWASM_BUILD}`);
if (noCli) console.log(`# zkwasm tests: ${noCli}`);

const DRY_RUN = [
  '--params',
  './params',
  'wasm_output',
  'dry-run',
  '--wasm',
  './zkwasm-wasm_output.wasm',
  '--public',
  '133:i64',
  '--public',
  '2:i64',
  '--output',
  '/tmp/output',
];

/** The shipped recipe in `<dir>/<name>`, with the wasm program beside it and `change` applied. */
async function recipeFolder(dir: string, name: string, change: Record<string, unknown>): Promise<string> {
  const recipe = join(dir, name);
  const shipped = join(REPO_ROOT, 'provers', 'zkwasm');
  await mkdir(join(recipe, 'etc'), { recursive: true });
  for (const f of ['hosts', 'nsswitch.conf', 'host.conf'])
    await copyFile(join(shipped, 'etc', f), join(recipe, 'etc', f));
  await copyFile(wasm as string, join(recipe, 'zkwasm-wasm_output.wasm'));
  const json = JSON.parse(await readFile(join(shipped, 'recipe.json'), 'utf8'));
  await writeFile(
    join(recipe, 'recipe.json'),
    JSON.stringify({ ...json, $schema: undefined, name, ...change }),
  );
  return recipe;
}

interface Setup {
  dir: string;
  /** The setup output on the host: K18.params, wasm_output.circuit.finalized.data, wasm_output.zkwasm.config. */
  params: string;
  durationMs: number;
}

let setupOnce: Promise<Setup> | undefined;
/** The set the tests import the setup output as: its own name, so its own Ops volume. */
const TEST_SET = 'zkwasm-test-k18';
/** Sets whose Ops volume a run may have built (`volume rm` takes the set's name, not its file). */
const sets = new Set<string>();
/**
 * One folder for the whole file, outside /tmp (verify mounts a fresh /tmp): the setup output lives as long
 * as the file. When the file ends, the Ops volumes go first (`volume rm` reads the set file), then the folder.
 */
let shared: Promise<string> | undefined;
after(async () => {
  if (!shared) return;
  const dir = await shared;
  for (const set of sets) {
    const r = await uniprove(['volume', 'rm', set, '--json'], {
      env: { UNIPROVE_CACHE: join(dir, 'cache') },
    });
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  }
  if (!process.env.UNIPROVE_KEEP_TMP) await rm(dir, { recursive: true, force: true });
});

/**
 * `zkwasm-cli --params ./params wasm_output setup -k 18` from a package alone (uniprove verify, the package as
 * the whole file system, /params bound to a host folder), once for this file: its output is the volume the
 * other tests mount.
 */
function setupFromPackage(): Promise<Setup> {
  setupOnce ??= (async () => {
    await mkdir('/var/tmp', { recursive: true });
    shared = mkdtemp(join('/var/tmp', 'uniprove-zkwasm-'));
    const dir = await shared;
    const recipe = await recipeFolder(dir, 'zkwasm-setup', {
      args: [
        '--params',
        './params',
        'wasm_output',
        'setup',
        '-k',
        '18',
        '--wasm',
        './zkwasm-wasm_output.wasm',
      ],
      volumes: [],
      dirs: [{ guest: '/params', reason: 'where setup writes; verify binds a host folder here' }],
      proof: { kind: 'none' },
    });
    const out = join(dir, 'setup-pkg');
    const p = await uniprove(['package', recipe, '--binary', cli as string, '--out', out, '--json']);
    assert.equal(p.exitCode, 0, p.stdout + p.stderr);
    const params = join(dir, 'params');
    await mkdir(params);
    const r = await uniprove(
      ['verify', out, '--bind', `/params=${params}`, '--no-trace', '--json', '--timeout', '1200'],
      {
        timeoutMs: 1_300_000,
      },
    );
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    const v = parseJson<{ ok: boolean; durationMs: number }>(r);
    assert.equal(v.ok, true);
    return { dir, params, durationMs: v.durationMs };
  })();
  return setupOnce;
}

/** The prove recipe with the setup output as its volume (a set of its own name, so its own Ops volume). */
async function proveRecipe(setup: Setup): Promise<string> {
  const recipe = await recipeFolder(setup.dir, 'zkwasm', {});
  const set = join(recipe, 'zkwasm-params.json');
  sets.add(TEST_SET);
  const r = await uniprove([
    'volume',
    'import',
    setup.params,
    '--name',
    TEST_SET,
    '--mount-path',
    '/params',
    '-o',
    set,
  ]);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  return recipe;
}

const skipSetup = noCli ?? needTool('bwrap', 'apt-get install bubblewrap');

test('setup -k 18 from the package alone: zkwasm-cli writes the params, the circuit data and its config', {
  skip: skipSetup,
  timeout: 1_400_000,
}, async () => {
  const { params } = await setupFromPackage();
  assert.deepEqual((await readdir(params)).sort(), [
    'K18.params',
    'wasm_output.circuit.finalized.data',
    'wasm_output.zkwasm.config',
  ]);
  assert.equal((await stat(join(params, 'K18.params'))).size, 16_777_288);
  // The config names the params by the path setup was given: ./params, which is /params in the guest.
  assert.match(await readFile(join(params, 'wasm_output.zkwasm.config'), 'utf8'), /\.\/params\/K18\.params/);
});

test('package zkwasm --binary: the CLI, libstdc++, its own /etc/hosts and nsswitch.conf, the setup as a volume', {
  skip: skipSetup,
  timeout: 1_400_000,
}, async () => {
  const setup = await setupFromPackage();
  const recipe = await proveRecipe(setup);
  const out = join(setup.dir, 'pkg');
  const r = await uniprove(['package', recipe, '--binary', cli as string, '--out', out, '--json']);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const config = JSON.parse(await readFile(join(out, 'local.json'), 'utf8'));
  assert.equal(config.Program, 'zkwasm-cli');
  assert.deepEqual(config.Args.slice(0, 4), ['--params', './params', 'wasm_output', 'prove']);
  assert.deepEqual(Object.values(config.Mounts), ['/params:ro']);
  // 2 vCPUs and 16G (10G stopped the kernel with 2 proving threads), RAYON_NUM_THREADS following the vCPUs.
  assert.equal(config.RunConfig.Memory, '16G');
  assert.equal(config.RunConfig.CPUs, 2);
  assert.equal(config.Env.RAYON_NUM_THREADS, '2');
  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as {
    files: { path: string; reasons: string[] }[];
  };
  const paths = lock.files.map((f) => f.path);
  for (const want of [
    '/zkwasm-cli',
    '/zkwasm-wasm_output.wasm',
    '/etc/hosts',
    '/etc/nsswitch.conf',
    '/etc/host.conf',
  ])
    assert.ok(paths.includes(want), `${want} not in ${paths.join(', ')}`);
  assert.ok(paths.some((p) => /\/libstdc\+\+\.so\.6$/.test(p)));
  // The setup output is the volume's, never the package's.
  assert.ok(!paths.some((p) => /K18\.params|finalized/.test(p)));
});

const skipNanos = skipSetup ?? needUnikernel();

/** `uniprove run` of the prove recipe inside Nanos (the setup as its volume), with these zkwasm-cli arguments. */
async function runInNanos(args: readonly string[]) {
  const setup = await setupFromPackage();
  const recipe = await proveRecipe(setup);
  return uniprove(
    [
      'run',
      recipe,
      '--binary',
      cli as string,
      '--package-out',
      join(setup.dir, 'run-pkg'),
      '--runs-dir',
      join(setup.dir, 'runs'),
      '--memory',
      '2G',
      '--timeout',
      '600',
      '--json',
      ...args.map((a) => `--arg=${a}`),
    ],
    { env: { UNIPROVE_CACHE: join(setup.dir, 'cache') }, timeoutMs: 900_000 },
  );
}

test('run zkwasm inside Nanos: the CLI reads the setup config from the volume and executes the wasm (dry-run)', {
  skip: skipNanos,
  timeout: 1_600_000,
}, async () => {
  const r = await runInNanos(DRY_RUN);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; dir: string }>(r);
  assert.equal(run.outcome, 'succeeded');
  const console = await readFile(join(run.dir, 'console.log'), 'utf8');
  assert.match(console, /total guest instructions used 11/);
});

test('run zkwasm inside Nanos with --params naming no folder: exit 1, and the findings say a file went unnamed', {
  skip: skipNanos,
  timeout: 1_600_000,
}, async () => {
  const r = await runInNanos(DRY_RUN.map((a) => (a === './params' ? './zkparams' : a)));
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; findings?: { kind: string; name: string; evidence: string[] }[] }>(
    r,
  );
  assert.equal(run.outcome, 'failed');
  const found = run.findings?.find((f) => f.kind === 'missing-file');
  assert.ok(found, JSON.stringify(run.findings));
  assert.equal(found.name, 'an unnamed file');
  assert.match(found.evidence.join('\n'), /No such file or directory \(os error 2\)/);
});

/**
 * `uniprove run` against the real thing: ops build, a Nanos kernel, QEMU (TCG is fine).
 * A real Groth16 proof verified by the host, a failing prover's real exit status, a prover
 * that never ends killed at the timeout, Ctrl-C during boot, bad input; never a QEMU left behind.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseNanosManifest } from '../../src/core/diagnose/image-contents.js';
import { filesFromOutside } from '../../src/core/image/contents.js';
import { CLI, type CliRun, parseJson, uniprove } from '../helpers/cli.js';
import { buildDemoProver, needCargo } from '../helpers/demo-prover.js';
import { compileC } from '../helpers/gcc.js';
import { assertRunRecord } from '../helpers/record.js';
import { tempDir } from '../helpers/tmp.js';
import { findTool, needGcc, needNanos, needOps, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# run-local tests skipped: ${skip}`);

interface RunJson {
  id: string;
  dir: string;
  outcome: string;
  exitCode: number | null;
  accel: string;
  proofs: { path: string; sha256: string; source: string }[];
  timings: Record<string, number>;
  imageCache: string | null;
}

/** QEMU processes whose command line mentions `needle`. */
async function qemuProcesses(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('qemu-system') && cmd.includes(needle)) found.push(pid);
  }
  return found;
}

const EXIT_WITH = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) { int c = argc > 1 ? atoi(argv[1]) : 0; printf("exiting with %d\\n", c); fflush(stdout); return c; }`;
const SLEEP_FOREVER = `#include <stdio.h>
#include <unistd.h>
int main(void) { printf("SLEEPER-STARTED\\n"); fflush(stdout); for (;;) sleep(1000); }`;

/** A recipe folder for a tiny static C program (no probe: it may fail or never end). */
async function tinyRecipe(dir: string, name: string, source: string, args: string[] = []): Promise<string> {
  const folder = join(dir, name);
  await execa('mkdir', ['-p', folder]);
  await compileC(folder, name, source, ['-static']);
  await writeFile(
    join(folder, 'recipe.json'),
    JSON.stringify({
      name,
      binary: `./${name}`,
      args,
      probe: { skip: true },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  return folder;
}

test('run demo: a real proof comes back and the host verifies it', {
  skip: skip ?? needCargo(),
  timeout: 15 * 60_000,
}, async () => {
  const prover = await buildDemoProver();
  assert.ok(prover);
  const dir = await tempDir();
  const r = await uniprove(
    [
      'run',
      'demo',
      '--binary',
      prover,
      '--package-out',
      join(dir, 'pkg'),
      '--copy-out',
      '/tmp/proof',
      '--timeout',
      '600',
      '--json',
    ],
    { cwd: dir, timeoutMs: 10 * 60_000 },
  );
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<RunJson>(r);
  assert.equal(run.outcome, 'succeeded');
  assert.equal(run.exitCode, 0);
  const proof = run.proofs.find((p) => p.path.endsWith('proof.bin'));
  const pub = run.proofs.find((p) => p.path.endsWith('public.json'));
  const consoleProof = run.proofs.find((p) => p.source === 'console');
  assert.ok(proof && pub && consoleProof, JSON.stringify(run.proofs));
  // The console copy and the file copied out of the image are the same proof.
  const hex = (await readFile(consoleProof.path, 'utf8')).replace(/\s+/g, '');
  assert.equal(hex, (await readFile(proof.path)).toString('hex'));
  const digest = (await execa('sha256sum', [proof.path])).stdout.split(' ')[0];
  assert.equal(digest, proof.sha256);

  const keys = join(dir, 'host-keys');
  await execa(prover, ['setup', '--out', keys, '--seed', '1']);
  const ok = await execa(
    prover,
    ['verify', '--vk', join(keys, 'vk.bin'), '--proof', proof.path, '--public', pub.path],
    {
      reject: false,
    },
  );
  assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /proof OK/);

  // The record: config, manifest, command line, console, one CSV line.
  const record = JSON.parse(await readFile(join(run.dir, 'record.json'), 'utf8'));
  assertRunRecord(record, 'the qemu run record');
  assert.equal(record.outcome, 'succeeded');
  assert.match(
    await readFile(join(run.dir, 'qemu-cmdline.txt'), 'utf8'),
    /-no-reboot.*isa-debug-exit|isa-debug-exit.*-no-reboot/,
  );
  assert.match(await readFile(join(run.dir, 'console.log'), 'utf8'), /UNIPROVE-PROOF-BEGIN/);
  assert.equal(
    JSON.parse(await readFile(join(run.dir, 'ops-config.json'), 'utf8')).ManifestPassthrough.debug_exit,
    't',
  );
  const csv = (await readFile(join(dir, 'runs', 'proving_report.csv'), 'utf8')).trim().split('\n');
  assert.equal(csv.length, 2);
  assert.match(csv[1] ?? '', new RegExp(`^${run.id},demo,.*,0,succeeded,`));
  assert.ok(csv[1]?.includes(proof.sha256));
  assert.ok(
    run.timings.imageBuildMs !== undefined &&
      run.timings.bootMs !== undefined &&
      run.timings.totalMs !== undefined,
  );
});

test('a failing prover is reported as failed with its exit status', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  // A cache of its own: the image cache hits and misses below are this test's, whatever else runs.
  const env = { UNIPROVE_CACHE: join(dir, 'cache') };
  const recipe = await tinyRecipe(dir, 'exitwith', EXIT_WITH, ['3']);
  const r = await uniprove(['run', recipe, '--package-out', join(dir, 'pkg'), '--json'], { cwd: dir, env });
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const run = parseJson<RunJson>(r);
  assert.equal(run.outcome, 'failed');
  assert.equal(run.exitCode, 3);
  assert.equal(run.accel === 'tcg' || run.accel === 'kvm', true);
  assert.match(await readFile(join(run.dir, 'console.log'), 'utf8'), /exiting with 3/);
  const record = JSON.parse(await readFile(join(run.dir, 'record.json'), 'utf8'));
  assert.equal(record.qemu.exitCode, 7, 'QEMU exits (3 << 1) | 1');

  assert.equal(record.imageCache.state, 'stored');

  // The same package, arguments replaced: exit 0 is success (another config, so another image).
  const ok = await uniprove(['run', join(dir, 'pkg'), '--arg', '0', '--json'], { cwd: dir, env });
  assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr);
  assert.equal(parseJson<RunJson>(ok).exitCode, 0);
  assert.equal(parseJson<RunJson>(ok).imageCache, 'stored');

  // Once more with the same inputs: the cached image boots as a snapshot (no copy), with the same result,
  // and the cached image is left as it was.
  const cachedImages = async () => {
    const images = join(dir, 'cache', 'images');
    const names = (await readdir(images)).filter((n) => n.endsWith('.img')).sort();
    return Promise.all(
      names.map(async (n) => `${n} ${(await execa('sha256sum', [join(images, n)])).stdout}`),
    );
  };
  const before = await cachedImages();
  const again = await uniprove(['run', join(dir, 'pkg'), '--arg', '0', '--json'], { cwd: dir, env });
  assert.equal(again.exitCode, 0, again.stdout + again.stderr);
  assert.equal(parseJson<RunJson>(again).imageCache, 'hit');
  const againRecord = JSON.parse(await readFile(join(parseJson<RunJson>(again).dir, 'record.json'), 'utf8'));
  assert.equal(againRecord.imageCache.boot, 'snapshot');
  assert.ok(
    againRecord.qemu.argv.some((a: string) => a.endsWith(',snapshot=on')),
    againRecord.qemu.argv,
  );
  assert.match(await readFile(join(parseJson<RunJson>(again).dir, 'console.log'), 'utf8'), /exiting with 0/);
  assert.deepEqual(await cachedImages(), before, 'a snapshot boot writes nothing into the cached image');
  // A run that reads the image afterwards (--copy-out on the root file system) boots a copy instead.
  const copied = await uniprove(
    ['run', join(dir, 'pkg'), '--arg', '0', '--copy-out', '/exitwith', '--json'],
    { cwd: dir, env },
  );
  assert.equal(copied.exitCode, 0, copied.stdout + copied.stderr);
  const copiedRun = parseJson<RunJson>(copied);
  const copiedRecord = JSON.parse(await readFile(join(copiedRun.dir, 'record.json'), 'utf8'));
  assert.equal(copiedRecord.imageCache.boot, 'copy');
  assert.equal(copiedRun.proofs.length, 1, JSON.stringify(copiedRun.proofs));
  assert.equal(
    copiedRun.proofs[0]?.sha256,
    (await execa('sha256sum', [join(recipe, 'exitwith')])).stdout.split(' ')[0],
    'the program copied back out of the image is the one packaged',
  );

  // A prover changed and packaged again is never served from the old image.
  await compileC(recipe, 'exitwith', EXIT_WITH.replace('exiting with %d', 'version two, exiting with %d'), [
    '-static',
  ]);
  const changed = await uniprove(['run', recipe, '--package-out', join(dir, 'pkg'), '--arg', '0', '--json'], {
    cwd: dir,
    env,
  });
  assert.equal(changed.exitCode, 0, changed.stdout + changed.stderr);
  assert.equal(parseJson<RunJson>(changed).imageCache, 'stored');
  assert.match(
    await readFile(join(parseJson<RunJson>(changed).dir, 'console.log'), 'utf8'),
    /version two, exiting with 0/,
  );

  // Many at once: each its own VM and record, non-zero when any failed.
  await writeFile(join(dir, 'inputs.txt'), '0\n["5"]\n# a comment\n0\n');
  const many = await uniprove(
    ['run', join(dir, 'pkg'), '--parallel', '2', '--inputs', 'inputs.txt', '--json'],
    { cwd: dir, env },
  );
  assert.equal(many.exitCode, 1, many.stdout + many.stderr);
  const m = parseJson<{ ok: boolean; summary: Record<string, number>; runs: RunJson[] }>(many);
  assert.equal(m.summary.total, 3);
  assert.equal(m.summary.succeeded, 2);
  assert.equal(m.summary.failed, 1);
  assert.deepEqual(
    m.runs.map((x) => x.exitCode),
    [0, 5, 0],
  );
  assert.equal(new Set(m.runs.map((x) => x.dir)).size, 3);
  assert.deepEqual(await qemuProcesses(dir), []);
});

test('--via ops runs plain `ops run` for parity: the console comes back, the status is unknown and says why', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await tinyRecipe(dir, 'exitwith', EXIT_WITH, ['4']);
  const r = await uniprove(['run', recipe, '--package-out', join(dir, 'pkg'), '--via', 'ops', '--json'], {
    cwd: dir,
  });
  const run = parseJson<RunJson & { warnings: { code: string }[] }>(r);
  assert.equal(run.outcome, 'unknown', r.stdout + r.stderr);
  assert.equal(run.exitCode, null, 'ops run loses the exit status; uniprove does not make one up');
  assert.notEqual(r.exitCode, 0, 'an unknown outcome is not a success');
  assert.match(await readFile(join(run.dir, 'console.log'), 'utf8'), /exiting with 4/);
  assert.ok(run.warnings.some((w) => w.code === 'via-ops'));
  const record = JSON.parse(await readFile(join(run.dir, 'record.json'), 'utf8'));
  assertRunRecord(record, 'the ops run record');
  assert.equal(basename(record.qemu.argv[0]), 'ops', 'ops as installed: on PATH or in ~/.ops/bin');
  assert.match(record.exitReason, /Ops ignores QEMU's status/);
  assert.deepEqual(await qemuProcesses(run.id), []);
});

test('a prover that never exits is killed at the timeout, and no QEMU is left', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await tinyRecipe(dir, 'sleeper', SLEEP_FOREVER);
  const r = await uniprove(['run', recipe, '--package-out', join(dir, 'pkg'), '--timeout', '4s', '--json'], {
    cwd: dir,
  });
  assert.equal(r.exitCode, 6, r.stdout + r.stderr);
  const run = parseJson<RunJson>(r);
  assert.equal(run.outcome, 'timeout');
  assert.equal(run.exitCode, null);
  const { error } = run as unknown as { error?: { code: string; message: string } };
  assert.equal(error?.code, 'E_RUN_TIMEOUT');
  assert.match(error?.message ?? '', /still running after 4 s/);
  assert.match(await readFile(join(run.dir, 'console.log'), 'utf8'), /SLEEPER-STARTED/);
  assert.deepEqual(await qemuProcesses(run.id), []);
});

test('Ctrl-C during boot stops QEMU, exits 130 and keeps the record', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await tinyRecipe(dir, 'sleeper', SLEEP_FOREVER);
  const child = execa(
    process.execPath,
    [CLI, 'run', recipe, '--package-out', join(dir, 'pkg'), '--timeout', '120'],
    {
      cwd: dir,
      reject: false,
      env: { CI: '1', UNIPROVE_CACHE: join(dir, 'cache') },
    },
  );
  let stderr = '';
  await new Promise<void>((resolve) => {
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('> boot')) resolve();
    });
    void child.then(() => resolve());
  });
  child.kill('SIGINT');
  const result = await child;
  assert.equal(result.exitCode, 130, stderr + String(result.stderr));
  const runs = await readdir(join(dir, 'runs'));
  const id = runs.find((n) => n !== 'proving_report.csv') ?? '';
  const record = JSON.parse(await readFile(join(dir, 'runs', id, 'record.json'), 'utf8'));
  assert.equal(record.outcome, 'interrupted');
  assert.deepEqual(await qemuProcesses(id), []);
});

test('Ctrl-C during run --parallel --json: exit 130, a top-level E_INTERRUPTED error, every run closed as interrupted, no QEMU left', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await tinyRecipe(dir, 'sleeper', SLEEP_FOREVER);
  await writeFile(join(dir, 'inputs.txt'), 'a\nb\n');
  const child = execa(
    process.execPath,
    [
      ...[CLI, 'run', recipe, '--package-out', join(dir, 'pkg'), '--timeout', '120'],
      ...['--parallel', '2', '--inputs', 'inputs.txt', '--json'],
    ],
    { cwd: dir, reject: false, env: { CI: '1', UNIPROVE_CACHE: join(dir, 'cache') } },
  );
  // Both machines up: QEMU's command line names each run's image, uniprove-<run id>.
  const booted = async () => {
    const ids = (await readdir(join(dir, 'runs')).catch(() => [] as string[])).filter((n) =>
      n.startsWith('r'),
    );
    const up = await Promise.all(ids.map(async (id) => (await qemuProcesses(id)).length > 0));
    return up.filter(Boolean).length;
  };
  for (let waited = 0; (await booted()) < 2; waited += 200) {
    assert.ok(
      waited < 120_000 && child.exitCode === null,
      `the two runs never both started: ${child.exitCode}`,
    );
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGINT');
  const r = await child;
  assert.equal(r.exitCode, 130, String(r.stdout) + String(r.stderr));
  const out = parseJson<{
    ok: boolean;
    error?: { code: string; message: string; hint?: string };
    runs: { outcome: string; dir: string }[];
  }>({ exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) } as CliRun);
  assert.equal(out.ok, false);
  assert.equal(out.error?.code, 'E_INTERRUPTED');
  assert.match(out.error?.message ?? '', /2 of 2 runs did not finish/);
  assert.ok(out.error?.hint, 'the error says what to do');
  assert.deepEqual(
    out.runs.map((x) => x.outcome),
    ['interrupted', 'interrupted'],
  );
  for (const run of out.runs) {
    const record = JSON.parse(await readFile(join(run.dir, 'record.json'), 'utf8'));
    assertRunRecord(record);
    assert.equal(record.outcome, 'interrupted');
    assert.ok(record.endedAt, 'closed with its end time');
  }
  for (const run of out.runs) assert.deepEqual(await qemuProcesses(basename(run.dir)), []);
});

/**
 * `uniprove run` of a recipe that sleeps forever, in a child process, once its prover has started: the child,
 * its environment, its run id and the QEMU processes running it (asserted to be some).
 */
async function runningSleeper(dir: string, flags: string[]) {
  const recipe = await tinyRecipe(dir, 'sleeper', SLEEP_FOREVER);
  const env = { CI: '1', UNIPROVE_CACHE: join(dir, 'cache') };
  const child = execa(
    process.execPath,
    [CLI, 'run', recipe, '--package-out', join(dir, 'pkg'), '--timeout', '120', ...flags],
    { cwd: dir, reject: false, env },
  );
  let stderr = '';
  await new Promise<void>((resolve) => {
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('SLEEPER-STARTED')) resolve();
    });
    void child.then(() => resolve());
  });
  const id = (await readdir(join(dir, 'runs'))).find((n) => n !== 'proving_report.csv') ?? '';
  const qemu = await qemuProcesses(id);
  assert.notEqual(qemu.length, 0, `QEMU runs before the kill\n${stderr}`);
  return { child, env, id, qemu };
}

test('a uniprove killed hard (SIGKILL) takes QEMU with it; the next run marks its record abandoned and removes its image', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const { child, env, id } = await runningSleeper(dir, ['--no-image-cache']);
  child.kill('SIGKILL');
  await child;
  let left = await qemuProcesses(id);
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = await qemuProcesses(id);
  }
  for (const pid of left) process.kill(Number(pid), 'SIGKILL');
  assert.deepEqual(left, [], 'no QEMU outlives a SIGKILLed uniprove');
  const before = JSON.parse(await readFile(join(dir, 'runs', id, 'record.json'), 'utf8'));
  assert.equal(before.outcome, 'running');
  const next = await uniprove(['run', join(dir, 'no-such-recipe')], { cwd: dir, env });
  assert.match(
    next.stderr,
    new RegExp(`swept run ${id}: its uniprove \\(pid \\d+\\) is gone; marked abandoned`),
  );
  const record = JSON.parse(await readFile(join(dir, 'runs', id, 'record.json'), 'utf8'));
  assertRunRecord(record);
  assert.equal(record.outcome, 'abandoned');
  const opsHome = join(process.env.OPS_HOME || process.env.HOME || '/root', '.ops');
  await assert.rejects(readFile(join(opsHome, 'images', `uniprove-${id}`)), { code: 'ENOENT' });
});

test('--via ops killed hard (SIGKILL): ops dies with uniprove but its QEMU does not; the next run ends that QEMU and says so', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const { child, env, id, qemu: before } = await runningSleeper(dir, ['--via', 'ops']);
  child.kill('SIGKILL');
  await child;
  try {
    // ops had a parent-death signal; QEMU, ops's child, has none and runs on, an orphan.
    await new Promise((r) => setTimeout(r, 500));
    const next = await uniprove(['run', join(dir, 'no-such-recipe')], { cwd: dir, env });
    for (const pid of before) {
      assert.match(next.stderr, new RegExp(`swept process ${pid} \\(\\S*qemu-system`), next.stderr);
    }
    assert.match(next.stderr, new RegExp(`swept run ${id}: its uniprove \\(pid \\d+\\) is gone`));
    let left = await qemuProcesses(id);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await qemuProcesses(id);
    }
    assert.deepEqual(left, [], 'no QEMU outlives the next uniprove');
    assert.equal(
      JSON.parse(await readFile(join(dir, 'runs', id, 'record.json'), 'utf8')).outcome,
      'abandoned',
    );
  } finally {
    for (const pid of await qemuProcesses(id)) process.kill(Number(pid), 'SIGKILL');
  }
});

test("a dynamic program's image holds the package's loader and libc, not this host's (the manifest read back)", {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const folder = join(dir, 'dyn');
  await execa('mkdir', ['-p', folder]);
  await compileC(folder, 'dyn', EXIT_WITH);
  await writeFile(
    join(folder, 'recipe.json'),
    JSON.stringify({
      name: 'dyn',
      binary: './dyn',
      args: ['0'],
      probe: { skip: true },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  const r = await uniprove(['run', folder, '--package-out', join(dir, 'pkg'), '--no-image-cache', '--json'], {
    cwd: dir,
    env: { CI: '1', UNIPROVE_CACHE: join(dir, 'cache') },
  });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<RunJson>(r);
  const manifest = await readFile(join(run.dir, 'manifest.txt'), 'utf8');
  const config = JSON.parse(await readFile(join(run.dir, 'ops-config.json'), 'utf8'));
  assert.equal(config.TargetRoot, join(dir, 'pkg'));
  const { files } = parseNanosManifest(manifest);
  // Relative: taken from the package folder ops built in. Before, these were /lib64/... and /lib/... of the host.
  assert.equal(files.get('/lib64/ld-linux-x86-64.so.2'), 'lib64/ld-linux-x86-64.so.2');
  assert.match(
    files.get('/lib/x86_64-linux-gnu/libc.so.6') ?? '',
    /^(usr\/)?lib\/x86_64-linux-gnu\/libc\.so\.6$/,
  );
  const opsHome = join(process.env.OPS_HOME || process.env.HOME || '/root', '.ops');
  assert.deepEqual(filesFromOutside(manifest, { packageDir: join(dir, 'pkg'), opsHome }), []);
});

test('bad input: a missing volume, no ops, no Nanos release', { skip, timeout: 5 * 60_000 }, async () => {
  const dir = await tempDir();
  const recipe = await tinyRecipe(dir, 'exitwith', EXIT_WITH);
  const pkg = join(dir, 'pkg');
  assert.equal((await uniprove(['package', recipe, '--out', pkg])).exitCode, 0);
  const config = JSON.parse(await readFile(join(pkg, 'local.json'), 'utf8'));
  config.Mounts = { 'uniprove-no-such-volume': '/data' };
  await writeFile(join(pkg, 'local.json'), JSON.stringify(config));
  const missingVol = await uniprove(['run', pkg, '--json'], { cwd: dir });
  assert.equal(missingVol.exitCode, 2, missingVol.stdout + missingVol.stderr);
  assert.match(missingVol.stderr, /E_VOLUME_MISSING.*uniprove-no-such-volume/);
  const runDir = parseJson<{ error: { details: { runDir: string } } }>(missingVol).error.details.runDir;
  assert.equal(JSON.parse(await readFile(join(runDir, 'record.json'), 'utf8')).outcome, 'error');

  // Neither on PATH nor in <OPS_HOME>/.ops/bin, where `uniprove setup` puts it.
  const noOps = await uniprove(['run', pkg], { cwd: dir, env: { PATH: '/usr/bin:/bin', OPS_HOME: dir } });
  assert.equal(noOps.exitCode, 3, noOps.stderr);
  assert.match(noOps.stderr, /E_TOOL_MISSING.*ops is not installed: not on PATH, nor in .*\.ops\/bin\/ops/);
  assert.match(noOps.stderr, /hint: Run `uniprove setup`/);

  // Ops as installed, and an OPS_HOME without a release.
  const opsBin = dirname(findTool('ops') as string);
  const noNanos = await uniprove(['run', pkg], {
    cwd: dir,
    env: { OPS_HOME: dir, PATH: `${opsBin}:${process.env.PATH}` },
  });
  assert.equal(noNanos.exitCode, 3, noNanos.stderr);
  assert.match(noNanos.stderr, /E_NANOS_MISSING/);
});

test('a disk too small: the prover fails with ENOSPC and the record says so', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const source = `#include <stdio.h>
int main(void) { FILE *f = fopen("/big", "w"); if (!f) return 9; static char b[1<<20]; for (int i = 0; i < 64; i++) if (fwrite(b, 1, sizeof b, f) != sizeof b || fflush(f)) { perror("write /big"); return 4; } return 0; }`;
  const recipe = await tinyRecipe(dir, 'filler', source);
  const r = await uniprove(
    ['run', recipe, '--package-out', join(dir, 'pkg'), '--image-size', '8m', '--json'],
    { cwd: dir },
  );
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const run = parseJson<RunJson & { warnings: { code: string }[] }>(r);
  assert.equal(run.exitCode, 4);
  assert.ok(
    run.warnings.some((w) => w.code === 'disk-full'),
    JSON.stringify(run.warnings),
  );
});

test('doctor says what the image cache holds and how to empty it', async () => {
  const dir = await tempDir();
  const images = join(dir, 'cache', 'images');
  await execa('mkdir', ['-p', images]);
  // One cached image: 64 MiB long, 1 MiB written (images are sparse; doctor counts the disk they take).
  await execa('dd', [
    'if=/dev/zero',
    `of=${join(images, `${'a'.repeat(64)}.img`)}`,
    'bs=1M',
    'count=1',
    'seek=63',
  ]);
  await writeFile(join(images, `${'a'.repeat(64)}.json`), '{"manifest":""}');
  const r = await uniprove(['doctor', '--json', '--no-probe'], {
    env: { UNIPROVE_CACHE: join(dir, 'cache') },
  });
  const d = parseJson<{ checks: { name: string; ok: boolean; detail: string }[] }>(r);
  const check = d.checks.find((c) => c.name === 'image-cache');
  assert.ok(check, d.checks.map((c) => c.name).join(','));
  assert.equal(check.ok, true);
  assert.match(check.detail, new RegExp(`^1 image, 1 MiB on disk in ${images} `));
});

test('doctor reports every check with a fix, and KVM as this host has it', {
  skip: needOps() ?? needNanos(),
  timeout: 120_000,
}, async () => {
  const r = await uniprove(['doctor', '--json']);
  const d = parseJson<{ ok: boolean; checks: { name: string; ok: boolean; detail: string; fix: string }[] }>(
    r,
  );
  const names = d.checks.map((c) => c.name);
  for (const n of [
    'ops',
    'nanos',
    'qemu',
    'kvm',
    'strace',
    'disk',
    'memory',
    'gcp-credentials',
    'gcp-project',
    'image-cache',
  ]) {
    assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
  }
  for (const c of d.checks) if (!c.ok) assert.ok(c.fix.length > 0, `${c.name} has a fix`);
  const kvm = d.checks.find((c) => c.name === 'kvm');
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
  const devKvm = await readFile('/dev/kvm').then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== 'ENOENT',
  );
  if (devKvm && !/\b(vmx|svm)\b/.test(cpuinfo)) {
    assert.equal(kvm?.ok, false);
    assert.match(kvm?.detail ?? '', /\/dev\/kvm present, unusable/);
  }
  assert.equal(r.exitCode, d.ok ? 0 : 3);
});

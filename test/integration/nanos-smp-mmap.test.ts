/**
 * Stock Nanos 0.1.55 with 2 vCPUs deadlocks when one thread munmaps a file mapping while another takes a page fault
 * (docs/provers.md, zkWasm, "Inside Nanos"): munmap holds the process's vmap lock and waits in a TLB-shootdown
 * rendezvous (page_invalidate_sync) for the other CPU, which spins for that same lock with interrupts off and
 * never takes the flush IPI. zkwasm-cli's `prove` stalls there; the recipe runs it with 1 vCPU.
 *
 * native/mmap-shared-threads.c, the smallest program found that does it: two threads each mmap 2 MiB
 * windows of one file (MAP_SHARED, PROT_READ), read every page and munmap them. Under TCG with 2 vCPUs it
 * stopped printing within the first second of the guest's run in every run here (14 of 14, volume or image
 * root, 5 of them this test); with 1 vCPU, with one thread, or with the windows kept mapped, it ends in a few
 * seconds. The toolchain's 0.1.55.1 (what set-up installs) has the fix, nanos-vmap-lock-flush.patch: there the
 * reproducer ends with 2 and 4 vCPUs. The stock 0.1.55 stays in the toolchain folder as a kernel that has the
 * deadlock: unpacked into a test's own HOME, it shows what uniprove does on such a kernel (doctor names it, a run of
 * several vCPUs falls back to one and says so, and one that insists stalls and is named by debug).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needStockNanos, needUnikernel, stockNanosHome } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# nanos-smp-mmap tests skipped: ${skip}`);

const SOURCE = join(REPO_ROOT, 'native/mmap-shared-threads.c');

interface RunJson {
  outcome: string;
  exitCode: number | null;
  dir: string;
  findings?: { kind: string; severity: string; fix: string; evidence: string[] }[];
  warnings: { code: string; message: string }[];
}

interface RecordJson {
  vcpus?: {
    asked: number;
    used: number;
    reason?: string;
    threadVars?: string[];
    kernel?: { version: string; unmapDeadlock: boolean | 'unknown'; detail: string };
  };
}

/** A recipe folder: the fixture (dynamic, as the provers are) and a 32 MiB file in the image root. */
async function recipe(threads = 2): Promise<string> {
  const dir = await tempDir();
  await execa('gcc', ['-O1', '-pthread', '-o', join(dir, 'mstt'), SOURCE]);
  const data = Buffer.alloc(32 << 20);
  for (let i = 0; i < data.length; i += 4096) data[i] = i >> 12;
  await writeFile(join(dir, 'data.bin'), data);
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'mmap-shared-threads',
      binary: './mstt',
      // 2 threads, 2 MiB windows, MAP_SHARED, 4 passes over the file: 64 windows mapped, read, unmapped.
      args: ['-t', String(threads), '-s', '-p', '4', '/data.bin'],
      files: [{ host: './data.bin', guest: '/data.bin', reason: 'the file the threads map' }],
      probe: { skip: true },
      resources: { memory: '512M', cpus: 1, threadVars: ['RAYON_NUM_THREADS'] },
    }),
  );
  return dir;
}

async function run(
  dir: string,
  cpus: number,
  timeout: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<{ run: RunJson; console: string; record: RecordJson; config: { Env?: Record<string, string> } }> {
  const r = await uniprove(
    [
      'run',
      dir,
      ...extra,
      '--cpus',
      String(cpus),
      '--accel',
      'tcg',
      '--timeout',
      timeout,
      '--package-out',
      join(dir, 'pkg'),
      '--runs-dir',
      join(dir, 'runs'),
      '--json',
      '-q',
    ],
    { cwd: dir, timeoutMs: 5 * 60_000, env },
  );
  const parsed = parseJson<RunJson>(r);
  return {
    run: parsed,
    console: await readFile(join(parsed.dir, 'console.log'), 'utf8'),
    record: JSON.parse(await readFile(join(parsed.dir, 'record.json'), 'utf8')) as RecordJson,
    config: JSON.parse(await readFile(join(parsed.dir, 'ops-config.json'), 'utf8')),
  };
}

const stockSkip = skip ?? needStockNanos();

test('1 vCPU: two threads map, read and unmap every window of the file, and the program ends', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await recipe();
  const { run: r, console: out } = await run(dir, 1, '90s');
  assert.equal(r.outcome, 'succeeded', out);
  assert.equal(r.exitCode, 0);
  assert.match(out, /MSTT-START .*threads=2 .*map=shared/);
  assert.match(out, /MSTT-DONE pages=32768 windows=64 /);
});

for (const cpus of [2, 4]) {
  test(`${cpus} vCPUs on the installed kernel (with the vmap-lock fix): ${cpus} threads map, read and unmap every window, and the program ends`, {
    skip,
    timeout: 5 * 60_000,
  }, async () => {
    const dir = await recipe(cpus);
    const { run: r, console: out, record, config } = await run(dir, cpus, '120s');
    assert.equal(r.outcome, 'succeeded', out);
    assert.equal(r.exitCode, 0);
    assert.match(out, new RegExp(`MSTT-START .*threads=${cpus} .*map=shared .*cpus=${cpus}`));
    assert.match(out, /MSTT-DONE pages=32768 windows=64 /);
    // The kernel was asked (a 2-vCPU reproducer, once per kernel) and found free of the deadlock: every vCPU kept.
    assert.equal(record.vcpus?.asked, cpus);
    assert.equal(record.vcpus?.used, cpus);
    assert.equal(record.vcpus?.kernel?.unmapDeadlock, false, JSON.stringify(record.vcpus));
    assert.equal(config.Env?.RAYON_NUM_THREADS, String(cpus), 'the thread variable follows the vCPUs');
    assert.ok(!r.warnings.some((w) => w.code === 'unmap-deadlock'), JSON.stringify(r.warnings));
  });
}

test('a kernel with the unmap deadlock (stock 0.1.55): doctor names it, and a 2-vCPU run falls back to 1 vCPU and ends', {
  skip: stockSkip,
  timeout: 5 * 60_000,
}, async () => {
  const home = await stockNanosHome(await tempDir());
  const doctor = await uniprove(['doctor', '--json'], { env: { HOME: home }, timeoutMs: 180_000 });
  const checks = parseJson<{ checks: { name: string; ok: boolean; detail: string; fix: string }[] }>(
    doctor,
  ).checks;
  const check = checks.find((c) => c.name === 'unmap-deadlock');
  assert.equal(check?.ok, false, JSON.stringify(checks));
  assert.match(
    check?.detail ?? '',
    /Nanos 0\.1\.55 HAS the unmap deadlock: the reproducer stalled with 2 vCPUs/,
  );
  assert.match(check?.fix ?? '', /ops update.*uniprove setup --force/);

  const dir = await recipe();
  const { run: r, console: out, record, config } = await run(dir, 2, '90s', [], { HOME: home });
  assert.equal(r.outcome, 'succeeded', out);
  assert.match(out, /MSTT-DONE pages=32768 windows=64 /);
  assert.match(out, /MSTT-START .*cpus=1/, 'the guest got one vCPU');
  const warning = r.warnings.find((w) => w.code === 'unmap-deadlock');
  assert.ok(warning, JSON.stringify(r.warnings));
  assert.match(warning.message, /uses 1 vCPU instead of 2 and RAYON_NUM_THREADS=1/);
  assert.match(warning.message, /--allow-unmap-deadlock/);
  assert.equal(record.vcpus?.asked, 2);
  assert.equal(record.vcpus?.used, 1);
  assert.equal(record.vcpus?.kernel?.unmapDeadlock, true);
  assert.match(record.vcpus?.reason ?? '', /1 vCPU instead of 2/);
  assert.equal(config.Env?.RAYON_NUM_THREADS, '1');
});

test('2 vCPUs on that kernel with --allow-unmap-deadlock: it deadlocks at the first munmap that races a page fault, and debug names it', {
  skip: stockSkip,
  timeout: 5 * 60_000,
}, async () => {
  const home = await stockNanosHome(await tempDir());
  const dir = await recipe();
  // With the trace on (as a user who asks why), so that the record's diagnosis is tested on the real console.
  const { run: r, console: out } = await run(dir, 2, '45s', ['--trace', '--allow-unmap-deadlock'], {
    HOME: home,
  });
  assert.match(out, /MSTT-START .*threads=2 .*map=shared .*cpus=2/);
  assert.ok(
    r.warnings.some((w) => w.code === 'unmap-deadlock-allowed'),
    JSON.stringify(r.warnings),
  );
  // Natively and with 1 vCPU the whole program takes seconds; 45 s without its last line is the stall.
  assert.equal(
    r.outcome,
    'timeout',
    `the 2-vCPU run ended (${r.outcome}): has this Nanos fixed the munmap/page-fault deadlock? ${out}`,
  );
  assert.doesNotMatch(out, /MSTT-DONE/);
  const windows = out.split('\n').filter((l) => l.startsWith('MSTT worker=')).length;
  assert.ok(windows < 64, `${windows} windows`);
  // The record says what it is and what to do: a thread stopped inside an unmap, and one vCPU.
  const stall = r.findings?.find((f) => f.kind === 'unmap-stall');
  assert.ok(stall, JSON.stringify(r.findings));
  assert.equal(stall.severity, 'error');
  assert.match(stall.fix, /--cpus 1/);
  assert.ok(
    stall.evidence.some((e) => / vmap_remove_intersection: /.test(e)),
    stall.evidence.join('\n'),
  );
});

/**
 * How many vCPUs a run gets (run/vcpus.ts) and how a kernel that stops is read off the console
 * (diagnose/kernel-stop.ts): the decisions a user sees in the record, on real console lines.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KernelStopWatch, kernelStopLine } from '../../src/core/diagnose/kernel-stop.js';
import { buildOpsConfig } from '../../src/core/manifest/build.js';
import type { OpsConfig } from '../../src/core/manifest/schema.js';
import type { PreparedTarget } from '../../src/core/package/target.js';
import { loadRecipe } from '../../src/core/recipe/load.js';
import type { RunRecord } from '../../src/core/record/record.js';
import { fitVcpus, type KernelVerdict } from '../../src/core/run/vcpus.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const ASSERT_CONSOLE = join(
  REPO_ROOT,
  'test/fixtures/nanos/zkwasm-prove-2vcpu-kernel-assert.tcg/console.log',
);

function target(cpus: number, threadVars: string[] = []): PreparedTarget {
  return {
    name: 'p',
    packageDir: '/nowhere',
    config: {
      Program: 'p',
      RunConfig: { CPUs: cpus, Memory: '1G' },
      Env: Object.fromEntries(threadVars.map((v) => [v, String(cpus)])),
    } as OpsConfig,
    recipe: undefined,
    proof: { kind: 'none' },
    volumes: [],
    bytes: 0,
    threadVars,
  };
}

function record(): RunRecord {
  return { warnings: [] } as unknown as RunRecord;
}

const verdict = (affected: boolean | undefined): KernelVerdict => ({
  affected,
  kernel: { version: affected ? '0.1.55' : '0.1.55.1' },
  detail: affected ? 'the reproducer stalled with 2 vCPUs' : 'the reproducer ended with 2 vCPUs in 2.4 s',
});

test('an affected kernel: a 4-vCPU run gets 1 vCPU, its thread variables 1, a warning that says how to insist', async () => {
  const r = record();
  let asked = 0;
  const out = await fitVcpus(target(4, ['RAYON_NUM_THREADS', 'TOKIO_WORKER_THREADS']), r, {
    verdict: async () => {
      asked++;
      return verdict(true);
    },
    fix: 'Update Nanos.',
  });
  assert.equal(asked, 1);
  assert.equal(out.config.RunConfig?.CPUs, 1);
  assert.deepEqual(out.config.Env, { RAYON_NUM_THREADS: '1', TOKIO_WORKER_THREADS: '1' });
  assert.equal(r.vcpus?.asked, 4);
  assert.equal(r.vcpus?.used, 1);
  assert.equal(r.vcpus?.kernel?.unmapDeadlock, true);
  assert.equal(r.warnings.length, 1);
  assert.equal(r.warnings[0]?.code, 'unmap-deadlock');
  assert.match(
    r.warnings[0]?.message ?? '',
    /uses 1 vCPU instead of 4 and RAYON_NUM_THREADS=1, TOKIO_WORKER_THREADS=1.*--allow-unmap-deadlock.*Update Nanos\./,
  );
});

test('an affected kernel with --allow-unmap-deadlock keeps the vCPUs and warns; a fixed one keeps them quietly', async () => {
  const allowed = record();
  const kept = await fitVcpus(target(2), allowed, {
    verdict: async () => verdict(true),
    allowUnmapDeadlock: true,
    fix: 'Update Nanos.',
  });
  assert.equal(kept.config.RunConfig?.CPUs, 2);
  assert.equal(allowed.vcpus?.used, 2);
  assert.equal(allowed.warnings[0]?.code, 'unmap-deadlock-allowed');

  const fixed = record();
  const same = await fitVcpus(target(2), fixed, { verdict: async () => verdict(false), fix: '' });
  assert.equal(same.config.RunConfig?.CPUs, 2);
  assert.deepEqual(fixed.warnings, []);
  assert.equal(fixed.vcpus?.kernel?.unmapDeadlock, false);
  // A verdict that could not be had does not take vCPUs away; the record says it is unknown.
  const unknown = record();
  await fitVcpus(target(2), unknown, { verdict: async () => verdict(undefined), fix: '' });
  assert.equal(unknown.vcpus?.used, 2);
  assert.equal(unknown.vcpus?.kernel?.unmapDeadlock, 'unknown');
});

test('a 1-vCPU run never asks the kernel', async () => {
  const r = record();
  await fitVcpus(target(1), r, {
    verdict: async () => {
      throw new Error('asked');
    },
    fix: '',
  });
  assert.deepEqual(r.vcpus, { asked: 1, used: 1 });
});

test('resources.cpus "all" is this host\'s cores, and resources.threadVars follow it into the Ops config', async () => {
  const dir = await tempDir();
  const { writeFile, copyFile } = await import('node:fs/promises');
  await copyFile('/bin/true', join(dir, 'prover'));
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'all-cpus',
      binary: './prover',
      env: { RUST_LOG: 'info' },
      resources: { memory: '1G', cpus: 'all', threadVars: ['RAYON_NUM_THREADS'] },
    }),
  );
  const recipe = await loadRecipe(join(dir, 'recipe.json'), { cwd: dir });
  assert.equal(recipe.resources.cpus, availableParallelism());
  assert.equal(recipe.resources.cpusAll, true);
  const config = buildOpsConfig({ base: {}, recipe, files: [], dirs: [], mounts: {} });
  assert.equal(config.RunConfig?.CPUs, availableParallelism());
  assert.deepEqual(config.Env, { RAYON_NUM_THREADS: String(availableParallelism()), RUST_LOG: 'info' });
});

test('kernel stops are told from program output: the assertion, a fault header, an interrupt fault; not a user crash', () => {
  assert.equal(
    kernelStopLine(
      'assertion ctx->refcount.c > 1 failed at /usr/src/nanos/src/unix/syscall.c:2556 (IP 0xffffffff93b16795) in syscall_handler()',
    ),
    'now',
  );
  assert.equal(kernelStopLine('cpu: 1, context type: 2'), 'dump');
  assert.equal(kernelStopLine('exception during interrupt handling'), 'dump');
  assert.equal(kernelStopLine('cannot get physical page for vaddr 0x1000, ctx 0xffff8000; OOM'), 'now');
  for (const line of [
    '*** signal 7 received by tid 3, errno 0, code 2',
    'frame trace:',
    'lastvector: 000000000000000e (Page fault)',
    'assertion failed: left == right',
    "thread 'main' panicked at src/main.rs:3:5:",
  ])
    assert.equal(kernelStopLine(line), undefined, line);
});

test('the watch stops on the real console whatever its chunks, even with the last line unterminated', async () => {
  const text = await readFile(ASSERT_CONSOLE, 'utf8');
  for (const size of [1, 7, 64, text.length]) {
    const watch = new KernelStopWatch();
    for (let i = 0; i < text.length; i += size) watch.push(text.slice(i, i + size));
    assert.equal(watch.stopped, true, `chunks of ${size}`);
    assert.match(watch.quote ?? '', /^assertion ctx->refcount\.c > 1 failed at .* in syscall_handler\(\)$/);
  }
  const cut = new KernelStopWatch();
  cut.push(text.trimEnd());
  assert.equal(cut.stopped, true, 'no newline after the last words');
  const quiet = new KernelStopWatch();
  quiet.push(text.slice(0, text.indexOf('assertion')));
  assert.equal(quiet.stopped, false, 'the frame trace alone is no stop');
});

test('a fault dump stops the machine after its grace, quoting the fault message before the header', async () => {
  const watch = new KernelStopWatch(50);
  watch.push(
    '[3.1] starting\nbug: pte entries reserved or corrupt\ncpu: 0, context type: 1\nlastvector: 0e\n',
  );
  assert.equal(watch.stopped, false, 'the dump goes on printing for a moment');
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(watch.stopped, true);
  assert.equal(watch.quote, 'bug: pte entries reserved or corrupt (cpu: 0, context type: 1)');
});

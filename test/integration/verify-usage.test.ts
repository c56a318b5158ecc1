/**
 * verify reports the prover's CPU time and peak memory, measured by native/rusage.c around the sandbox: a real
 * C program that touches 64 MiB and burns CPU, run from its package in bubblewrap, traced and untraced.
 */
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { findTool, needGcc, needTool } from '../helpers/tools.js';

const skip =
  needGcc() ??
  needTool('strace', 'apt-get install strace') ??
  needTool('bwrap', 'apt-get install bubblewrap');

const MIB = 1024 * 1024;

// Touches every page of 64 MiB (so all of it is resident at once), then burns CPU reading it back.
const HOG = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  size_t n = 64u << 20;
  volatile unsigned char *p = malloc(n);
  if (!p) return 2;
  memset((void *)p, 1, n);
  unsigned long sum = 0;
  for (int round = 0; round < 6; round++)
    for (size_t i = 0; i < n; i += 7) sum += p[i] ^ (unsigned char)round;
  printf("sum %lu\\n", sum);
  return 0;
}
`;

interface VerifyJson {
  ok: boolean;
  usage?: { userMs: number; sysMs: number; cpuMs: number; maxRssBytes: number; suggestedMemory: string };
  warnings: { code: string; message: string }[];
}

async function packageHog(memory: string) {
  const dir = await tempDirOutsideTmp();
  const bin = await compileC(dir, 'hog', HOG);
  const recipeDir = join(dir, 'recipe');
  await mkdir(recipeDir);
  await writeFile(
    join(recipeDir, 'recipe.json'),
    JSON.stringify({ name: 'hog', binary: bin, resources: { memory, cpus: 1 } }),
  );
  const out = join(dir, 'pkg');
  const packaged = await uniprove(['package', recipeDir, '--out', out]);
  assert.equal(packaged.exitCode, 0, packaged.stdout + packaged.stderr);
  return { dir, out };
}

function assertUsage(v: VerifyJson, label: string) {
  assert.equal(v.ok, true, label);
  assert.ok(v.usage, `${label}: usage is reported`);
  const { userMs, sysMs, cpuMs, maxRssBytes } = v.usage;
  assert.ok(maxRssBytes >= 64 * MIB, `${label}: peak ${maxRssBytes} bytes covers the 64 MiB touched`);
  assert.ok(maxRssBytes < 160 * MIB, `${label}: peak ${maxRssBytes} bytes is the prover's, not a sum`);
  assert.ok(cpuMs > 0 && userMs > 0, `${label}: CPU ${cpuMs} ms`);
  assert.ok(Math.abs(cpuMs - userMs - sysMs) < 0.01, `${label}: cpuMs is user + sys`);
}

test('verify reports the CPU time and peak memory of the prover in bubblewrap, traced or not', {
  skip,
}, async () => {
  const { out } = await packageHog('2G');
  for (const args of [[], ['--no-trace']]) {
    const label = args.join(' ') || 'traced';
    const run = await uniprove(['verify', out, '--json', ...args]);
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);
    const v = parseJson<VerifyJson>(run);
    assertUsage(v, label);
    assert.equal(v.usage?.suggestedMemory, '192M', `${label}: 64 MiB and its headroom, in 64 MiB steps`);
    assert.deepEqual(v.warnings, [], `${label}: 2G is plenty`);
  }
  const human = await uniprove(['verify', out]);
  assert.equal(human.exitCode, 0, human.stderr);
  const line = /CPU (\d+\.\d\d) s \((\d+\.\d\d) user, (\d+\.\d\d) sys\), peak memory (\d+\.\d) MiB/.exec(
    human.stdout,
  );
  assert.ok(line, human.stdout);
  assert.ok(Number(line[1]) > 0, line[0]);
  assert.ok(Number(line[4]) >= 64 && Number(line[4]) < 160, line[0]);
  assert.match(human.stdout, /suggested guest memory 192M/);
  assert.doesNotMatch(human.stderr, /warning/);
});

test('verify warns when the recipe gives the guest less memory than the prover took', { skip }, async () => {
  const { out } = await packageHog('64M');
  const run = await uniprove(['verify', out, '--json', '--no-trace']);
  assert.equal(run.exitCode, 0, run.stdout + run.stderr);
  const v = parseJson<VerifyJson>(run);
  assertUsage(v, 'untraced');
  assert.deepEqual(
    v.warnings.map((w) => w.code),
    ['guest-memory'],
  );
  assert.match(v.warnings[0]?.message ?? '', /guest gets 64M \(resources\.memory\): give it 192M or more/);
  const human = await uniprove(['verify', out, '--no-trace']);
  assert.equal(human.exitCode, 0, human.stderr);
  assert.match(human.stderr, /warning: the program peaked at 6\d MiB resident here/);
});

test('without gcc and no cached helper, verify still runs and says the figures were not measured', {
  skip,
}, async () => {
  const { dir, out } = await packageHog('2G');
  // A PATH with bubblewrap alone: no gcc to compile the helper, no strace; a cache that holds no helper yet.
  const bin = join(dir, 'bin');
  await mkdir(bin);
  await symlink(findTool('bwrap') as string, join(bin, 'bwrap'));
  const run = await uniprove(['verify', out, '--json'], {
    env: { PATH: bin, UNIPROVE_CACHE: join(dir, 'cache') },
  });
  assert.equal(run.exitCode, 0, run.stdout + run.stderr);
  const v = parseJson<VerifyJson>(run);
  assert.equal(v.ok, true);
  assert.equal(v.usage, undefined);
  assert.deepEqual(
    v.warnings.map((w) => w.code),
    ['usage-unmeasured'],
  );
  assert.match(v.warnings[0]?.message ?? '', /gcc is not installed/);
});

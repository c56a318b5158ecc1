/**
 * The debugging loop inside a real Nanos guest: a prover packaged without the
 * plugin it dlopens dies at once; `uniprove debug` reads the console of that
 * run, `--fix` adds the plugin and packages again, and the next run succeeds.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { buildPluginFixture } from '../helpers/plugin-fixture.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# debug-nanos tests skipped: ${skip}`);

interface RunJson {
  dir: string;
  outcome: string;
  exitCode: number | null;
}

test('a prover that dies at once in Nanos: debug --fix on its console, and the next run works', {
  skip,
  timeout: 300_000,
}, async () => {
  const dir = await tempDirOutsideTmp();
  const fx = await buildPluginFixture(join(dir, 'src'));
  const recipeDir = join(dir, 'recipe');
  await mkdir(recipeDir);
  // Only the ELF closure, as ldd (and Ops) see it: the plugin is left out.
  await writeFile(
    join(recipeDir, 'recipe.json'),
    JSON.stringify({ name: 'plug', binary: fx.main, probe: { skip: true } }),
  );
  const pkg = join(dir, 'pkg');
  const runs = join(dir, 'runs');
  assert.equal((await uniprove(['package', recipeDir, '--out', pkg])).exitCode, 0);

  const first = await uniprove(['run', pkg, '--runs-dir', runs, '--timeout', '120', '--json'], {
    timeoutMs: 200_000,
  });
  assert.equal(first.exitCode, 1, first.stderr);
  const failed = parseJson<RunJson>(first);
  assert.equal(failed.exitCode, 3, 'main exits 3 when dlopen fails');

  const console = join(failed.dir, 'console.log');
  const debugged = await uniprove(['debug', console, '--package', pkg, '--fix', '--json']);
  assert.equal(debugged.exitCode, 0, debugged.stdout + debugged.stderr);
  const d = parseJson<{
    findings: { kind: string; name: string; hostPath?: string; guestPath?: string; evidence: string[] }[];
    fix: { added: { hostPath: string; guestPath: string }[] };
  }>(debugged);
  const miss = d.findings.find((f) => f.kind === 'missing-library' && f.name === 'libplug.so');
  assert.ok(miss, JSON.stringify(d.findings, null, 2));
  assert.ok(
    miss.evidence.some((e) => e.includes('cannot open shared object file')),
    "the program's own error is the evidence",
  );
  assert.equal(miss.hostPath, fx.plugin);
  assert.deepEqual(
    d.fix.added.map((a) => a.guestPath),
    [fx.plugin],
  );

  const second = await uniprove(['run', pkg, '--runs-dir', runs, '--timeout', '120', '--json'], {
    timeoutMs: 200_000,
  });
  assert.equal(second.exitCode, 0, second.stderr);
  const ok = parseJson<RunJson>(second);
  assert.equal(ok.outcome, 'succeeded');
  assert.equal(ok.exitCode, 0);
});

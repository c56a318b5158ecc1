/**
 * The loop an operator goes through when a prover dies at once: package it
 * without the plugin it dlopens, run it from the package (it fails), feed the
 * log to `debug --fix`, and the package made again runs.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { buildPluginFixture } from '../helpers/plugin-fixture.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { needGcc, needTool } from '../helpers/tools.js';

const skip =
  needGcc() ??
  needTool('strace', 'apt-get install strace') ??
  needTool('bwrap', 'apt-get install bubblewrap');

test('verify fails, debug --fix adds the dlopened plugin to the recipe, the new package runs', {
  skip,
}, async () => {
  const dir = await tempDirOutsideTmp();
  const fx = await buildPluginFixture(join(dir, 'src'));
  const recipeDir = join(dir, 'recipe');
  await mkdir(recipeDir);
  const recipeFile = join(recipeDir, 'recipe.json');
  // No probe: only the ELF closure, as ldd (and Ops) would see it.
  await writeFile(
    recipeFile,
    JSON.stringify({ name: 'plug', binary: fx.main, probe: { skip: true } }, null, 2),
  );
  const pkg = join(dir, 'pkg');
  assert.equal((await uniprove(['package', recipeDir, '--out', pkg])).exitCode, 0);

  const first = await uniprove(['verify', pkg, '--json']);
  assert.equal(first.exitCode, 1);
  const failed = parseJson<{ missing: string[]; error?: { code: string; message: string } }>(first);
  assert.ok(failed.missing.some((m) => m.endsWith('libplug.so')));
  assert.equal(failed.error?.code, 'E_VERIFY_FAILED');
  assert.match(failed.error?.message ?? '', /missing from the package: .*libplug\.so/);
  const log = join(dir, 'verify-strace.log');
  await writeFile(log, await readFile(join(pkg, '.uniprove', 'verify', 'strace.log')));

  const diagnosed = await uniprove(['debug', log, '--package', pkg, '--fix', '--json']);
  assert.equal(diagnosed.exitCode, 0, diagnosed.stdout + diagnosed.stderr);
  const d = parseJson<{
    findings: { kind: string; name: string; hostPath?: string; guestPath?: string }[];
    fix: {
      recipe: string;
      added: { hostPath: string; guestPath: string; reason: string }[];
      package: string;
    };
  }>(diagnosed);
  const miss = d.findings.find((f) => f.kind === 'missing-library');
  assert.equal(miss?.name, 'libplug.so');
  assert.equal(miss?.hostPath, fx.plugin);
  assert.equal(d.fix.recipe, recipeFile);
  assert.deepEqual(
    d.fix.added.map((a) => a.guestPath),
    [fx.plugin],
  );
  assert.equal(d.fix.package, pkg);

  const recipe = JSON.parse(await readFile(recipeFile, 'utf8'));
  assert.equal(recipe.files[0].host, fx.plugin);
  assert.match(recipe.files[0].reason, /uniprove debug: missing-library libplug\.so/);

  const second = await uniprove(['verify', pkg, '--json']);
  assert.equal(second.exitCode, 0, second.stdout + second.stderr);
  assert.equal(parseJson<{ ok: boolean }>(second).ok, true);
  assert.equal(parseJson<{ error?: unknown }>(second).error, undefined);
});

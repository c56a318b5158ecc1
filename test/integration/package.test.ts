import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
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

interface LockFile {
  files: {
    path: string;
    type: string;
    sha256?: string;
    target?: string;
    reasons: string[];
    parents: string[];
  }[];
}

async function setup() {
  const dir = await tempDirOutsideTmp();
  const fx = await buildPluginFixture(join(dir, 'src'));
  const recipeDir = join(dir, 'recipe');
  await import('node:fs/promises').then((fs) => fs.mkdir(recipeDir));
  await writeFile(join(recipeDir, 'recipe.json'), JSON.stringify({ name: 'plug', binary: fx.main }));
  return { dir, fx, recipeDir, out: join(dir, 'pkg') };
}

test('package finds the dlopen chain, verify runs the program from the package alone', {
  skip,
}, async (t) => {
  const { fx, recipeDir, out } = await setup();
  const packaged = await uniprove(['package', recipeDir, '--out', out, '--json']);
  assert.equal(packaged.exitCode, 0, packaged.stderr);
  const result = parseJson<{ package: string; config: string; files: number }>(packaged);
  assert.equal(result.package, out);
  assert.equal(result.config, join(out, 'local.json'));

  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as LockFile;
  const byPath = new Map(lock.files.map((f) => [f.path, f]));
  const plugin = byPath.get(fx.plugin);
  assert.ok(plugin, `libplug.so missing from the lock: ${[...byPath.keys()].join(' ')}`);
  assert.deepEqual(plugin.reasons, ['dlopen']);
  // The SONAME chain is kept: libdep.so.1 is a symlink to the real file.
  const depLink = byPath.get(`${fx.dir}/bin/plugins/libdep.so.1`);
  assert.equal(depLink?.type, 'symlink');
  assert.equal(depLink?.target, 'libdep.so.1.0.0');
  assert.ok(depLink?.parents.includes(fx.plugin), 'libdep.so.1 is there because libplug.so needs it');
  assert.match(byPath.get(`${fx.dir}/bin/plugins/libdep.so.1.0.0`)?.sha256 ?? '', /^[0-9a-f]{64}$/);
  assert.ok([...byPath.values()].some((f) => f.reasons.includes('interp')));

  const config = JSON.parse(await readFile(join(out, 'local.json'), 'utf8'));
  assert.equal(config.Program, fx.main.slice(1), 'a program with $ORIGIN in its RUNPATH keeps its path');
  assert.equal(config.RebootOnExit, false);

  const verified = await uniprove(['verify', out, '--json']);
  assert.equal(verified.exitCode, 0, verified.stdout + verified.stderr);
  const v = parseJson<{ ok: boolean; proofs: { guestPath: string; path: string }[] }>(verified);
  assert.equal(v.ok, true);
  const proof = v.proofs.find((p) => p.guestPath === '/tmp/out/proof.txt');
  assert.ok(proof, 'the file the program wrote comes back');
  assert.equal(await readFile(proof.path, 'utf8'), 'proof 42\n');

  await t.test('why explains the chain', async () => {
    const why = await uniprove(['why', 'libdep.so.1', '--from', out, '--json']);
    assert.equal(why.exitCode, 0, why.stderr);
    const w = parseJson<{ chains: { path: string }[][] }>(why);
    assert.deepEqual(
      w.chains[0]?.map((s) => s.path),
      [fx.main, fx.plugin, `${fx.dir}/bin/plugins/libdep.so.1`],
    );
  });

  await t.test('removing the dlopened library makes verify fail, naming it', async () => {
    await rm(join(out, fx.plugin));
    // Without --as-is the package no longer matches its lock and is refused (package-changed.test.ts).
    const broken = await uniprove(['verify', out, '--as-is', '--json']);
    assert.equal(broken.exitCode, 1);
    const b = parseJson<{ ok: boolean; missing: string[] }>(broken);
    assert.equal(b.ok, false);
    assert.ok(
      b.missing.some((m) => m.endsWith('/libplug.so')),
      `missing should name libplug.so: ${b.missing.join(', ')}`,
    );
    const human = await uniprove(['verify', out, '--as-is']);
    assert.match(human.stdout, /missing from the package:[\s\S]*libplug\.so/);
  });
});

test('same inputs give byte-identical packages, and unchanged inputs do no work', { skip }, async () => {
  const { recipeDir, dir } = await setup();
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  assert.equal((await uniprove(['package', recipeDir, '--out', a])).exitCode, 0);
  assert.equal((await uniprove(['package', recipeDir, '--out', b])).exitCode, 0);
  for (const f of ['uniprove.lock.json', 'local.json', 'gcloud.json']) {
    assert.equal(await readFile(join(a, f), 'utf8'), await readFile(join(b, f), 'utf8'), f);
  }
  const again = await uniprove(['package', recipeDir, '--out', a, '--json']);
  assert.equal(parseJson<{ changed: boolean }>(again).changed, false);
});

test('bad recipes: a clear error with the dot-path, the config exit code, no partial package', {
  skip,
}, async () => {
  const { fx, recipeDir, dir } = await setup();
  const cases: [string, unknown, RegExp][] = [
    ['unknown key', { name: 'x', binary: fx.main, bogus: 1 }, /\(root\): unknown key bogus/],
    ['wrong type', { name: 'x', binary: fx.main, args: 'no' }, /args: /],
    [
      'escaping guest path',
      { name: 'x', binary: fx.main, files: [{ host: fx.dep, guest: '/lib/../../etc/x' }] },
      /files\[0\]\.guest: must not contain "\.\."/,
    ],
    ['missing binary', { name: 'x', binary: './nope' }, /binary: .*nope does not exist/],
    [
      'missing file',
      { name: 'x', binary: fx.main, files: [{ host: 'absent.toml' }] },
      /files\[0\]\.host: .*absent\.toml does not exist/,
    ],
  ];
  for (const [what, recipe, message] of cases) {
    await writeFile(join(recipeDir, 'recipe.json'), JSON.stringify(recipe));
    const out = join(dir, `bad-${what.replace(/ /g, '-')}`);
    const r = await uniprove(['package', recipeDir, '--out', out]);
    assert.equal(r.exitCode, 2, `${what}: ${r.stderr}`);
    assert.match(r.stderr, message, what);
    assert.match(r.stderr, /hint: /, what);
    const left = (await readdir(dir)).filter((n) => n.startsWith('bad-'));
    assert.deepEqual(left, [], `${what}: nothing may be left behind`);
  }
});

/**
 * What `uniprove run <package>` reads from a package folder before anything boots: its name and proof
 * from the lock, and its Ops config, checked against the schema unless it is the one `package` wrote.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isUniproveError } from '../../src/core/errors.js';
import { configDigest } from '../../src/core/package/layout.js';
import { prepareTarget } from '../../src/core/run/index.js';
import { uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc } from '../helpers/tools.js';

const skip = needGcc();

async function packaged(): Promise<{ dir: string; pkg: string }> {
  const dir = await tempDir();
  await compileC(dir, 'prover', 'int main(void){return 0;}', ['-static']);
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'tiny',
      binary: './prover',
      probe: { skip: true },
      proof: { kind: 'console', begin: 'BEGIN', end: 'END' },
    }),
  );
  const pkg = join(dir, 'pkg');
  const r = await uniprove(['package', join(dir, 'recipe.json'), '--out', pkg]);
  assert.equal(r.exitCode, 0, r.stderr);
  return { dir, pkg };
}

test('a package runs as it is: name and proof from its lock, its config as written', { skip }, async () => {
  const { dir, pkg } = await packaged();
  const lock = JSON.parse(await readFile(join(pkg, 'uniprove.lock.json'), 'utf8'));
  for (const target of ['local', 'gcloud']) {
    assert.equal(
      lock.configs[target],
      configDigest(await readFile(join(pkg, `${target}.json`), 'utf8')),
      `the lock holds the digest of ${target}.json`,
    );
  }
  // The recipe is gone: the package alone says what it is.
  await writeFile(join(dir, 'recipe.json'), 'not json any more');
  const target = await prepareTarget({
    target: pkg,
    cacheDir: join(dir, 'cache'),
    opsHome: join(dir, 'ops'),
  });
  assert.equal(target.name, 'tiny');
  assert.deepEqual(target.proof, { kind: 'console', begin: 'BEGIN', end: 'END' });
  assert.equal(target.config.Program, 'prover');
  assert.ok(target.bytes > 0);
});

test('a config edited by hand is checked in full: a bad key is E_CONFIG, a lower-case one is accepted', {
  skip,
}, async () => {
  const { dir, pkg } = await packaged();
  const local = join(pkg, 'local.json');
  const config = JSON.parse(await readFile(local, 'utf8'));
  const options = { target: pkg, cacheDir: join(dir, 'cache'), opsHome: join(dir, 'ops') };

  await writeFile(local, JSON.stringify({ ...config, RebootOnExitt: true }));
  await assert.rejects(prepareTarget(options), (error: unknown) => {
    assert.ok(isUniproveError(error));
    assert.equal(error.code, 'E_CONFIG');
    assert.match(error.message, /local\.json is not a valid Ops config/);
    assert.match(error.message, /RebootOnExitt/);
    return true;
  });

  // Ops matches keys case-insensitively; so does uniprove, and it hands on the canonical spelling.
  const { Program, ...rest } = config;
  await writeFile(local, JSON.stringify({ ...rest, program: Program, Args: ['--edited'] }));
  const target = await prepareTarget(options);
  assert.equal(target.config.Program, Program);
  assert.deepEqual(target.config.Args, ['--edited']);

  await writeFile(local, '{ "Program": ');
  await assert.rejects(prepareTarget(options), /local\.json is not valid JSON/);
});

test('a package folder takes --env, --memory and --cpus for the run, and its local.json stays as packaged', {
  skip,
}, async () => {
  const { dir, pkg } = await packaged();
  const before = await readFile(join(pkg, 'local.json'), 'utf8');
  const target = await prepareTarget({
    target: pkg,
    cacheDir: join(dir, 'cache'),
    opsHome: join(dir, 'ops'),
    overrides: { env: { UNIPROVE_STDIN: '', EXTRA: 'x' }, memory: '3G', cpus: 2 },
  });
  assert.equal(target.config.Env?.UNIPROVE_STDIN, '');
  assert.equal(target.config.Env?.EXTRA, 'x');
  assert.equal(target.config.RunConfig?.Memory, '3G');
  assert.equal(target.config.RunConfig?.CPUs, 2);
  assert.equal(await readFile(join(pkg, 'local.json'), 'utf8'), before);
});

/**
 * A package folder changed after `uniprove package` is refused by run and verify, naming the file: before, a
 * flipped, truncated or deleted staged library ran as it was and exited 0 (and for a missing one Ops quietly put
 * the host's copy into the image). Packaging again copies the file from its source and the package runs.
 */
import assert from 'node:assert/strict';
import { open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needTool, needUnikernel } from '../helpers/tools.js';

const skip = needGcc() ?? needTool('bwrap', 'apt-get install bubblewrap');

interface Lock {
  files: { path: string; type: string; size?: number }[];
}

async function packaged(): Promise<{ dir: string; pkg: string; libm: string }> {
  const dir = await tempDir();
  await compileC(
    dir,
    'hello',
    '#include <math.h>\n#include <stdio.h>\nint main(int c, char **v) { printf("HELLO %.1f\\n", sqrt(c * 4.0)); return 0; }\n',
    ['-lm'],
  );
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'hello-lock',
      binary: './hello',
      probe: { skip: true },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  const pkg = join(dir, 'pkg');
  const r = await uniprove(['package', dir, '-o', pkg, '--json', '-q'], { cwd: dir });
  assert.equal(r.exitCode, 0, r.stderr);
  const lock = JSON.parse(await readFile(join(pkg, 'uniprove.lock.json'), 'utf8')) as Lock;
  const libm = lock.files.find((f) => f.type === 'file' && /\/libm\.so\.6$/.test(f.path));
  assert.ok(libm, JSON.stringify(lock.files.map((f) => f.path)));
  return { dir, pkg, libm: libm.path };
}

async function refused(args: string[], cwd: string, file: string, how: RegExp): Promise<void> {
  const r = await uniprove([...args, '--json'], { cwd, timeoutMs: 180_000 });
  assert.equal(r.exitCode, 4, r.stdout + r.stderr);
  const error = parseJson<{ error: { code: string; message: string; hint: string } }>(r).error;
  assert.equal(error.code, 'E_PACKAGE_CHANGED');
  assert.ok(error.message.includes(file), error.message);
  assert.match(error.message, how);
  assert.match(error.hint, /uniprove package/);
}

test('verify refuses a package whose library was flipped, truncated or deleted, naming it; package again mends it', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const { dir, pkg, libm } = await packaged();
  const staged = join(pkg, libm);
  const ok = await uniprove(['verify', pkg, '--json'], { cwd: dir });
  assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr);

  // One byte flipped in place: same size, same mode; its stamp moved, so it is hashed.
  const fh = await open(staged, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, 4096);
  b[0] = (b[0] as number) ^ 0xff;
  await fh.write(b, 0, 1, 4096);
  await fh.close();
  await refused(['verify', pkg], dir, libm, /holds other bytes/);

  await truncate(staged, 100);
  await refused(['verify', pkg], dir, libm, /has 100 bytes, not \d+/);

  await rm(staged);
  await refused(['verify', pkg], dir, libm, /is missing/);

  const again = await uniprove(['package', dir, '-o', pkg, '--json', '-q'], { cwd: dir });
  assert.equal(again.exitCode, 0, again.stderr);
  const mended = await uniprove(['verify', pkg, '--json'], { cwd: dir });
  assert.equal(mended.exitCode, 0, mended.stdout + mended.stderr);
});

test('run of a package folder whose library was changed is refused before anything boots', {
  skip: skip ?? needUnikernel(),
  timeout: 5 * 60_000,
}, async () => {
  const { dir, pkg, libm } = await packaged();
  await truncate(join(pkg, libm), 4096);
  await refused(['run', pkg, '--accel', 'tcg', '--runs-dir', join(dir, 'runs')], dir, libm, /has 4096 bytes/);
  const again = await uniprove(['package', dir, '-o', pkg, '-q'], { cwd: dir });
  assert.equal(again.exitCode, 0, again.stderr);
  const r = await uniprove(['run', pkg, '--accel', 'tcg', '--runs-dir', join(dir, 'runs'), '--json', '-q'], {
    cwd: dir,
    timeoutMs: 180_000,
  });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.equal(parseJson<{ outcome: string }>(r).outcome, 'succeeded');
});

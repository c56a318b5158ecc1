/**
 * Plausible recipe mistakes are refused before any work with a typed error and exit 2, never a crash (70)
 * and never a package that silently lost a file. Real gcc fixtures and the real CLI.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, open, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliRun, parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { needGcc } from '../helpers/tools.js';

const skip = needGcc();

let dir = '';
let hello = '';
let counter = 0;
if (!skip) {
  dir = await tempDirOutsideTmp();
  hello = await compileC(dir, 'hello', '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n');
  await writeFile(join(dir, 'data.txt'), 'data\n');
}

/** Package a recipe (the hello program, no probe run) in its own folder; the recipe's host paths are in `dir`. */
async function packageRecipe(fields: Record<string, unknown>, args: string[] = []) {
  const recipeDir = join(dir, `recipe-${++counter}`);
  await mkdir(recipeDir);
  await writeFile(
    join(recipeDir, 'recipe.json'),
    JSON.stringify({ name: 'hello', binary: hello, probe: { skip: true }, ...fields }),
  );
  const out = join(recipeDir, 'pkg');
  const run = await uniprove(['package', recipeDir, '--out', out, '--json', ...args]);
  return { run, out, recipeDir };
}

/** The run failed with `code` and exit 2, printed no stack, and wrote no package. */
async function assertRefused(r: { run: CliRun; out: string }, code: string, message: RegExp) {
  assert.equal(r.run.exitCode, 2, r.run.stdout + r.run.stderr);
  const error = parseJson<{ error: { code: string; message: string } }>(r.run).error;
  assert.equal(error.code, code, error.message);
  assert.match(error.message, message);
  assert.doesNotMatch(r.run.stderr, /internal error| {4}at /);
  assert.equal(await stat(r.out).catch(() => undefined), undefined, 'nothing was written');
}

/** Copy the hello program and overwrite bytes of its ELF header. */
async function patchedHello(name: string, offset: number, bytes: number[]): Promise<string> {
  const path = join(dir, name);
  await copyFile(hello, path);
  const fh = await open(path, 'r+');
  await fh.write(Buffer.from(bytes), 0, bytes.length, offset);
  await fh.close();
  return path;
}

test('the image root as the program or as a file guest path: E_CONFIG naming the field', {
  skip,
}, async () => {
  await assertRefused(await packageRecipe({ program: '/' }), 'E_CONFIG', /^program: "\/" is the image root/);
  await assertRefused(
    await packageRecipe({ files: [{ host: join(dir, 'data.txt'), guest: '/' }] }),
    'E_CONFIG',
    /^files\[0\]\.guest: "\/" is the image root/,
  );
  await assertRefused(
    await packageRecipe({ files: [{ host: join(dir, 'data.txt'), guest: '/./' }] }),
    'E_CONFIG',
    /image root/,
  );
});

test('a volume mounted over the image root, or the whole image as the proof: E_CONFIG naming the field', {
  skip,
}, async () => {
  const volume = { set: join(process.cwd(), 'volumes', 'filecoin-2KiB.json') };
  await assertRefused(
    await packageRecipe({ volumes: [{ ...volume, guestPath: '/' }] }),
    'E_CONFIG',
    /^volumes\[0\]\.guestPath: "\/" is the image root, not a place to mount a volume/,
  );
  await assertRefused(
    await packageRecipe({ proof: { kind: 'file', path: '//.' } }),
    'E_CONFIG',
    /^proof\.path: "\/" is the image root/,
  );
  // Spelled with a trailing slash or doubled slashes, they are the same paths as their plain spelling.
  const r = await packageRecipe({
    volumes: [{ ...volume, guestPath: '/params/' }],
    proof: { kind: 'file', path: '/tmp//output/' },
  });
  assert.equal(r.run.exitCode, 0, r.run.stdout + r.run.stderr);
  const config = JSON.parse(await readFile(join(r.out, 'local.json'), 'utf8')) as {
    Mounts: Record<string, string>;
  };
  assert.deepEqual(Object.values(config.Mounts), ['/params']);
});

test('a guest file name over 255 bytes is refused by the schema', { skip }, async () => {
  await assertRefused(
    await packageRecipe({ files: [{ host: join(dir, 'data.txt'), guest: `/data/${'x'.repeat(256)}` }] }),
    'E_CONFIG',
    /files\[0\]\.guest: must not hold a name longer than 255 bytes/,
  );
});

test("a file at the package's own paths is refused instead of vanishing", { skip }, async () => {
  for (const guest of ['/local.json', '/gcloud.json', '/uniprove.lock.json', '/.uniprove/state.json']) {
    await assertRefused(
      await packageRecipe({ files: [{ host: join(dir, 'data.txt'), guest }] }),
      'E_CONFIG',
      new RegExp(`^files\\[0\\]\\.guest: ${guest.replace('.', '\\.')} is where the package keeps`),
    );
  }
  // A folder laid at the image root brings its own local.json: refused the same way.
  const folder = join(dir, 'rootfs');
  await mkdir(folder);
  await writeFile(join(folder, 'local.json'), '{}');
  await assertRefused(
    await packageRecipe({ dirs: [{ host: folder, guest: '/' }] }),
    'E_CONFIG',
    /^dirs\[0\] \(.*rootfs\/local\.json\): \/local\.json is where the package keeps/,
  );
});

test('two entries with one guest path (however spelled) are refused', { skip }, async () => {
  await assertRefused(
    await packageRecipe({
      files: [
        { host: join(dir, 'data.txt'), guest: '/etc/data' },
        { host: hello, guest: '//etc/./data/' },
      ],
    }),
    'E_CONFIG',
    /^files\[1\]: \/etc\/data is also where files\[0\] goes/,
  );
});

test('a file over the program, or over the C library, is refused unless replace: true', {
  skip,
}, async () => {
  await assertRefused(
    await packageRecipe({ files: [{ host: join(dir, 'data.txt'), guest: '/hello' }] }),
    'E_CONFIG',
    /^files\[0\]: \/hello is where the program goes/,
  );
  const libc = '/lib/x86_64-linux-gnu/libc.so.6';
  await assertRefused(
    await packageRecipe({ files: [{ host: join(dir, 'data.txt'), guest: libc }] }),
    'E_CONFIG',
    /^files\[0\]: \/lib\/x86_64-linux-gnu\/libc\.so\.6 already holds .*elf-needed/,
  );
  const replaced = await packageRecipe({
    files: [{ host: join(dir, 'data.txt'), guest: libc, replace: true }],
  });
  assert.equal(replaced.run.exitCode, 0, replaced.run.stderr);
  assert.equal(await readFile(join(replaced.out, libc), 'utf8'), 'data\n', 'the recipe file took its place');
});

test('a binary whose ELF class byte was changed, or built for aarch64: E_ELF_UNSUPPORTED, exit 2', {
  skip,
}, async () => {
  const class32 = await patchedHello('hello-class32', 4, [1]);
  await assertRefused(
    await packageRecipe({ binary: class32 }),
    'E_ELF_UNSUPPORTED',
    /is a 32-bit little-endian ELF .* for x86_64; a Nanos image for x86_64 runs a 64-bit little-endian executable/,
  );
  const arm = await patchedHello('hello-aarch64', 18, [183, 0]);
  await assertRefused(
    await packageRecipe({ binary: arm }),
    'E_ELF_UNSUPPORTED',
    /is a 64-bit little-endian ELF executable for aarch64; a Nanos image for x86_64/,
  );
  // Named on purpose, the machine is the recipe's: the check passes (what is missing for it is only warned).
  const forArm = await packageRecipe({ binary: arm, arch: 'aarch64' });
  assert.notEqual(forArm.run.exitCode, 2, forArm.run.stderr);
});

test('dirs: symlinks leaving the folder are E_PATH_ESCAPE; links inside it are kept as links', {
  skip,
}, async () => {
  for (const [name, target] of [
    ['shadow', '/etc/shadow'],
    ['passwd', '../../../../etc/passwd'],
  ] as const) {
    const folder = join(dir, `escape-${name}`);
    await mkdir(folder);
    await writeFile(join(folder, 'ok.txt'), 'ok');
    await symlink(target, join(folder, name));
    await assertRefused(
      await packageRecipe({ dirs: [{ host: folder, guest: '/data' }] }),
      'E_PATH_ESCAPE',
      new RegExp(
        `^dirs\\[0\\]: .*/${name} is a symlink to ${target.replace(/\./g, '\\.')}, outside the folder`,
      ),
    );
  }
  const folder = join(dir, 'inside');
  await mkdir(join(folder, 'sub'), { recursive: true });
  await writeFile(join(folder, 'sub', 'real.txt'), 'real');
  await symlink('sub/real.txt', join(folder, 'link'));
  const kept = await packageRecipe({ dirs: [{ host: folder, guest: '/data' }] });
  assert.equal(kept.run.exitCode, 0, kept.run.stderr);
  const lock = JSON.parse(await readFile(join(kept.out, 'uniprove.lock.json'), 'utf8')) as {
    files: { path: string; type: string; target?: string }[];
  };
  const link = lock.files.find((f) => f.path === '/data/link');
  assert.equal(link?.type, 'symlink');
  assert.equal(link?.target, 'sub/real.txt');
  assert.equal(await readFile(join(kept.out, 'data/link'), 'utf8'), 'real');
});

test('memory "0G" is refused, in the recipe and as --memory', { skip }, async () => {
  await assertRefused(
    await packageRecipe({ resources: { memory: '0G' } }),
    'E_CONFIG',
    /resources\.memory: must be from 64M to 4096G/,
  );
  await assertRefused(
    await packageRecipe({}, ['--memory', '0G']),
    'E_CONFIG',
    /resources\.memory: must be from 64M/,
  );
});

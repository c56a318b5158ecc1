/**
 * The discovery probe runs on copies: a real program that rewrites, truncates and deletes its inputs
 * during `uniprove package` leaves the recipe folder byte for byte as it was, and the image (the package
 * tree, and what the program reads under Nanos) holds the user's bytes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir, tempDirOutsideTmp } from '../helpers/tmp.js';
import { needGcc, needTool, needUnikernel } from '../helpers/tools.js';

const skip = needGcc() ?? needTool('strace', 'apt-get install strace');
const skipNanos = skip ?? needUnikernel();
if (skip) console.log(`# probe-copies tests skipped: ${skip}`);
else if (skipNanos) console.log(`# probe-copies Nanos test skipped: ${skipNanos}`);

/**
 * Reads input.txt and data/params.txt from its working directory and prints them, then does what a
 * careless prover does to its inputs: rewrites input.txt, truncates params.txt, deletes data/old.txt.
 */
const REWRITER = `#include <stdio.h>
#include <string.h>
#include <unistd.h>
static int show(const char *path) {
  char buf[256] = {0};
  FILE *f = fopen(path, "r");
  if (!f) { perror(path); return 1; }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  while (n > 0 && buf[n - 1] == '\\n') buf[--n] = 0;
  printf("%s=%s\\n", path, buf);
  return 0;
}
int main(void) {
  if (show("input.txt") || show("data/params.txt")) return 1;
  FILE *f = fopen("input.txt", "w");
  if (!f) { perror("rewrite input.txt"); return 2; }
  fputs("REWRITTEN BY THE PROBE\\n", f);
  fclose(f);
  if (truncate("data/params.txt", 0) != 0) { perror("truncate"); return 3; }
  if (unlink("data/old.txt") != 0) { perror("unlink"); return 4; }
  fflush(stdout);
  return 0;
}`;

/** Every entry under `dir` with its sha256 (files) or "dir", sorted: the folder's bytes, as a value. */
async function digestTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(d, e.name);
      if (e.isDirectory()) {
        out.push(`${rel}${e.name}/ dir`);
        await walk(path, `${rel}${e.name}/`);
      } else {
        const info = await stat(path);
        const sha = createHash('sha256')
          .update(await readFile(path))
          .digest('hex');
        out.push(`${rel}${e.name} ${sha} ${info.size} ${(info.mode & 0o7777).toString(8)} ${info.mtimeMs}`);
      }
    }
  };
  await walk(dir, '');
  return out;
}

async function rewriterRecipe(dir: string): Promise<string> {
  const recipe = join(dir, 'recipe');
  await mkdir(join(recipe, 'data'), { recursive: true });
  await compileC(recipe, 'rewriter', REWRITER, ['-static']);
  await writeFile(join(recipe, 'input.txt'), 'the user input\n');
  await writeFile(join(recipe, 'data', 'params.txt'), 'the user parameters\n');
  await writeFile(join(recipe, 'data', 'old.txt'), 'a file the program deletes\n');
  await writeFile(
    join(recipe, 'recipe.json'),
    `${JSON.stringify({
      name: 'rewriter',
      binary: './rewriter',
      files: [{ host: './input.txt', guest: '/work/input.txt' }],
      dirs: [{ host: './data', guest: '/work/data' }],
      manifestPassthrough: { cwd: '/work' },
      resources: { memory: '256M', cpus: 1 },
    })}\n`,
  );
  return recipe;
}

interface LockJson {
  files: { path: string; type: string; sha256?: string; source?: string; parents: string[] }[];
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

test('a program that rewrites its inputs during the probe leaves the recipe folder as it was', {
  skip,
}, async () => {
  const dir = await tempDir();
  const recipe = await rewriterRecipe(dir);
  const before = await digestTree(recipe);
  const pkg = join(dir, 'pkg');
  const r = await uniprove(['package', recipe, '--out', pkg, '--json'], { cwd: dir });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.equal(parseJson<{ package: string }>(r).package, pkg);
  // The probe ran (and rewrote, truncated and deleted): on its copies only.
  assert.deepEqual(await digestTree(recipe), before);

  const lock = JSON.parse(await readFile(join(pkg, 'uniprove.lock.json'), 'utf8')) as LockJson;
  const byPath = new Map(lock.files.map((f) => [f.path, f]));
  assert.equal(byPath.get('/work/input.txt')?.sha256, sha256('the user input\n'));
  assert.equal(byPath.get('/work/data/params.txt')?.sha256, sha256('the user parameters\n'));
  assert.equal(byPath.get('/work/data/old.txt')?.sha256, sha256('a file the program deletes\n'));
  assert.equal(await readFile(join(pkg, 'work', 'input.txt'), 'utf8'), 'the user input\n');
  assert.equal(await readFile(join(pkg, 'work', 'data', 'params.txt'), 'utf8'), 'the user parameters\n');
  // The scratch copies the probe opened are not dependencies: nothing in the lock comes from them.
  for (const f of lock.files) {
    assert.ok(!/uniprove-probe-tree-/.test(`${f.path} ${f.source ?? ''}`), `${f.path} <- ${f.source}`);
  }
});

test('the image holds the user bytes: under Nanos the program reads what the user wrote', {
  skip: skipNanos,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await rewriterRecipe(dir);
  const before = await digestTree(recipe);
  const r = await uniprove(['run', recipe, '--package-out', join(dir, 'pkg'), '--json'], { cwd: dir });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const consoleLog = await readFile(join(parseJson<{ dir: string }>(r).dir, 'console.log'), 'utf8');
  assert.match(consoleLog, /input\.txt=the user input\n/);
  assert.match(consoleLog, /data\/params\.txt=the user parameters\n/);
  assert.deepEqual(await digestTree(recipe), before);
});

test('a library the probe loads from its copy of the recipe still brings what it needs, named by its guest path', {
  skip: skip ?? needTool('bwrap', 'apt-get install bubblewrap'),
}, async () => {
  // Outside /tmp: verify mounts a fresh /tmp, which would hide libdep.so at its host path.
  const dir = await tempDirOutsideTmp();
  const deps = join(dir, 'deps');
  const recipe = join(dir, 'recipe');
  await mkdir(deps, { recursive: true });
  await mkdir(join(recipe, 'plugins'), { recursive: true });
  const dep = await compileC(deps, 'libdep.so', 'int dep_value(void) { return 42; }\n', [
    '-shared',
    '-fPIC',
    '-Wl,-soname,libdep.so',
  ]);
  await compileC(
    join(recipe, 'plugins'),
    'libplug.so',
    'int dep_value(void);\nint plugin_run(void) { return dep_value(); }\n',
    ['-shared', '-fPIC', `-L${deps}`, '-ldep', `-Wl,-rpath,${deps}`],
  );
  await compileC(
    recipe,
    'main',
    `#include <dlfcn.h>
#include <stdio.h>
int main(void) {
  void *h = dlopen("./plugins/libplug.so", RTLD_NOW);
  if (!h) { fprintf(stderr, "main: %s\\n", dlerror()); return 3; }
  int (*run)(void) = (int (*)(void))dlsym(h, "plugin_run");
  printf("plugin says %d\\n", run());
  return 0;
}`,
    ['-ldl'],
  );
  await writeFile(
    join(recipe, 'recipe.json'),
    JSON.stringify({ name: 'plugcwd', binary: './main', dirs: [{ host: './plugins', guest: '/plugins' }] }),
  );
  const pkg = join(dir, 'pkg');
  const r = await uniprove(['package', recipe, '--out', pkg], { cwd: dir });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const lock = JSON.parse(await readFile(join(pkg, 'uniprove.lock.json'), 'utf8')) as LockJson;
  const depEntry = lock.files.find((f) => f.path === dep);
  assert.ok(depEntry, lock.files.map((f) => f.path).join(' '));
  assert.deepEqual(depEntry.parents, ['/plugins/libplug.so']);
  for (const f of lock.files) {
    assert.ok(!/uniprove-probe-tree-/.test(`${f.path} ${f.parents.join(' ')}`), f.path);
  }
  const verified = await uniprove(['verify', pkg], { cwd: dir });
  assert.equal(verified.exitCode, 0, verified.stdout + verified.stderr);
});

/**
 * Folders in packages, under real Ops, Nanos and QEMU: a program that starts in an empty folder runs,
 * the lock lists the folder, `run --out` keeps the package out of the record folder, and `debug` turns
 * the console of a start without that folder into a fix that makes the next run succeed.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# recipe-folders tests skipped: ${skip}`);

/** Prints its working directory and writes a file there: it fails unless the folder exists and is writable. */
const IN_CWD = `#include <stdio.h>
#include <unistd.h>
int main(void) {
  char cwd[256];
  if (!getcwd(cwd, sizeof cwd)) { perror("getcwd"); return 2; }
  FILE *f = fopen("out.txt", "w");
  if (!f) { perror("fopen out.txt"); return 3; }
  fputs("written\\n", f);
  fclose(f);
  printf("CWD=%s\\n", cwd);
  return 0;
}`;

interface LockJson {
  files: { path: string; type: string; mode?: string; reasons: string[]; parents: string[] }[];
}

/** Every path under `dir` with its type and mode, sorted: what two packages must share to be the same. */
async function treeListing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (rel === '' && e.name === '.uniprove') continue;
      const info = await stat(join(d, e.name));
      out.push(`${rel}/${e.name} ${e.isDirectory() ? 'dir' : 'file'} ${(info.mode & 0o7777).toString(8)}`);
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}/${e.name}`);
    }
  };
  await walk(dir, '');
  return out;
}

interface RunJson {
  dir: string;
  outcome: string;
  exitCode: number | null;
}

/** A recipe folder for a static program that starts in `cwd` (Nanos's manifest); `dirs` is the recipe's folder list. */
async function cwdRecipe(dir: string, dirs: unknown[], cwd = '/tmp/work'): Promise<string> {
  const folder = join(dir, 'recipe');
  await mkdir(folder, { recursive: true });
  await compileC(folder, 'incwd', IN_CWD, ['-static']);
  await writeFile(
    join(folder, 'recipe.json'),
    `${JSON.stringify(
      {
        name: 'incwd',
        binary: './incwd',
        dirs,
        probe: { skip: true },
        resources: { memory: '256M', cpus: 1 },
        manifestPassthrough: { cwd },
      },
      null,
      2,
    )}\n`,
  );
  return folder;
}

test('`run <recipe> --out X`: X is the record folder only, the package goes to build/<name>', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await cwdRecipe(dir, [], '/tmp');
  const record = join(dir, 'record');
  const r = await uniprove(['run', recipe, '--out', record, '--json'], { cwd: dir });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.equal(parseJson<RunJson>(r).dir, record);
  const inRecord = (await readdir(record)).sort();
  assert.ok(inRecord.includes('record.json') && inRecord.includes('console.log'), inRecord.join(' '));
  for (const name of ['uniprove.lock.json', 'local.json', 'gcloud.json', 'incwd', 'tmp', '.uniprove']) {
    assert.ok(!inRecord.includes(name), `${name} is not in the record folder: ${inRecord.join(' ')}`);
  }
  assert.ok((await stat(join(dir, 'build', 'incwd', 'uniprove.lock.json'))).isFile());
});

test('a program that starts in an empty folder runs in Nanos and exits 0; the lock lists the folder', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const recipe = await cwdRecipe(dir, [
    { host: './work', guest: '/tmp/work' },
    { guest: '/scratch', mode: '0700', reason: 'the prover keeps its spill files here' },
  ]);
  // The host folder holds only empty folders: nothing in it is a file.
  await mkdir(join(recipe, 'work', 'in', 'deeper'), { recursive: true });
  const pkg = join(dir, 'pkg');
  const r = await uniprove(['run', recipe, '--package-out', pkg, '--json'], { cwd: dir });
  const run = parseJson<RunJson>(r);
  const consoleLog = await readFile(join(run.dir, 'console.log'), 'utf8');
  assert.equal(r.exitCode, 0, `${r.stderr}\n${consoleLog}`);
  assert.equal(run.exitCode, 0);
  assert.match(consoleLog, /CWD=\/tmp\/work/);
  // Ops put the empty folders in the image, at every depth.
  assert.match(await readFile(join(run.dir, 'manifest.txt'), 'utf8'), /work:map\[in:map\[deeper:map\[\]\]\]/);

  const lock = JSON.parse(await readFile(join(pkg, 'uniprove.lock.json'), 'utf8')) as LockJson;
  const folders = lock.files.filter((f) => f.type === 'dir');
  assert.deepEqual(
    folders.map((f) => [f.path, f.mode]),
    [
      ['/scratch', '0700'],
      ['/tmp/work', '0755'],
      ['/tmp/work/in', '0755'],
      ['/tmp/work/in/deeper', '0755'],
    ],
  );
  assert.equal(((await stat(join(pkg, 'scratch'))).mode & 0o7777).toString(8), '700');

  // why names the recipe entry each folder comes from.
  const why = await uniprove(['why', '/tmp/work/in/deeper', '--from', pkg, '--json'], { cwd: dir });
  assert.equal(why.exitCode, 0, why.stderr);
  const chain = parseJson<{ chains: { path: string }[][] }>(why).chains[0]!.map((s) => s.path);
  assert.deepEqual(chain, [`recipe dirs[0]: ${join(recipe, 'work')}`, '/tmp/work/in/deeper']);
  const whyScratch = await uniprove(['why', '/scratch', '--from', pkg], { cwd: dir });
  assert.match(whyScratch.stdout, /the prover keeps its spill files here/);

  // Same inputs, same bytes: a second package elsewhere has the same lock and the same tree.
  const again = join(dir, 'again');
  assert.equal((await uniprove(['package', recipe, '--out', again], { cwd: dir })).exitCode, 0);
  assert.equal(
    await readFile(join(again, 'uniprove.lock.json'), 'utf8'),
    await readFile(join(pkg, 'uniprove.lock.json'), 'utf8'),
  );
  assert.deepEqual(await treeListing(again), await treeListing(pkg));

  // verify runs it from the package alone, in its working directory, and checks the folders are there.
  const verified = await uniprove(['verify', again], { cwd: dir });
  assert.equal(verified.exitCode, 0, verified.stdout + verified.stderr);
  await rmdir(join(again, 'tmp', 'work', 'in', 'deeper'));
  const refused = await uniprove(['verify', again], { cwd: dir });
  assert.equal(refused.exitCode, 4, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /E_PACKAGE_CHANGED.*\/tmp\/work\/in\/deeper is missing/);
  const broken = await uniprove(['verify', again, '--as-is'], { cwd: dir });
  assert.equal(broken.exitCode, 1, broken.stdout + broken.stderr);
  assert.match(broken.stderr, /lacks folder its lock lists: \/tmp\/work\/in\/deeper/);
});

test('debug explains a start without its working directory, and --fix makes the next run succeed', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  // The program starts in /tmp/work, which nothing in the recipe makes.
  const recipe = await cwdRecipe(dir, []);
  const pkg = join(dir, 'pkg');
  const failed = await uniprove(['run', recipe, '--package-out', pkg, '--json'], { cwd: dir });
  assert.equal(failed.exitCode, 1, failed.stdout + failed.stderr);
  const run = parseJson<RunJson>(failed);
  assert.equal(run.exitCode, 127);
  const consoleLog = join(run.dir, 'console.log');
  assert.match(
    await readFile(consoleLog, 'utf8'),
    /program startup failed on exec: .*unable to change cwd to "\/tmp\/work"/,
  );

  // verify sees it without a VM: the working directory is not a folder of the package.
  const verify = await uniprove(['verify', pkg], { cwd: dir });
  assert.equal(verify.exitCode, 1, verify.stdout + verify.stderr);
  assert.match(
    verify.stderr,
    /the working directory \/tmp\/work \(manifestPassthrough\.cwd\) is not a folder/,
  );

  const debug = await uniprove(['debug', consoleLog, '--package', pkg, '--json'], { cwd: dir });
  assert.equal(debug.exitCode, 1, debug.stdout + debug.stderr);
  const finding = parseJson<{
    findings: { kind: string; guestPath?: string; field?: string; fix: string }[];
  }>(debug).findings.find((f) => f.kind === 'missing-cwd');
  assert.ok(finding, debug.stdout);
  assert.equal(finding.guestPath, '/tmp/work');
  assert.equal(finding.field, 'dirs');
  assert.match(finding.fix, /\{ "guest": "\/tmp\/work" \}/);
  const text = await uniprove(['debug', consoleLog, '--package', pkg], { cwd: dir });
  assert.match(text.stdout, /error: missing-cwd \/tmp\/work/);
  assert.match(text.stdout, /recipe field: dirs/);

  const fixed = await uniprove(['debug', consoleLog, '--package', pkg, '--fix'], { cwd: dir });
  assert.equal(fixed.exitCode, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /fix: added the folder \/tmp\/work to the dirs of /);
  const written = JSON.parse(await readFile(join(recipe, 'recipe.json'), 'utf8'));
  assert.deepEqual(
    written.dirs.map((d: { guest: string }) => d.guest),
    ['/tmp/work'],
  );
  const lock = JSON.parse(await readFile(join(pkg, 'uniprove.lock.json'), 'utf8')) as LockJson;
  assert.ok(lock.files.some((f) => f.path === '/tmp/work' && f.type === 'dir'));

  const again = await uniprove(['run', recipe, '--package-out', pkg, '--json'], { cwd: dir });
  assert.equal(again.exitCode, 0, again.stdout + again.stderr);
  assert.match(await readFile(join(parseJson<RunJson>(again).dir, 'console.log'), 'utf8'), /CWD=\/tmp\/work/);
  // A second --fix finds the folder already there and changes nothing.
  const twice = await uniprove(['debug', consoleLog, '--package', pkg, '--fix'], { cwd: dir });
  assert.match(twice.stdout, /\/tmp\/work is already in /);
});

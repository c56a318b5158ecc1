/**
 * Folders in packages, under real Ops, Nanos and QEMU: a program that starts in an empty folder runs,
 * the lock lists the folder, `run --out` keeps the package out of the record folder, and `debug` turns
 * the console of a start without that folder into a fix that makes the next run succeed.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needNanos, needTool } from '../helpers/tools.js';

const skip =
  needTool('ops', 'go install github.com/nanovms/ops@latest, or build it from its sources') ??
  needNanos() ??
  needTool('qemu-system-x86_64', 'apt-get install qemu-system-x86') ??
  needGcc();
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

/**
 * The probe's linger (probe.lingerMs, discover --linger): a real program whose main returns while another
 * thread is still on its way to open a file. Without a linger the process exits first and the file is
 * missed; with one, the thread runs on under strace and the file is found, and the linger library itself
 * never shows in the closure or the package.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { discover } from '../../src/core/discover/index.js';
import { PROBE_LINGER_NAME } from '../../src/core/strace/linger.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needTool } from '../helpers/tools.js';

const skip = needTool('strace', 'apt-get install strace') ?? needGcc();
if (skip) console.log(`# probe-linger tests skipped: ${skip}`);

/**
 * main starts a thread that sleeps 200 ms, then opens argv[1], and returns at once without joining it:
 * exit never waits for that thread, so without a linger it never gets to the open.
 */
const LATE_OPENER = `#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
static void *late(void *path) {
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, 0);
  int fd = open((const char *)path, O_RDONLY);
  if (fd >= 0) close(fd);
  return 0;
}
int main(int argc, char **argv) {
  pthread_t t;
  if (argc < 2 || pthread_create(&t, 0, late, argv[1]) != 0) return 2;
  return 0;
}`;

async function fixture() {
  const dir = await tempDir();
  const bin = await compileC(dir, 'late-opener', LATE_OPENER, ['-pthread']);
  const data = join(dir, 'late-config.txt');
  await writeFile(data, 'read only by a thread that outlives main\n');
  return { dir, bin, data };
}

const isLinger = (p: string) => p.includes(PROBE_LINGER_NAME) || p.includes('probe-linger');

test('without a linger, the file a late thread opens is missed; with probe.lingerMs it is found', {
  skip,
}, async () => {
  const { dir, bin, data } = await fixture();
  const cacheDir = join(dir, 'cache');

  const plain = await discover({ binary: bin, args: [data], cwd: dir });
  assert.equal(plain.probe?.exitCode, 0);
  assert.equal(plain.probe?.lingerMs, undefined);
  assert.ok(!plain.files.some((f) => f.path === data), 'the exit beat the thread: no file');

  const lingered = await discover({ binary: bin, args: [data], cwd: dir, lingerMs: 1000, cacheDir });
  assert.equal(lingered.probe?.lingerMs, 1000);
  const found = lingered.files.find((f) => f.path === data);
  assert.ok(found, `the thread ran on and opened ${data}: ${lingered.files.map((f) => f.path).join(', ')}`);
  assert.deepEqual(found.reasons, ['runtime-file']);
  assert.deepEqual(found.parents, [bin]);
  assert.deepEqual(
    lingered.files.filter((f) => isLinger(f.path) || f.path.startsWith(cacheDir)),
    [],
    'the linger library is never a dependency',
  );
  // The linger ends once the exiting thread is the last: well under the 1 s asked for.
  assert.ok(lingered.probe!.durationMs < 900, `lingered ${lingered.probe!.durationMs} ms`);
  assert.deepEqual(
    lingered.warnings.filter((w) => w.code.startsWith('probe-')),
    [],
  );
});

test('a static program cannot linger: a warning says so and the probe runs without it', {
  skip,
}, async () => {
  const dir = await tempDir();
  let bin: string;
  try {
    bin = await compileC(dir, 'static-late', LATE_OPENER, ['-pthread', '-static']);
  } catch (error) {
    console.log(
      `# static linger case skipped: gcc -static failed (${(error as Error).message.split('\n')[0]})`,
    );
    return;
  }
  const data = join(dir, 'late-config.txt');
  await writeFile(data, 'x\n');
  const result = await discover({
    binary: bin,
    args: [data],
    cwd: dir,
    lingerMs: 1000,
    cacheDir: join(dir, 'c'),
  });
  assert.equal(result.probe?.exitCode, 0);
  assert.equal(result.probe?.lingerMs, undefined);
  const warning = result.warnings.find((w) => w.code === 'probe-linger-unavailable');
  assert.ok(warning, JSON.stringify(result.warnings));
  assert.match(warning.message, /statically linked/);
});

test('a linger out of range is refused before the program runs', { skip }, async () => {
  const { dir, bin, data } = await fixture();
  await assert.rejects(discover({ binary: bin, args: [data], cwd: dir, lingerMs: 60_001 }), {
    code: 'E_USAGE',
  });
});

interface LockJson {
  files: { path: string; reasons?: string[]; source?: string }[];
}

test('uniprove package with probe.lingerMs packs what the late thread read, and not the linger library', {
  skip,
}, async () => {
  const { dir, bin, data } = await fixture();
  const recipeDir = join(dir, 'recipe');
  await mkdir(recipeDir);
  const recipe = (lingerMs?: number) =>
    `${JSON.stringify({
      name: 'late-opener',
      binary: bin,
      args: [data],
      ...(lingerMs !== undefined ? { probe: { lingerMs } } : {}),
      resources: { memory: '256M', cpus: 1 },
    })}\n`;
  const packageWith = async (lingerMs: number | undefined, out: string) => {
    await writeFile(join(recipeDir, 'recipe.json'), recipe(lingerMs));
    const r = await uniprove(['package', recipeDir, '--out', out, '--json'], { cwd: dir });
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as LockJson;
    return { json: parseJson<{ probe?: { lingerMs?: number } }>(r), lock };
  };

  const plain = await packageWith(undefined, join(dir, 'plain'));
  assert.equal(plain.json.probe?.lingerMs, undefined);
  assert.ok(!plain.lock.files.some((f) => f.path === data), 'no linger: the file is missed');

  const lingered = await packageWith(1000, join(dir, 'lingered'));
  assert.equal(lingered.json.probe?.lingerMs, 1000);
  const entry = lingered.lock.files.find((f) => f.path === data);
  assert.ok(entry, `the package holds ${data}`);
  assert.deepEqual(entry.reasons, ['runtime-file']);
  assert.deepEqual(
    lingered.lock.files.filter((f) => isLinger(f.path) || isLinger(f.source ?? '')),
    [],
    'the linger library is not in the package',
  );
  const configs = await readFile(join(dir, 'lingered', 'local.json'), 'utf8');
  assert.doesNotMatch(configs, /LD_PRELOAD|probe-linger|UNIPROVE_PROBE_LINGER/);

  const human = await uniprove(['package', recipeDir, '--out', join(dir, 'human'), '--force'], { cwd: dir });
  assert.equal(human.exitCode, 0, human.stdout + human.stderr);
  assert.match(human.stdout, /lingered up to 1000 ms after exit/);
});

test('uniprove discover --linger says it lingered, in text and --json', { skip }, async () => {
  const { dir, bin, data } = await fixture();
  const json = await uniprove(['discover', bin, '--linger', '1s', '--json', '--', data], { cwd: dir });
  assert.equal(json.exitCode, 0, json.stdout + json.stderr);
  const parsed = parseJson<{ files: { path: string; reasons: string[] }[]; probe: { lingerMs?: number } }>(
    json,
  );
  assert.equal(parsed.probe.lingerMs, 1000);
  assert.deepEqual(parsed.files.find((f) => f.path === data)?.reasons, ['runtime-file']);
  assert.ok(!parsed.files.some((f) => isLinger(f.path)));

  const text = await uniprove(['discover', bin, '--linger', '500ms', '--', data], { cwd: dir });
  assert.equal(text.exitCode, 0, text.stdout + text.stderr);
  assert.match(text.stdout, /lingered up to 500 ms after exit/);
  assert.ok(text.stdout.includes(data));

  const bad = await uniprove(['discover', bin, '--linger', '2m', '--', data], { cwd: dir });
  assert.equal(bad.exitCode, 2, bad.stdout + bad.stderr);
});

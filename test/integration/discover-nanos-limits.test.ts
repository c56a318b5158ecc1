/**
 * What discovery knows a unikernel cannot do, on real programs under the real strace: a program that runs other
 * programs (Nanos has no fork or exec: ENOSYS), and a folder a program lists but reads only part of (the files
 * it never opened would be missing inside Nanos).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { type CliRun, parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needTool } from '../helpers/tools.js';

interface Warning {
  code: string;
  message: string;
  path?: string;
  parent?: string;
  syscall?: string;
  argv?: string[];
  count?: number;
  tried?: string;
  leftOut?: { files: string[]; count: number; bytes: number };
}

interface Discovered {
  binary: string;
  files: { path: string; reasons: string[]; parents: string[]; chain?: string[] }[];
  warnings: Warning[];
}

const skip = needTool('strace', 'apt-get install strace') ?? needGcc();

function realPython(): string | undefined {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}
const python = realPython();

function discovered(run: CliRun): Discovered {
  assert.equal(run.exitCode, 0, run.stderr);
  return parseJson<Discovered>(run);
}

/** Every name the closure holds a file under (its path and the links leading to it). */
function names(d: Discovered): string[] {
  return d.files.flatMap((f) => [f.path, ...(f.chain ?? [])]);
}

async function fixture(dir: string, name: string): Promise<string> {
  const out = join(dir, name);
  await execa('gcc', ['-O1', '-o', out, join(REPO_ROOT, `test/fixtures/c/${name}.c`)]);
  return out;
}

/** A folder of five small files, as a test's data folder. */
async function dataFolder(dir: string): Promise<string> {
  const data = join(dir, 'cases');
  await mkdir(data);
  for (const i of [1, 2, 3, 4, 5]) await writeFile(join(data, `case${i}.xml`), `<case n="${i}"/>\n`);
  return data;
}

test('a program that forks and runs /bin/true: discover warns (plain and --json) and packages neither true nor its libraries', {
  skip,
}, async () => {
  const dir = await tempDir();
  const bin = await fixture(dir, 'fork-child');
  const d = discovered(await uniprove(['discover', bin, '--json', '-q'], { cwd: dir }));
  const runs = d.warnings.filter((w) => w.code === 'runs-programs');
  assert.equal(runs.length, 1, JSON.stringify(d.warnings));
  assert.equal(runs[0]!.path, '/bin/true');
  assert.equal(runs[0]!.parent, bin);
  assert.equal(runs[0]!.syscall, 'execve');
  assert.deepEqual(runs[0]!.argv, ['/bin/true']);
  assert.match(runs[0]!.message, /runs other programs; inside Nanos these calls fail with ENOSYS/);
  assert.ok(!names(d).some((p) => /\/true$/.test(p)), names(d).join('\n'));

  const plain = await uniprove(['discover', bin, '-q'], { cwd: dir });
  assert.equal(plain.exitCode, 0, plain.stderr);
  assert.match(
    plain.stderr,
    /warning: .*fork-child runs other programs; inside Nanos these calls fail with ENOSYS: it ran \/bin\/true \(`\/bin\/true`\)\..*\[runs-programs\]/,
  );
  assert.doesNotMatch(plain.stdout, /\/true/);
});

test('a program that re-executes itself as its helper is reported too', { skip }, async () => {
  const dir = await tempDir();
  const bin = await fixture(dir, 'fork-child');
  // The child execs fork-child again, which forks and runs /bin/true.
  const d = discovered(await uniprove(['discover', bin, '--json', '-q', '--', bin], { cwd: dir }));
  const runs = d.warnings.filter((w) => w.code === 'runs-programs');
  assert.deepEqual(
    runs.map((w) => [w.path, w.parent, w.argv]),
    [
      [bin, bin, [bin]],
      ['/bin/true', bin, ['/bin/true']],
    ],
  );
  assert.match(runs[0]!.message, /it ran itself again/);
});

test('python3 running `true` through subprocess: a runs-programs warning, and /usr/bin/true is not packaged', {
  skip: skip ?? (python ? undefined : 'python3 is not installed'),
}, async () => {
  const args = ['-c', "import subprocess; subprocess.run(['true'], check=True)"];
  const d = discovered(await uniprove(['discover', python!, '--json', '-q', '--', ...args]));
  const runs = d.warnings.filter((w) => w.code === 'runs-programs');
  assert.equal(runs.length, 1, JSON.stringify(d.warnings));
  assert.match(runs[0]!.path!, /\/true$/);
  assert.equal(runs[0]!.parent, python);
  assert.deepEqual(runs[0]!.argv, ['true']);
  assert.ok(!names(d).some((p) => /\/true$/.test(p)), 'true is not packaged');
  // Python itself lists every folder of its import path and reads modules there: none of that is a warning.
  assert.deepEqual(
    d.warnings.filter((w) => w.code === 'listed-partly-packaged'),
    [],
  );
});

test('a folder listed and read in part: listed, partly packaged, with the files left out and their size', {
  skip,
}, async () => {
  const dir = await tempDir();
  const bin = await fixture(dir, 'list-some');
  const data = await dataFolder(dir);
  const d = discovered(await uniprove(['discover', bin, '--json', '-q', '--', data, '2'], { cwd: dir }));
  const listed = d.warnings.filter((w) => w.code === 'listed-partly-packaged');
  assert.equal(listed.length, 1, JSON.stringify(d.warnings));
  assert.equal(listed[0]!.path, data);
  assert.equal(listed[0]!.parent, bin);
  assert.deepEqual(listed[0]!.leftOut, {
    files: [3, 4, 5].map((i) => join(data, `case${i}.xml`)),
    count: 3,
    bytes: 3 * '<case n="3"/>\n'.length,
  });
  assert.ok(names(d).includes(join(data, 'case1.xml')));
  assert.ok(!names(d).includes(join(data, 'case3.xml')));

  const plain = await uniprove(['discover', bin, '-q', '--', data, '2'], { cwd: dir });
  assert.match(
    plain.stderr,
    /warning: .*cases: listed, partly packaged: .* read 2 of its 5 files; the 3 it never opened \(42 B: case3\.xml, case4\.xml, case5\.xml\).*--include-listed.*\[listed-partly-packaged\]/,
  );
});

test('--include-listed packages the folder whole, and `why` says who listed each file', {
  skip,
}, async () => {
  const dir = await tempDir();
  const bin = await fixture(dir, 'list-some');
  const data = await dataFolder(dir);
  const run = await uniprove(['discover', bin, '--include-listed', '--json', '-q', '--', data, '2'], {
    cwd: dir,
  });
  const d = discovered(run);
  assert.deepEqual(
    d.warnings.filter((w) => w.code === 'listed-partly-packaged'),
    [],
  );
  const file = d.files.find((f) => f.path === join(data, 'case4.xml'));
  assert.deepEqual(file && { reasons: file.reasons, parents: file.parents }, {
    reasons: ['listed'],
    parents: [bin],
  });
  await writeFile(join(dir, 'closure.json'), run.stdout);
  const why = await uniprove(['why', 'case4.xml', '--from', join(dir, 'closure.json')], { cwd: dir });
  assert.equal(why.exitCode, 0, why.stderr);
  assert.match(
    why.stdout,
    new RegExp(`case4\\.xml  \\(listed by ${bin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`),
  );
});

test('package: probe.includeListed puts the folder in the lock with reason listed, and changing it discovers again', {
  skip,
}, async () => {
  const dir = await tempDir();
  await fixture(dir, 'list-some');
  await dataFolder(dir);
  const recipe = (includeListed: boolean) =>
    writeFile(
      join(dir, 'recipe.json'),
      JSON.stringify({
        name: 'list-some',
        binary: './list-some',
        args: [join(dir, 'cases'), '2'],
        probe: { includeListed },
      }),
    );
  await recipe(false);
  const out = join(dir, 'pkg');
  const first = await uniprove(['package', dir, '--out', out, '--json', '-q'], { cwd: dir });
  assert.equal(first.exitCode, 0, first.stderr);
  const warned = parseJson<{ warnings: Warning[] }>(first).warnings;
  assert.ok(
    warned.some((w) => w.code === 'listed-partly-packaged' && w.leftOut?.count === 3),
    JSON.stringify(warned),
  );
  await recipe(true);
  const second = await uniprove(['package', dir, '--out', out, '--json', '-q'], { cwd: dir });
  assert.equal(second.exitCode, 0, second.stderr);
  assert.equal(parseJson<{ changed: boolean }>(second).changed, true);
  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as {
    files: { path: string; reasons: string[] }[];
  };
  const entry = lock.files.find((f) => f.path === join(dir, 'cases/case5.xml'));
  assert.deepEqual(entry?.reasons, ['listed']);
});

test('package and verify report the programs the prover runs; verify names the one it tried and could not', {
  skip: skip ?? needTool('bwrap', 'apt-get install bubblewrap'),
}, async () => {
  const dir = await tempDir();
  await fixture(dir, 'fork-child');
  await writeFile(join(dir, 'recipe.json'), JSON.stringify({ name: 'fork-child', binary: './fork-child' }));
  const out = join(dir, 'pkg');
  const packaged = await uniprove(['package', dir, '--out', out, '--json', '-q'], { cwd: dir });
  assert.equal(packaged.exitCode, 0, packaged.stderr);
  const warnings = parseJson<{ warnings: Warning[] }>(packaged).warnings;
  assert.ok(
    warnings.some((w) => w.code === 'runs-programs' && w.path === '/bin/true'),
    JSON.stringify(warnings),
  );
  const lock = await readFile(join(out, 'uniprove.lock.json'), 'utf8');
  assert.doesNotMatch(lock, /\/true"/);
  // From the package alone /bin/true is not there: the child's exec fails and the program exits 3.
  const verified = await uniprove(['verify', out, '--json', '-q'], { cwd: dir });
  const v = parseJson<{ ok: boolean; exitCode: number; warnings: Warning[] }>(verified);
  assert.equal(v.exitCode, 3, verified.stdout);
  const run = v.warnings.find((w) => w.code === 'runs-programs');
  assert.ok(run, JSON.stringify(v.warnings));
  assert.match(run.message, /forked a copy of itself .*tried to run \/bin\/true in vain/);
  assert.equal(run.tried, '/bin/true');
});

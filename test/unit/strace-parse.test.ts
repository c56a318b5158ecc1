import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isUniproveError } from '../../src/core/errors.js';
import { failedSearches, parseStraceLog } from '../../src/core/strace/parse.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/strace');

for (const name of readdirSync(FIXTURES)) {
  const dir = join(FIXTURES, name);
  test(`golden strace log: ${name}`, async () => {
    const optionsFile = join(dir, 'options.json');
    const options = existsSync(optionsFile) ? JSON.parse(readFileSync(optionsFile, 'utf8')) : {};
    const result = await parseStraceLog(join(dir, 'input.log'), options);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    assert.deepEqual(JSON.parse(JSON.stringify(result)), expected);
  });
}

test('the same log parses the same whatever the chunking (lines split across chunks)', async () => {
  const text = readFileSync(join(FIXTURES, 'unfinished-across-pids/input.log'), 'utf8');
  const whole = await parseStraceLog(
    (async function* () {
      yield text;
    })(),
  );
  const bytes = Buffer.from(text);
  const pieces = (async function* () {
    for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
  })();
  const split = await parseStraceLog(pieces);
  assert.deepEqual(split.opened, whole.opened);
  assert.deepEqual(split.missing, whole.missing);
  assert.ok(whole.opened.some((o) => o.path === '/srv/params/a.params'));
});

test('failedSearches names the library probed along the search path and never found', async () => {
  const result = await parseStraceLog(join(FIXTURES, 'unfinished-across-pids/input.log'));
  assert.deepEqual(failedSearches(result), [
    {
      basename: 'libzk.so',
      probed: ['/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libzk.so', '/lib/x86_64-linux-gnu/libzk.so'],
      attempts: 2,
    },
  ]);
});

test('bad input: empty file, binary garbage, missing file, directory', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'empty.log'), '');
  await assert.rejects(parseStraceLog(join(dir, 'empty.log')), { code: 'E_STRACE_LOG', message: /is empty/ });
  const garbage = Buffer.alloc(3 << 20);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
  await writeFile(join(dir, 'garbage.bin'), garbage);
  await assert.rejects(parseStraceLog(join(dir, 'garbage.bin')), {
    code: 'E_STRACE_LOG',
    message: /not an strace log/,
  });
  await assert.rejects(parseStraceLog(join(dir, 'nope.log')), { code: 'E_NOT_FOUND' });
  await assert.rejects(parseStraceLog(dir), { code: 'E_IS_DIRECTORY' });
});

test('spellings of one path (//, ./, ../, /proc/..) count as one file, whatever the chunking', async () => {
  const spellings = [
    '/srv/p/lib.so',
    '/srv//p/lib.so',
    '/srv/./p/lib.so',
    '/srv/x/../p/lib.so',
    '/proc/../srv/p/lib.so',
  ];
  const lines = spellings.map(
    (p, i) => `${200 + i} openat(AT_FDCWD</w>, "${p}", O_RDONLY|O_CLOEXEC) = 3</srv/p/lib.so>\n`,
  );
  // The normal spelling after the others too, and an escaped one that must not alias a raw one.
  lines.push('300 openat(AT_FDCWD</w>, "/srv/p/lib.so", O_RDONLY) = 4</srv/p/lib.so>\n');
  lines.push('300 openat(AT_FDCWD</w>, "/srv/p/a\\\\nb", O_RDONLY) = 5</srv/p/a\\\\nb>\n');
  lines.push('300 openat(AT_FDCWD</w>, "/srv/p/a\\nb", O_RDONLY) = -1 ENOENT (No such file or directory)\n');
  const text = lines.join('').repeat(3);
  for (const size of [text.length, 5, 64]) {
    const bytes = Buffer.from(text);
    const result = await parseStraceLog(
      (async function* () {
        for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
      })(),
    );
    assert.deepEqual(
      result.opened.map((o) => [o.path, o.count, o.firstLine]),
      [
        ['/srv/p/a\\nb', 3, 7],
        ['/srv/p/lib.so', 18, 1],
      ],
      `chunks of ${size}`,
    );
    assert.deepEqual(
      result.missing.map((m) => [m.path, m.count]),
      [['/srv/p/a\nb', 3]],
    );
    assert.equal(result.stats.pseudoDropped, 0);
  }
});

test('a relative starting folder is refused: chdir("..") from it made paths grow without end', async () => {
  // Found by the fuzzer: 10 000 `chdir("..")` from cwd "relative" took minutes ("../../.." normalised each time).
  const log = async function* () {
    yield 'chdir("..") = 0\n'.repeat(10_000);
  };
  await assert.rejects(parseStraceLog(log(), { cwd: 'relative' }), (error: unknown) => {
    assert.ok(isUniproveError(error));
    assert.equal(error.code, 'E_USAGE');
    assert.match(error.message, /must be an absolute path, got "relative"/);
    return true;
  });
  const started = performance.now();
  const fromRoot = await parseStraceLog(log(), { cwd: '/srv' });
  assert.deepEqual(
    fromRoot.opened.map((o) => o.path),
    ['/'],
  );
  assert.ok(performance.now() - started < 2000);
});

test('a directory opened in itself again and again stops being followed past 16 KiB of path, in linear time', async () => {
  // Found by the fuzzer: each `openat(4, "d", O_DIRECTORY) = 4` made fd 4's path longer, and each line then
  // cost that whole length (150 KB of them: 2 s; the time grew with the square of the log).
  const lines = [
    'openat(AT_FDCWD, "/opt/data", O_RDONLY|O_DIRECTORY) = 4',
    ...Array.from({ length: 20_000 }, () => 'openat(4, "set/one", O_RDONLY|O_DIRECTORY) = 4'),
    'chdir("a") = 0',
  ];
  const started = performance.now();
  const result = await parseStraceLog(
    (async function* () {
      yield `${lines.join('\n')}\n${'chdir("a") = 0\n'.repeat(20_000)}`;
    })(),
    { cwd: '/' },
  );
  assert.ok(performance.now() - started < 3000, `${Math.round(performance.now() - started)} ms`);
  const tooLong = result.warnings.find((w) => w.kind === 'path-too-long');
  assert.ok(tooLong && tooLong.count > 0, JSON.stringify(result.warnings));
  assert.ok(result.opened.every((o) => o.path.length <= 16 * 1024));
  assert.ok(result.opened.some((o) => o.path === '/opt/data/set/one/set/one'));
});

test('with `program`, what a sandbox runs before it is not its spawn, and a pid namespace is followed', async () => {
  // The shape `uniprove verify` traces: a measuring helper runs bwrap, whose pid namespace numbers its forks
  // 2 and 3 while the log names the processes by their host pids.
  const log = [
    '10 execve("/cache/uniprove-rusage", ["uniprove-rusage", "/tmp/r.json", "/usr/bin/bwrap"], 0x7f /* 3 vars */) = 0',
    '10 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 11',
    '11 execve("/usr/bin/bwrap", ["/usr/bin/bwrap", "--", "/prover"], 0x7f /* 3 vars */) = 0',
    '11 clone(child_stack=NULL, flags=CLONE_NEWUSER|CLONE_NEWPID|SIGCHLD) = 12',
    '12 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 2',
    '13 execve("/prover", ["/prover"], 0x7f /* 1 var */) = 0',
    '13 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 3',
    '14 execve("/bin/true", ["/bin/true"], 0x7f /* 0 vars */) = -1 ENOENT (No such file or directory)',
    '14 execve("/usr/bin/true", ["true"], 0x7f /* 0 vars */) = 0',
    '14 openat(AT_FDCWD, "/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3',
    '',
  ].join('\n');
  const result = await parseStraceLog(
    (async function* () {
      yield log;
    })(),
    { cwd: '/', program: '/prover' },
  );
  assert.deepEqual(
    result.spawns.map((s) => [s.syscall, s.path, s.argv, s.parent, s.pid]),
    [['execve', '/usr/bin/true', ['true'], '/prover', 14]],
  );
  assert.deepEqual(
    result.opened.filter((o) => o.onlyHelpers).map((o) => o.path),
    ['/lib/libc.so.6', '/usr/bin/true'],
  );
  // Without `program` the first exec is the program, and all the others are what it ran.
  const plain = await parseStraceLog(
    (async function* () {
      yield log;
    })(),
    { cwd: '/' },
  );
  assert.deepEqual(
    plain.spawns.map((s) => s.path),
    ['/usr/bin/bwrap', '/prover', '/usr/bin/true'],
  );
});

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import {
  createDefaultLocate,
  createNanosReader,
  createStraceReader,
  Diagnoser,
  detectLogFormat,
  diagnoseLogs,
  GUEST_LIBRARY_DIRS,
  type LogEvent,
  locateNothing,
  parseNanosManifest,
  readLdCacheEntries,
} from '../../src/core/diagnose/index.js';
import { isUniproveError } from '../../src/core/errors.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

function feed(create: typeof createNanosReader, lines: string[]): LogEvent[] {
  const events: LogEvent[] = [];
  const reader = create('t.log', (e) => {
    events.push(e);
  });
  for (const [i, l] of lines.entries()) reader.line(l, i + 1);
  reader.end();
  return events;
}

test('nanos reader joins <unfinished ...> with <... resumed> and keeps the first line number', () => {
  const events = feed(createNanosReader, [
    '[3] openat(-100, "/data/params.bin", 0x0, 0x0 <unfinished ...>',
    '    3 sleep uninterruptible',
    'PROGRAM OUTPUT in between',
    '[3] <... openat resumed>) = -ENOENT',
  ]);
  const calls = events.filter((e) => e.type === 'syscall');
  assert.equal(calls.length, 1);
  assert.deepEqual(
    calls.map((c) => c.type === 'syscall' && [c.pid, c.name, c.path, c.errno, c.at.lineNo]),
    [[3, 'openat', '/data/params.bin', 'ENOENT', 1]],
  );
  assert.deepEqual(
    events.filter((e) => e.type === 'output').map((e) => e.at.text),
    ['PROGRAM OUTPUT in between'],
  );
});

test('nanos reader: program text glued before a trace line is output, and the call is still read', () => {
  const events = feed(createNanosReader, [': [2] openat(-100, "/x/libq.so", 0x80000, 0x0) = -ENOENT']);
  assert.deepEqual(
    events.map((e) => e.type),
    ['output', 'syscall', 'trace-end'],
  );
});

test('nanos reader: the trace end gives each thread`s last call, and whether any thread exited', () => {
  const events = feed(createNanosReader, [
    '[2] futex(0x1, FUTEX_WAIT_PRIVATE, 2, NULL <unfinished ...>',
    '[7] mmap(0x0, 4096, PROT_READ, MAP_SHARED, 9, 0) = 0x100000',
    '[7] mprotect(0x200000, 4096, 0x3) = 0',
  ]);
  const end = events.at(-1);
  assert.ok(end?.type === 'trace-end');
  assert.equal(end.exited, false);
  assert.deepEqual(
    end.lastCalls.map((c) => c.lineNo),
    [1, 3],
  );
  const done = feed(createNanosReader, ['[2] write(1, 0x1, 3) = 3', '[2] exit_group( <unfinished ...>']).at(
    -1,
  );
  assert.ok(done?.type === 'trace-end');
  assert.equal(done.exited, true);
});

test('format detection: Nanos console, strace -f -o, strace -f on stderr, plain output', () => {
  const nanos = readFileSync(
    join(REPO_ROOT, 'test/fixtures/nanos/dlopen-missing.ops-trace-equivalent.tcg/console.log'),
    'utf8',
  );
  assert.equal(detectLogFormat(nanos), 'nanos');
  assert.equal(
    detectLogFormat(
      '123   openat(AT_FDCWD, "/a", O_RDONLY) = -1 ENOENT (No such file or directory)\n123   +++ exited with 0 +++\n',
    ),
    'strace',
  );
  assert.equal(
    detectLogFormat(
      'execve("./a", ["./a"], 0x7ff /* 3 vars */) = 0\n[pid  77] openat(AT_FDCWD, "/b", O_RDONLY) = 3\n',
    ),
    'strace',
  );
  assert.equal(detectLogFormat('HELLO\nworld\n'), 'nanos');
});

test('strace reader: -1 ENOENT results, exits and kills', () => {
  const events = feed(createStraceReader, [
    '9  openat(AT_FDCWD, "/opt/zk/lib\\"q.so", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)',
    '9  read(3, <unfinished ...>',
    '9  <... read resumed>"", 10) = 0',
    '9  +++ killed by SIGSEGV (core dumped) +++',
  ]);
  assert.deepEqual(
    events.map((e) =>
      e.type === 'syscall' ? [e.name, e.path, e.errno] : e.type === 'exit' ? [e.signal] : [e.type],
    ),
    [['openat', '/opt/zk/lib"q.so', 'ENOENT'], ['SIGSEGV']],
  );
});

test('ld.so.cache: the host cache maps libc.so.6 to a file that exists', {
  skip: existsSync('/etc/ld.so.cache') ? undefined : 'no /etc/ld.so.cache',
}, () => {
  const entries = readLdCacheEntries(readFileSync('/etc/ld.so.cache'));
  const libc = entries.get('libc.so.6');
  assert.ok(libc, 'libc.so.6 is in the cache');
  assert.ok(existsSync(libc));
});

test('default locate: roots first, then the host cache; guest path in a folder dlopen searches', async () => {
  const root = await tempDir();
  await mkdir(join(root, 'deep/er'), { recursive: true });
  await writeFile(join(root, 'deep/er/libzkplug.so'), 'x');
  await writeFile(join(root, 'params.bin'), 'x');
  const locate = createDefaultLocate({ roots: [root] });
  assert.deepEqual(await locate('libzkplug.so', 'library'), {
    hostPath: join(root, 'deep/er/libzkplug.so'),
    guestPath: '/lib/x86_64-linux-gnu/libzkplug.so',
  });
  assert.deepEqual(await locate('params.bin', 'file', { wantedPath: '/data/params.bin' }), {
    hostPath: join(root, 'params.bin'),
    guestPath: '/data/params.bin',
  });
  const host = await locate('libc.so.6', 'library');
  assert.ok(host, 'libc.so.6 is found on this host');
  assert.ok(GUEST_LIBRARY_DIRS.includes(dirname(host.guestPath)), host.guestPath);
  assert.equal(await createDefaultLocate({ host: false })('libc.so.6', 'library'), undefined);
});

test('a startup failure Nanos words otherwise than the known ones is still a finding, with its cause', async () => {
  // The real consoles (test/fixtures/nanos/startup-*) hold the known causes; this line is Nanos's format
  // (`program startup failed %s exec: %v`, from its kernel) with a cause none of them has.
  const dir = await tempDir();
  const log = join(dir, 'console.log');
  await writeFile(
    log,
    '[0.3] en1: assigned 10.0.2.15\nprogram startup failed on exec: (result:out of memory)\n',
  );
  const { findings } = await diagnoseLogs({ logs: [log], locate: locateNothing });
  assert.equal(findings.length, 1);
  assert.equal(findings[0]?.kind, 'startup-failed');
  assert.equal(findings[0]?.severity, 'error');
  assert.equal(findings[0]?.field, 'program');
  assert.match(findings[0]?.message ?? '', /could not start the program: out of memory/);
});

test('a long word in an interesting line is read in linear time, and the loader messages still name the file', async () => {
  const diagnose = async (lines: string[]) => {
    const diagnoser = new Diagnoser();
    diagnoser.startLog('t.log');
    const reader = createNanosReader('t.log', diagnoser.event);
    for (const [i, l] of lines.entries()) reader.line(l, i + 1);
    reader.end();
    diagnoser.endLog();
    return diagnoser.findings(locateNothing);
  };
  // Found by the fuzzer: /([^\s:'"()]+): cannot open .../ tried every start in a run of word characters, so a
  // 64 KiB line of hex with "KVM" in it took minutes (three such patterns, each quadratic).
  const started = performance.now();
  assert.deepEqual(await diagnose([`KVM ${'ab12'.repeat(16 * 1024)}`]), []);
  assert.ok(performance.now() - started < 2000, `${performance.now() - started} ms`);
  const found = await diagnose([
    'error while loading shared libraries: libzk.so.2: cannot open shared object file: No such file or directory',
    '/opt/lib/libgpu.so: wrong ELF class: ELFCLASS32',
    '(: failed to map segment from shared object x libc.so.6: failed to map segment from shared object',
  ]);
  assert.deepEqual(
    found.map((f) => [f.kind, f.name]),
    [
      ['missing-library', 'libzk.so.2'],
      ['library-mismatch', 'libgpu.so'],
      ['exec-protection', 'libc.so.6'],
    ],
  );
  assert.match(
    found[1]?.message ?? '',
    /\/opt\/lib\/libgpu\.so is built for another architecture \(ELFCLASS32\)/,
  );
});

test('a manifest nested past any real image, or with a ) in a list, is E_CONFIG, not a crash; __proto__ is a plain key', () => {
  // Found by the fuzzer: the tuple parser recursed once per ( or [, so 10 000 of them were a RangeError.
  for (const text of ['(a:'.repeat(100_000), '(children:'.repeat(50_000), `(a:${'['.repeat(600)}`]) {
    assert.throws(
      () => parseNanosManifest(text),
      (error: unknown) =>
        isUniproveError(error) &&
        error.code === 'E_CONFIG' &&
        /nested deeper than 500 levels/.test(error.message),
    );
  }
  // Also found by the fuzzer: a `)` inside a list was read as an empty value forever (until V8 gave up).
  for (const text of ['(a:[x)', '(a:[)]', '(a:[b c ) d])']) {
    assert.throws(
      () => parseNanosManifest(text),
      (error: unknown) =>
        isUniproveError(error) && error.code === 'E_CONFIG' && /unexpected \)/.test(error.message),
    );
  }
  const deep = `(children:${'(d:(children:'.repeat(100)}(f:(contents:(host:/h/f)))${'))'.repeat(100)}))`;
  assert.equal(parseNanosManifest(deep).files.get(`${'/d'.repeat(100)}/f`), '/h/f');
  const image = parseNanosManifest(
    '(__proto__:(children:(x:(contents:(host:/x)))) children:(a:(contents:(host:/a))))',
  );
  assert.deepEqual([...image.files], [['/a', '/a']]);
});

test("a run record's manifest.txt (Ops's dump of the manifest) reads as the image it describes", () => {
  const dir = join(REPO_ROOT, 'test/fixtures/run-record');
  const zk = parseNanosManifest(readFileSync(join(dir, 'zkwasm-volume.manifest.txt'), 'utf8'));
  assert.equal(zk.files.get('/zkwasm-cli'), 'zkwasm-cli');
  assert.equal(zk.files.get('/lib/x86_64-linux-gnu/libstdc++.so.6'), '/lib/x86_64-linux-gnu/libstdc++.so.6');
  // A symlink ({path:...}) is in the image; an empty folder (params:map[]) holds no file.
  assert.ok(zk.files.has('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'));
  assert.equal(zk.files.get('/etc/ssl/certs/ca-certificates.crt'), '/root/.ops/common/ca-certificates.crt');
  assert.ok(!zk.files.has('/params'));
  assert.ok(!zk.files.has('/proc/self/cgroup'));
  assert.deepEqual(zk.mounts, [
    { volume: 'zkwasm-k18-wasm_output-d44be96c', path: '/params', readonly: true },
  ]);
  assert.equal(zk.flags.program, '/zkwasm-cli');
  assert.equal(zk.flags.debug_exit, 't');
  // The kernel under boot: is not a file of the root file system.
  assert.ok(![...zk.files.keys()].some((g) => g.endsWith('kernel.img')));
  const cg = parseNanosManifest(readFileSync(join(dir, 'cgprobe.manifest.txt'), 'utf8'));
  assert.deepEqual(cg.mounts, []);
  assert.equal(cg.flags.missing_files, 't');
  assert.equal(cg.files.get('/proc/sys/kernel/hostname')?.endsWith('/hostname'), true);
});

test("Ops's manifest dump: a value with spaces stays whole; a broken or too deep dump is E_CONFIG", () => {
  const image = parseNanosManifest(
    '&{root:map[children:map[a:/host dir/a b:map[c:/c]] environment:map[X:1 2] program:/a] boot:map[] targetRoot: klibHostDir:}',
  );
  assert.deepEqual(
    [...image.files],
    [
      ['/a', '/host dir/a'],
      ['/b/c', '/c'],
    ],
  );
  assert.equal(image.flags.program, '/a');
  for (const [text, words] of [
    ['&{root:map[children:map[a:/a]', /unclosed/],
    ['&{boot:map[]}', /no root:map/],
    [`&{root:map[children:${'map[d:'.repeat(600)}`, /nested deeper than 500 levels/],
  ] as const) {
    assert.throws(
      () => parseNanosManifest(text),
      (error: unknown) => isUniproveError(error) && error.code === 'E_CONFIG' && words.test(error.message),
    );
  }
});

test('fork-exec-unsupported from a host strace log and from the words of Go, Python and a thread-only clone', async () => {
  const dir = await tempDir();
  // A host strace log of a program whose fork was refused (a seccomp filter does this on Linux, Nanos always).
  const strace = join(dir, 'strace.log');
  await writeFile(
    strace,
    [
      '41 execve("/prover", ["/prover"], 0x7ffd /* 3 vars */) = 0',
      '41 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = -1 ENOSYS (Function not implemented)',
      '41 +++ exited with 1 +++',
      '',
    ].join('\n'),
  );
  const traced = await diagnoseLogs({ logs: [strace], locate: locateNothing });
  const fromTrace = traced.findings.find((f) => f.kind === 'fork-exec-unsupported');
  assert.equal(fromTrace?.severity, 'warning', JSON.stringify(traced.findings));
  assert.match(fromTrace?.message ?? '', /clone failed with ENOSYS/);
  // What a Go and a Python prover print; a line about something else not implemented is no such finding.
  const console = join(dir, 'console.log');
  await writeFile(
    console,
    [
      '[0.3] en1: assigned 10.0.2.15',
      'error: fork/exec /usr/bin/nvidia-smi: function not implemented',
      "OSError: [Errno 38] Function not implemented: 'bunzip2'",
      'io_uring_setup: Function not implemented',
      '',
    ].join('\n'),
  );
  const said = await diagnoseLogs({ logs: [console], locate: locateNothing });
  assert.deepEqual(
    said.findings.map((f) => [f.kind, f.severity, f.name, f.evidence.length]),
    [['fork-exec-unsupported', 'error', '/usr/bin/nvidia-smi', 2]],
  );
  assert.match(
    said.findings[0]?.message ?? '',
    /\(\/usr\/bin\/nvidia-smi, bunzip2\): fork failed with ENOSYS/,
  );
});

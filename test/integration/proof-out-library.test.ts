/**
 * native/proof-out.c on the host, with real gcc: compiled once and cached, preloaded into tiny C provers whose
 * exit prints their proof file (even one left unflushed in stdio), read back by the receiver; the route's
 * warnings for a static prover; gcc missing is a typed error.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { FileProofReceiver } from '../../src/core/proof/console-file.js';
import { buildProofOutLibrary } from '../../src/core/proof/preload.js';
import { consoleRouteWarnings } from '../../src/core/proof/route.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc } from '../helpers/tools.js';

const skip = needGcc();

/** Writes n bytes to argv[1] with stdio and, on purpose, never closes it: exit's flush is the last moment. */
const UNCLOSED = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  size_t n = strtoul(argv[2], 0, 10);
  FILE *f = fopen(argv[1], "wb");
  for (size_t i = 0; i < n; i++) fputc((int)((i * 2654435761u) >> 13), f);
  puts("proved");
  return 0;
}`;

/** Writes its proof, then fails: argv[2] says how it leaves (`exit` calls exit(3); a number is returned from main). */
const FAILS = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  FILE *f = fopen(argv[1], "wb");
  fputs("a proof of nothing", f);
  fclose(f);
  if (strcmp(argv[2], "exit") == 0) exit(3);
  return atoi(argv[2]);
}`;

/** A C program carrying the note Go's linker writes (owner "Go", type 4: the build id). */
const GO_NOTE = String.raw`__asm__(".section .note.go.buildid,\"a\",@note\n.balign 4\n.long 4\n.long 8\n.long 4\n.asciz \"Go\"\n.balign 4\n.ascii \"abcdefgh\"\n.text\n");
int main(void) { return 0; }`;

test('the library prints the proof file at exit and the receiver gets it byte for byte; cached after the first build', {
  skip,
}, async () => {
  const dir = await tempDir();
  const cacheDir = join(dir, 'cache');
  const first = await buildProofOutLibrary({ cacheDir });
  assert.equal(first.compiled, true);
  const again = await buildProofOutLibrary({ cacheDir, pathEnv: '/nonexistent' });
  assert.equal(again.compiled, false, 'the cached library needs no gcc');
  assert.equal(again.path, first.path);
  const prover = await compileC(dir, 'unclosed', UNCLOSED);
  await mkdir(join(dir, 'proofs'));
  for (const size of [0, 5, 768, 100_001]) {
    const proof = join(dir, `proof-${size}.bin`);
    const r = await execa(prover, [proof, String(size)], {
      env: { LD_PRELOAD: first.path, UNIPROVE_PROOF_FILE: proof },
      all: true,
    });
    const receiver = new FileProofReceiver(join(dir, 'proofs', `back-${size}.bin`));
    // In odd-sized pieces, as a console arrives.
    for (let i = 0; i < r.all.length; i += 4093) receiver.push(r.all.slice(i, i + 4093));
    const status = await receiver.finish();
    assert.equal(status.state, 'received', r.all.slice(0, 300));
    const want = await readFile(proof);
    assert.equal(want.length, size);
    assert.ok((await readFile(join(dir, 'proofs', `back-${size}.bin`))).equals(want));
    assert.equal((status as { sha256: string }).sha256, createHash('sha256').update(want).digest('hex'));
    // The exit line comes before the proof, so a console that ends at the proof's end marker has it.
    assert.match(r.all, /UNIPROVE-PROVER-EXIT status=0\n+UNIPROVE-FILE-PROOF-BEGIN/);
    assert.equal(receiver.exitCode, 0);
  }
  // A proof file that is not there: the guest says why, and the run is told so.
  const r = await execa(prover, [join(dir, 'elsewhere.bin'), '1'], {
    env: { LD_PRELOAD: first.path, UNIPROVE_PROOF_FILE: join(dir, 'missing.bin') },
    all: true,
  });
  const receiver = new FileProofReceiver(join(dir, 'proofs', 'missing.bin'));
  receiver.push(r.all);
  assert.deepEqual(await receiver.finish(), {
    state: 'guest-error',
    guestPath: join(dir, 'missing.bin'),
    errno: 2,
    message: 'No such file or directory',
  });
});

test('a prover that writes its proof and exits non-zero: the library reports its status before the proof', {
  skip,
}, async () => {
  const dir = await tempDir();
  const library = await buildProofOutLibrary({ cacheDir: join(dir, 'cache') });
  const prover = await compileC(dir, 'fails', FAILS);
  await mkdir(join(dir, 'proofs'));
  for (const [how, code] of [
    ['3', 3],
    ['exit', 3],
    ['300', 44],
  ] as const) {
    const proof = join(dir, `proof-${how}.bin`);
    const r = await execa(prover, [proof, how], {
      env: { LD_PRELOAD: library.path, UNIPROVE_PROOF_FILE: proof },
      all: true,
      reject: false,
    });
    assert.equal(r.exitCode, code, `${how}: ${r.all}`);
    assert.match(r.all, new RegExp(`UNIPROVE-PROVER-EXIT status=${code}\\n`));
    const receiver = new FileProofReceiver(join(dir, 'proofs', `back-${how}.bin`));
    for (let i = 0; i < r.all.length; i += 7) receiver.push(r.all.slice(i, i + 7));
    const status = await receiver.finish();
    assert.equal(status.state, 'received', r.all);
    assert.equal(receiver.exitCode, code, how);
    assert.equal(await readFile(join(dir, 'proofs', `back-${how}.bin`), 'utf8'), 'a proof of nothing');
  }
});

test('a static prover and a Go one are warned about; a dynamic C one is not; no gcc is E_TOOL_MISSING', {
  skip,
}, async () => {
  const dir = await tempDir();
  const dynamic = await compileC(dir, 'dynamic', UNCLOSED);
  const statik = await compileC(dir, 'static', UNCLOSED, ['-static']);
  assert.deepEqual(await consoleRouteWarnings(dynamic, '/proof.bin'), []);
  const warned = await consoleRouteWarnings(statik, '/proof.bin');
  assert.equal(warned[0]?.code, 'proof-route-static');
  assert.match(warned[0]?.message ?? '', /statically linked.*will not come back/);
  // A Go program (its build-id note, as Go's linker writes it) leaves through exit_group: warned too.
  const go = await compileC(dir, 'gonote', GO_NOTE);
  assert.equal((await consoleRouteWarnings(go, '/proof.bin'))[0]?.code, 'proof-route-exit');
  await assert.rejects(
    buildProofOutLibrary({ cacheDir: join(dir, 'empty-cache'), pathEnv: '/nonexistent' }),
    {
      code: 'E_TOOL_MISSING',
      message: /gcc is not installed/,
    },
  );
});

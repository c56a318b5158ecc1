/** The host side of file proofs through the console: markers found in pieces, checked, written whole or not at all. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CONSOLE_BYTES_PER_PROOF_BYTE,
  FileProofReceiver,
  type FileProofStatus,
} from '../../src/core/proof/console-file.js';
import { checkProofFits, withConsoleRoute } from '../../src/core/proof/route.js';
import { tempDir } from '../helpers/tmp.js';

/** The console text proof-out.c writes for `data` (768 bytes a line). */
function encode(data: Buffer, path = '/out/proof.bin'): string {
  let text = `\nUNIPROVE-FILE-PROOF-BEGIN bytes=${data.length} path=${path}\n`;
  for (let i = 0; i < data.length; i += 768) text += `UPF:${data.subarray(i, i + 768).toString('base64')}\n`;
  const sha = createHash('sha256').update(data).digest('hex');
  return `${text}UNIPROVE-FILE-PROOF-END bytes=${data.length} sha256=${sha}\n`;
}

/** Insert a kernel line after the n-th line, as Nanos does (its DHCP messages come at any time). */
function withForeignLine(
  text: string,
  n: number,
  line = '[2.842434] en1: assigned FE80::5054:FF:FE12:3456',
): string {
  const lines = text.split('\n');
  lines.splice(n, 0, line);
  return lines.join('\n');
}

async function receive(dir: string, text: string, chunk: (i: number) => number) {
  const r = new FileProofReceiver(join(dir, 'proofs', 'out__proof.bin'));
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'proofs'), { recursive: true }));
  let shown = '';
  for (let at = 0, i = 0; at < text.length; i++) {
    const n = Math.max(1, chunk(i));
    shown += r.push(text.slice(at, at + n));
    at += n;
  }
  return { status: await r.finish(), shown };
}

/** What a folder holds once any file a failed transfer opened had time to appear. */
async function leftIn(dir: string): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 100));
  return readdir(dir);
}

const boot = 'Nanos booting\r\nen1: assigned 10.0.2.15\nwrote the proof\n';

test('a proof comes back byte for byte whatever the console pieces, kernel lines skipped and shown', async () => {
  for (const size of [0, 1, 767, 768, 769, 5000]) {
    const data = randomBytes(size);
    const text = boot + withForeignLine(encode(data), 3) + 'after\n';
    for (const [name, chunk] of [
      ['1 byte', () => 1],
      ['7 bytes', () => 7],
      ['1000 bytes', () => 1000],
      ['random', () => 1 + Math.floor(Math.random() * 300)],
    ] as const) {
      const dir = await tempDir();
      const { status, shown } = await receive(dir, text, chunk);
      assert.equal(status.state, 'received', `${size} bytes in ${name} pieces`);
      const got = await readFile(join(dir, 'proofs', 'out__proof.bin'));
      assert.ok(got.equals(data), `${size} bytes in ${name} pieces`);
      assert.equal(
        (status as Extract<FileProofStatus, { state: 'received' }>).sha256,
        createHash('sha256').update(data).digest('hex'),
      );
      // What a person sees live: everything but the data lines.
      assert.equal(
        shown,
        text
          .split('\n')
          .filter((l) => !l.startsWith('UPF:'))
          .join('\n'),
      );
      assert.deepEqual((await readdir(join(dir, 'proofs'))).sort(), ['out__proof.bin']);
    }
  }
});

test('whole lines (the Compute Engine reader) work as pieces do', async () => {
  const data = randomBytes(3000);
  const dir = await tempDir();
  const r = new FileProofReceiver(join(dir, 'p.bin'));
  for (const line of (boot + encode(data)).split('\n')) r.pushLine(line);
  const status = await r.finish();
  assert.equal(status.state, 'received');
  assert.ok((await readFile(join(dir, 'p.bin'))).equals(data));
});

test('a transfer cut before its end marker is E_PROOF_TRUNCATED and leaves no file', async () => {
  const data = randomBytes(4000);
  const full = encode(data);
  for (const cut of [
    full.indexOf('UPF:') + 10,
    full.indexOf('UNIPROVE-FILE-PROOF-END') - 1,
    full.length - 20,
  ]) {
    const dir = await tempDir();
    await assert.rejects(
      receive(dir, boot + full.slice(0, cut), () => 64),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'E_PROOF_TRUNCATED', e.message);
        return true;
      },
    );
    assert.deepEqual(await leftIn(join(dir, 'proofs')), []);
  }
  // A whole data line lost (a console that dropped bytes): fewer bytes than the end marker says.
  const lines = full.split('\n');
  lines.splice(3, 1);
  const dir = await tempDir();
  await assert.rejects(
    receive(dir, lines.join('\n'), () => 100),
    { code: 'E_PROOF_TRUNCATED' },
  );
  assert.deepEqual(await leftIn(join(dir, 'proofs')), []);
});

test('damaged data is E_PROOF_CORRUPT and leaves no file', async () => {
  const data = randomBytes(4000);
  const full = encode(data);
  const at = full.indexOf('UPF:') + 100;
  const flipped = full.slice(0, at) + (full[at] === 'A' ? 'B' : 'A') + full.slice(at + 1);
  const notBase64 = `${full.slice(0, at)}*${full.slice(at + 1)}`;
  const cutLine = `${full.slice(0, at)}\n${full.slice(at)}`;
  for (const text of [flipped, notBase64, cutLine]) {
    const dir = await tempDir();
    await assert.rejects(
      receive(dir, text, () => 333),
      { code: 'E_PROOF_CORRUPT' },
    );
    assert.deepEqual(await leftIn(join(dir, 'proofs')), []);
  }
});

test('a file the guest could not read, and no transfer at all, are statuses (not errors)', async () => {
  const dir = await tempDir();
  const err = await receive(
    dir,
    `${boot}\nUNIPROVE-FILE-PROOF-ERROR errno=2 path=/out/proof.bin No such file or directory\n`,
    () => 10,
  );
  assert.deepEqual(err.status, {
    state: 'guest-error',
    guestPath: '/out/proof.bin',
    errno: 2,
    message: 'No such file or directory',
  });
  assert.deepEqual((await receive(await tempDir(), boot, () => 5)).status, { state: 'absent' });
});

test('the route merges LD_PRELOAD and refuses a proof the console cannot carry in time', () => {
  const lib = {
    path: '/c/proof-out/x/uniprove-proof-out.so',
    dir: '/c/proof-out/x',
    digest: 'x',
    compiled: false,
  };
  const config = withConsoleRoute(
    { Program: 'p', Env: { LD_PRELOAD: '/stdin-from-file.so', A: '1' } },
    lib,
    '/out/proof.bin',
  );
  assert.deepEqual(config.Env, {
    LD_PRELOAD: '/stdin-from-file.so:/.uniprove-proof-out/uniprove-proof-out.so',
    A: '1',
    UNIPROVE_PROOF_FILE: '/out/proof.bin',
  });
  assert.deepEqual(config.MapDirs, { '/c/proof-out/x/*': '/.uniprove-proof-out' });
  // 1 MB through an 11,520 B/s console takes about 2 minutes.
  assert.ok(CONSOLE_BYTES_PER_PROOF_BYTE > 4 / 3 && CONSOLE_BYTES_PER_PROOF_BYTE < 1.34);
  checkProofFits({ maxBytes: 2 ** 20, timeoutMs: 3600_000, where: 'gce', guestPath: '/p' });
  assert.throws(
    () => checkProofFits({ maxBytes: 2 ** 20, timeoutMs: 60_000, where: 'gce', guestPath: '/p' }),
    {
      code: 'E_PROOF_TOO_LARGE',
    },
  );
  checkProofFits({ maxBytes: undefined, timeoutMs: 1000, where: 'gce', guestPath: '/p' });
});

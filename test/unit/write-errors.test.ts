import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { mapLimit } from '../../src/core/concurrency.js';
import { ERROR_CODES, ExitCode, isUniproveError, UniproveError } from '../../src/core/errors.js';
import { isWriteRefusal, requireRegularFile, toWriteError } from '../../src/core/fs.js';
import { OPS_CONFIG_KINDS } from '../../src/core/manifest/build.js';
import { LOCK_FILE, packageOwnPath } from '../../src/core/package/layout.js';
import { tempDir } from '../helpers/tmp.js';

function errno(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

test('every file-system refusal becomes one typed error with its exit class, never an internal one', async () => {
  const dir = await tempDir();
  const expected: Record<string, [string, number]> = {
    ENOSPC: ['E_DISK_FULL', ExitCode.environment],
    EDQUOT: ['E_DISK_FULL', ExitCode.environment],
    EROFS: ['E_READ_ONLY', ExitCode.environment],
    EACCES: ['E_PERMISSION', ExitCode.environment],
    EPERM: ['E_PERMISSION', ExitCode.environment],
    ENAMETOOLONG: ['E_NAME_TOO_LONG', ExitCode.usage],
    EMLINK: ['E_FS_LIMIT', ExitCode.environment],
    EXDEV: ['E_FS_LIMIT', ExitCode.environment],
    ENOTDIR: ['E_NOT_FOUND', ExitCode.usage],
    EISDIR: ['E_IS_DIRECTORY', ExitCode.usage],
  };
  for (const [code, [typed, exit]] of Object.entries(expected)) {
    const cause = errno(code, 'open', join(dir, 'out', 'file'));
    const error = await toWriteError(cause, { what: 'the thing', path: join(dir, 'out'), bytes: 3 << 20 });
    assert.ok(isUniproveError(error), code);
    assert.equal(error.code, typed, code);
    assert.equal(error.exitCode, exit, code);
    assert.equal(error.cause, cause, `${code}: the cause is kept`);
    assert.match(error.message, /the thing/, code);
    assert.match(error.message, new RegExp(`open ${dir}/out/file`), `${code}: names the path`);
    assert.ok(error.hint, code);
  }
  const full = (await toWriteError(errno('ENOSPC', 'write', join(dir, 'x')), {
    what: 'the package',
    path: dir,
    bytes: 3 << 20,
    elsewhere: 'pass --out DIR',
  })) as UniproveError;
  assert.match(
    full.message,
    /no space left on the disk holding .*; it needs 3\.0 MiB, [\d.]+ [KMGT]?i?B free/,
  );
  assert.match(full.hint ?? '', /pass --out DIR/);
  assert.ok(isWriteRefusal(full));
});

test('what is not a file-system refusal passes through unchanged', async () => {
  const bug = new TypeError('x is undefined');
  assert.equal(await toWriteError(bug, { what: 'w', path: '/' }), bug);
  const typed = new UniproveError('E_CONFIG', { message: 'bad' });
  assert.equal(await toWriteError(typed, { what: 'w', path: '/' }), typed);
  assert.equal(isWriteRefusal(typed), false);
  const missing = errno('ENOENT', 'open', '/nope');
  assert.equal(await toWriteError(missing, { what: 'w', path: '/nope' }), missing);
});

test('the new codes are usage or environment classes', () => {
  for (const code of ['E_DISK_FULL', 'E_READ_ONLY', 'E_PERMISSION', 'E_FS_LIMIT'] as const) {
    assert.equal(ERROR_CODES[code], 'environment');
  }
  assert.equal(ERROR_CODES.E_NAME_TOO_LONG, 'usage');
  assert.equal(ERROR_CODES.E_NOT_REGULAR_FILE, 'usage');
});

test('requireRegularFile names a FIFO, a folder and a missing file without opening them', async () => {
  const dir = await tempDir();
  const fifo = join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  await mkdir(join(dir, 'folder'));
  await assert.rejects(requireRegularFile(fifo, 'binary'), {
    code: 'E_NOT_REGULAR_FILE',
    message: `binary: ${fifo} is a FIFO (named pipe), not a regular file`,
  });
  await assert.rejects(requireRegularFile(join(dir, 'folder'), 'files[0].host'), { code: 'E_IS_DIRECTORY' });
  await assert.rejects(requireRegularFile(join(dir, 'absent'), 'x'), { code: 'E_NOT_FOUND' });
  await assert.rejects(requireRegularFile('/dev/null', 'x'), { message: /is a character device/ });
});

test('mapLimit starts nothing after a failure and settles only when the running items have', async () => {
  const started: number[] = [];
  let running = 0;
  let runningAtEnd = -1;
  await assert.rejects(
    mapLimit([0, 1, 2, 3, 4, 5, 6, 7], 2, async (i) => {
      started.push(i);
      running++;
      await new Promise((r) => setTimeout(r, i === 0 ? 5 : 30));
      running--;
      if (i === 0) throw new Error('first fails');
    }).finally(() => {
      runningAtEnd = running;
    }),
    /first fails/,
  );
  assert.deepEqual(started, [0, 1], 'no item started after the failure');
  assert.equal(runningAtEnd, 0, 'the item under way had finished');
});

test("the package's own paths cover every config it writes, the lock and its state folder", () => {
  for (const t of OPS_CONFIG_KINDS) assert.ok(packageOwnPath(`/${t}.json`), t);
  assert.ok(packageOwnPath(`/${LOCK_FILE}`));
  assert.ok(packageOwnPath('/.uniprove/state.json'));
  assert.equal(packageOwnPath('/local.json.d/x'), undefined);
  assert.equal(packageOwnPath('/etc/local.json'), undefined);
});

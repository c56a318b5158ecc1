/** File helpers every part of uniprove shares: atomic writes, bounded parallel work. */
import { randomBytes } from 'node:crypto';
import { constants, openSync, type Stats } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { addAbortSignal } from 'node:stream';
import { type ErrorCode, isUniproveError, UniproveError } from './errors.js';
import { formatBytes } from './format.js';
import { ownerToken } from './owner.js';

/**
 * Write `data` to `path` atomically (temp file in the same folder, then rename): no reader sees half a file,
 * and a failed write leaves the old file as it was. A refusal of the file system is a typed error naming
 * `path` (or what `context` calls it).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  context: Partial<WriteContext> = {},
): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => {});
    throw await toWriteError(error, { what: path, path, bytes: Buffer.byteLength(data), ...context });
  }
}

/** Stable JSON text: two-space indent and a trailing newline; key order is the construction order. */
export function stableJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Write a value as indented JSON, atomically. */
export async function writeJsonAtomic(
  path: string,
  value: unknown,
  context: Partial<WriteContext> = {},
): Promise<void> {
  await writeFileAtomic(path, stableJson(value), context);
}

/** Parse JSON text, naming the file (E_CONFIG) when it is not JSON. */
export function parseJsonFile(
  text: string,
  origin: string,
  hint = 'Check the file for a missing comma or quote.',
): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `${origin} is not valid JSON: ${(error as Error).message}`,
      hint,
      cause: error,
    });
  }
}

/** Read a JSON file, or undefined when it is absent or unreadable. */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** What was being written when the file system refused, so the error can name it and say where else to write. */
export interface WriteContext {
  /** What the user would call it: "the package", "the image cache", "the run record". */
  what: string;
  /** The file or folder being written (the user's --out, the cache folder). */
  path: string;
  /** Bytes the write needs, where known. */
  bytes?: number;
  /** How to write somewhere else instead, e.g. "pass --out DIR on another disk". */
  elsewhere?: string;
}

/** errno codes that mean the file system refused a write (the host's state or the user's path, not a bug). */
const WRITE_ERRNO: Record<string, ErrorCode> = {
  ENOSPC: 'E_DISK_FULL',
  EDQUOT: 'E_DISK_FULL',
  EROFS: 'E_READ_ONLY',
  EACCES: 'E_PERMISSION',
  EPERM: 'E_PERMISSION',
  ENAMETOOLONG: 'E_NAME_TOO_LONG',
  EMLINK: 'E_FS_LIMIT',
  EXDEV: 'E_FS_LIMIT',
  EFBIG: 'E_FS_LIMIT',
  ENOTDIR: 'E_NOT_FOUND',
  EISDIR: 'E_IS_DIRECTORY',
};

/** The codes toWriteError gives for a file system that refused a write: retrying cannot help. */
const WRITE_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'E_DISK_FULL',
  'E_READ_ONLY',
  'E_PERMISSION',
  'E_NAME_TOO_LONG',
  'E_FS_LIMIT',
]);

/** True for the typed error of a full, read-only or refusing file system. */
export function isWriteRefusal(error: unknown): error is UniproveError {
  return isUniproveError(error) && WRITE_REFUSALS.has(error.code);
}

/** The nearest folder of `path` (or `path` itself) that exists, to ask its file system for free space. */
async function existingAncestor(path: string): Promise<string> {
  let at = path;
  for (;;) {
    if (
      await stat(at).then(
        () => true,
        () => false,
      )
    )
      return at;
    const up = dirname(at);
    if (up === at) return at;
    at = up;
  }
}

/**
 * Turn an errno error from writing `context.path` into the typed error that names the path, the bytes
 * needed where known, and the fix; anything else (a UniproveError, an abort, a bug) is returned as it is.
 * The one place that maps file-system refusals, so every writer says the same thing.
 */
export async function toWriteError(error: unknown, context: WriteContext): Promise<unknown> {
  let errno = error as NodeJS.ErrnoException & { dest?: string };
  if (errno?.code === 'ENOENT' && errno.syscall === 'mkdir' && errno.path) {
    // A recursive mkdir reports a read-only or forbidden parent as ENOENT: ask the folder that exists.
    const refusal = await access(await existingAncestor(errno.path), constants.W_OK).then(
      () => undefined,
      (probe: NodeJS.ErrnoException) => probe,
    );
    if (refusal?.code) errno = Object.assign(refusal, { path: errno.path, syscall: 'mkdir', cause: error });
  }
  const code = typeof errno?.code === 'string' ? WRITE_ERRNO[errno.code] : undefined;
  if (!code || !(errno instanceof Error)) return error;
  const at = errno.dest ?? errno.path ?? context.path;
  const call = errno.syscall ? `${errno.syscall} ${at}` : at;
  const elsewhere = context.elsewhere ?? 'write it somewhere else';
  const details = {
    path: context.path,
    at,
    errno: errno.code,
    ...(context.bytes ? { bytes: context.bytes } : {}),
  };
  const make = (message: string, hint: string) =>
    new UniproveError(code, { message, hint, cause: errno, details });
  switch (errno.code) {
    case 'ENOSPC':
    case 'EDQUOT': {
      const fs = await statfs(await existingAncestor(context.path)).catch(() => undefined);
      const free = fs ? fs.bavail * fs.bsize : undefined;
      const full = errno.code === 'EDQUOT' ? 'your disk quota is used up' : 'no space left';
      const need = context.bytes ? `; it needs ${formatBytes(context.bytes)}` : '';
      const left = free !== undefined ? `${need ? ',' : ';'} ${formatBytes(free)} free` : '';
      return make(
        `${context.what} does not fit: ${full} on the disk holding ${context.path}${need}${left} (${call})`,
        `Free space on that disk (old packages, runs/, \`ops image list\`), or ${elsewhere}.`,
      );
    }
    case 'EROFS':
      return make(
        `cannot write ${context.what}: ${context.path} is on a read-only file system (${call})`,
        `Remount it read-write, or ${elsewhere}.`,
      );
    case 'EACCES':
    case 'EPERM':
      return make(
        `cannot write ${context.what}: permission denied (${call})`,
        `Make the folder writable for this user (ls -ld ${dirname(at)}), or ${elsewhere}.`,
      );
    case 'ENAMETOOLONG':
      return make(
        `cannot write ${context.what}: a file name is too long for the file system (${call})`,
        'Shorten the path: a file or folder name holds at most 255 bytes, a whole path 4096.',
      );
    case 'ENOTDIR':
      return make(
        `cannot write ${context.what}: a part of ${at} is a file, not a folder (${call})`,
        `Give a path whose folders are folders, or ${elsewhere}.`,
      );
    case 'EISDIR':
      return make(
        `cannot write ${context.what}: ${at} is a folder (${call})`,
        'Give the path of a file inside it, or remove the folder.',
      );
    default:
      return make(
        `cannot write ${context.what}: ${
          errno.code === 'EMLINK'
            ? 'a folder holds as many entries or links as the file system allows'
            : errno.code === 'EFBIG'
              ? 'the file is larger than the file system holds'
              : 'a rename or link would cross file systems'
        } (${errno.code}, ${call})`,
        errno.code === 'EMLINK'
          ? `A folder there holds as many entries or links as the file system allows; ${elsewhere}.`
          : errno.code === 'EFBIG'
            ? `The file system cannot hold a file this large; ${elsewhere}.`
            : `Write on one file system: ${elsewhere}.`,
      );
  }
}

/** Run `work`, turning file-system refusals into typed errors (see toWriteError). */
export async function withWriteErrors<T>(context: WriteContext, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw await toWriteError(error, context);
  }
}

/**
 * Refuse, before any long work, a destination the file system will not let us write (read-only, not ours):
 * the nearest existing folder of `context.path` must be writable, and every name of `created` (the path
 * that will be made, a staging folder beside it) must fit in 255 bytes.
 */
export async function assertWritable(context: WriteContext, created = context.path): Promise<void> {
  const long = created.split('/').find((name) => Buffer.byteLength(name) > 255);
  if (long !== undefined) {
    throw new UniproveError('E_NAME_TOO_LONG', {
      message: `cannot write ${context.what}: the name ${long.slice(0, 40)}… in ${created} has ${Buffer.byteLength(long)} bytes, more than the 255 a file system holds`,
      hint: 'Shorten the path: a file or folder name holds at most 255 bytes, a whole path 4096.',
      details: { path: context.path },
    });
  }
  const at = await existingAncestor(context.path);
  await withWriteErrors(context, () => access(at, constants.W_OK));
}

/**
 * A fresh folder under the host's temporary folder, named for this uniprove (os.tmpdir(): TMPDIR, else /tmp). A TMPDIR that does not
 * exist is E_ENV_PATH naming it; one that refuses writes is blamed on the temporary folder, not on the caller's.
 */
export async function makeTempDir(prefix: string): Promise<string> {
  const root = tmpdir();
  try {
    // Named for this uniprove (`<prefix><pid>.<start>-XXXXXX`): one killed hard leaves its folder, and the next
    // uniprove that finds its owner gone removes it (core/leftovers.ts).
    return await mkdtemp(join(root, `${prefix}${ownerToken()}-`));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new UniproveError('E_ENV_PATH', {
        message: `the temporary folder ${root} (TMPDIR) ${code === 'ENOENT' ? 'does not exist' : 'is not a folder'}`,
        hint: `Create it (mkdir -p ${root}), or point TMPDIR at a folder that exists (unset, it is /tmp).`,
        cause: error,
        details: { variable: 'TMPDIR', path: root },
      });
    }
    throw await toWriteError(error, {
      what: `a temporary folder in ${root} (TMPDIR)`,
      path: root,
      elsewhere: 'point TMPDIR at a writable folder',
    });
  }
}

/** "a FIFO (named pipe)", "a socket": what a file that is not a regular file is, for error messages. */
export function describeFileType(info: Stats): string {
  if (info.isDirectory()) return 'a folder';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSymbolicLink()) return 'a symlink';
  return 'a regular file';
}

/**
 * stat `path` (without opening it: opening a FIFO blocks until a writer comes) and refuse anything but a
 * regular file: E_NOT_FOUND when absent, E_IS_DIRECTORY for a folder, E_NOT_REGULAR_FILE for a FIFO,
 * socket or device. `what` names the field or role ("binary", "files[2].host").
 */
export async function requireRegularFile(path: string, what: string, hint?: string): Promise<Stats> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UniproveError(code === 'ENOENT' || code === 'ENOTDIR' ? 'E_NOT_FOUND' : 'E_PERMISSION', {
      message: `${what}: ${path} ${code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? error})`}`,
      hint: hint ?? 'Check the path; relative recipe paths are relative to the recipe folder.',
      cause: error,
      details: { path },
    });
  }
  if (info.isFile()) return info;
  if (info.isDirectory()) {
    throw new UniproveError('E_IS_DIRECTORY', {
      message: `${what}: ${path} is a folder, not a file`,
      hint: hint ?? 'Give the path of the file itself.',
      details: { path },
    });
  }
  throw notRegularFile(info, path, what, hint);
}

/**
 * Refuse a FIFO, socket or device at `path` before anything opens it (opening a FIFO waits for a writer);
 * a missing file or a folder is left to the caller's own error.
 */
export async function refuseSpecialFile(path: string, what: string, hint?: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info && !info.isFile() && !info.isDirectory()) throw notRegularFile(info, path, what, hint);
}

/** E_NOT_REGULAR_FILE for a FIFO, socket or device found at `path` where a regular file was expected. */
export function notRegularFile(info: Stats, path: string, what: string, hint?: string): UniproveError {
  return new UniproveError('E_NOT_REGULAR_FILE', {
    message: `${what}: ${path} is ${describeFileType(info)}, not a regular file`,
    hint: hint ?? 'Give the path of a regular file (copy what the pipe or device holds into a file first).',
    details: { path, type: describeFileType(info) },
  });
}

/**
 * The bytes of a FIFO (what `debug <(ops run ...)` gives), read through the event loop: opened without
 * blocking (O_NONBLOCK: a FIFO's writer may not have come yet), so Ctrl-C stops the wait at any moment;
 * a blocking open or read would hold a thread that even process.exit waits for.
 */
export function pipeBlocks(path: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const pipe = new Socket({ fd, readable: true, writable: false });
  if (signal) addAbortSignal(signal, pipe);
  return readPipe(pipe, signal);
}

async function* readPipe(pipe: Socket, signal?: AbortSignal): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of pipe) yield chunk as Buffer;
  } catch (error) {
    signal?.throwIfAborted();
    throw error;
  } finally {
    pipe.destroy();
  }
}

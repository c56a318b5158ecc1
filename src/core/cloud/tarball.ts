import { mkdtemp, rename, rm, stat, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UniproveError } from '../errors.js';
import { run } from '../exec.js';

export interface PackImageOptions {
  signal?: AbortSignal;
  /** 'auto' (default) uses GNU tar when it is on PATH; 'js' forces the npm fallback. */
  method?: 'auto' | 'gnu-tar' | 'js';
  /** The tar program to try (default `tar`). */
  tarProgram?: string;
}

export interface PackImageResult {
  path: string;
  method: 'gnu-tar' | 'js';
  /** Size of the tarball. */
  bytes: number;
  /** Apparent size of the raw disk. */
  rawBytes: number;
  durationMs: number;
}

/** True when `program` is GNU tar (which knows --format=oldgnu and -S). */
export async function isGnuTar(program = 'tar', signal?: AbortSignal): Promise<boolean> {
  try {
    const r = await run([program, '--version'], { allowFailure: true, timeoutMs: 10_000, signal });
    return r.exitCode === 0 && /GNU tar/.test(r.stdout);
  } catch {
    return false;
  }
}

/** Pack `rawPath` as `outPath`, a .tar.gz with one member `disk.raw`; written atomically. */
export async function packImageTarball(
  rawPath: string,
  outPath: string,
  options: PackImageOptions = {},
): Promise<PackImageResult> {
  const started = performance.now();
  let raw: Awaited<ReturnType<typeof stat>>;
  try {
    raw = await stat(rawPath);
  } catch (error) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `raw disk image ${rawPath} does not exist`,
      hint: 'Build the image first (uniprove package), or give the path of a raw disk file.',
      cause: error,
    });
  }
  if (!raw.isFile()) {
    throw new UniproveError('E_IS_DIRECTORY', {
      message: `${rawPath} is not a file`,
      hint: 'Give a raw disk file.',
    });
  }
  const program = options.tarProgram ?? 'tar';
  const method =
    options.method === 'js' || options.method === 'gnu-tar'
      ? options.method
      : (await isGnuTar(program, options.signal))
        ? 'gnu-tar'
        : 'js';
  const tmp = join(dirname(outPath), `.${basename(outPath)}.${process.pid}.${Date.now()}.partial`);
  // The member must be called disk.raw: a link under that name in a private folder next to the output.
  const stage = await mkdtemp(join(dirname(outPath), '.uniprove-pack-'));
  try {
    const link = join(stage, 'disk.raw');
    await symlink(rawPath.startsWith('/') ? rawPath : join(process.cwd(), rawPath), link);
    if (method === 'gnu-tar') {
      // -h packs the file the link points to; -S finds its holes; oldgnu is the format GCE documents.
      await run([program, '--format=oldgnu', '-S', '-h', '-czf', tmp, '-C', stage, 'disk.raw'], {
        signal: options.signal,
      });
    } else {
      const tar = await import('tar');
      await tar.create({ gzip: true, file: tmp, cwd: stage, follow: true, portable: true }, ['disk.raw']);
    }
    await rename(tmp, outPath);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  const packed = await stat(outPath);
  return {
    path: outPath,
    method,
    bytes: packed.size,
    rawBytes: raw.size,
    durationMs: performance.now() - started,
  };
}

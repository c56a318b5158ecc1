/**
 * Folders the program listed (getdents64) and read only part of. A program that lists a folder and then opens
 * what it finds (a test's data folder, a plugin folder) reads the files it opened on this host; in the image it
 * finds only those, and a program that expects every file it lists fails. Packaging every listed folder is
 * wrong: Python lists each folder of its import path and each package it imports. So a folder counts only with
 * evidence that it holds data: the program read a data file directly in it, and nothing from it is code (no ELF
 * object, no Python module, no .pth), which leaves out library and module folders.
 */
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { ClosureFile } from '../elf/resolve.js';
import { formatBytes } from '../format.js';
import type { TraceResult } from '../strace/types.js';
import type { DiscoverWarning } from './types.js';

/** Files of an import path: Python sources, bytecode and site .pth files. */
const MODULE_FILE = /\.(?:py|pyc|pyo|pth)$/;
/** Left-out files named in a warning (the count and size cover all). */
const MAX_NAMED = 100;

export interface ListedFoldersOptions {
  trace: TraceResult;
  /** The closure so far: what is already packaged, and the evidence of data and code in each folder. */
  files: readonly ClosureFile[];
  /** The program that listed the folders (the parent the warning and `why` name). */
  binary: string;
  hostOf: (guest: string) => string;
  /** Paths in the probe's copy of the recipe's own files: packaged by the recipe already. */
  inOwnTree: (path: string) => boolean;
  /** Package such folders whole instead of reporting them (--include-listed, probe.includeListed). */
  include: boolean;
}

export interface ListedFoldersResult {
  warnings: DiscoverWarning[];
  /** With `include`: the folders' other files, to add with reason `listed`. */
  additions: { path: string; reason: 'listed'; parent: string }[];
}

/** What the closure holds directly in each folder: whether any of it is code, and how many data files. */
function folderEvidence(files: readonly ClosureFile[]): Map<string, { code: boolean; data: number }> {
  const byDir = new Map<string, { code: boolean; data: number }>();
  const at = (dir: string) => {
    let e = byDir.get(dir);
    if (!e) {
      e = { code: false, data: 0 };
      byDir.set(dir, e);
    }
    return e;
  };
  for (const f of files) {
    const dir = posix.dirname(f.path);
    const code = Boolean(f.elf) || MODULE_FILE.test(f.path);
    // A folder with a __pycache__ is a module folder.
    if (posix.basename(dir) === '__pycache__') at(posix.dirname(dir)).code = true;
    if (code) at(dir).code = true;
    else if (f.reasons.includes('runtime-file')) at(dir).data++;
  }
  return byDir;
}

/** The regular files directly in a host folder (links to regular files included), with their sizes. */
async function regularFiles(hostDir: string): Promise<{ name: string; size: number }[]> {
  const entries: Dirent[] = await readdir(hostDir, { withFileTypes: true }).catch(() => []);
  const out: { name: string; size: number }[] = [];
  for (const e of entries) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    const info = await stat(join(hostDir, e.name)).catch(() => undefined);
    if (info?.isFile()) out.push({ name: e.name, size: info.size });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Listed folders the program read data from and did not read whole: a warning each, or their files to add. */
export async function listedFolders(options: ListedFoldersOptions): Promise<ListedFoldersResult> {
  const { trace, files, binary } = options;
  const evidence = folderEvidence(files);
  const known = new Set<string>();
  for (const f of files) {
    known.add(f.path);
    for (const s of f.symlinks) known.add(s);
  }
  const written = new Set(trace.written);
  const result: ListedFoldersResult = { warnings: [], additions: [] };
  for (const listing of trace.listed) {
    const dir = listing.path;
    const seen = evidence.get(dir);
    if (listing.onlyHelpers || !seen || seen.code || seen.data === 0) continue;
    if (options.inOwnTree(`${dir}/`) || written.has(dir)) continue;
    const all = await regularFiles(options.hostOf(dir));
    const left = all.filter((f) => {
      const path = dir === '/' ? `/${f.name}` : `${dir}/${f.name}`;
      return !known.has(path) && !written.has(path);
    });
    if (left.length === 0) continue;
    const paths = left.map((f) => (dir === '/' ? `/${f.name}` : `${dir}/${f.name}`));
    if (options.include) {
      for (const path of paths) result.additions.push({ path, reason: 'listed', parent: binary });
      continue;
    }
    const bytes = left.reduce((n, f) => n + f.size, 0);
    const named = left.slice(0, 5).map((f) => f.name);
    result.warnings.push({
      code: 'listed-partly-packaged',
      message: `${dir}: listed, partly packaged: ${binary} listed it and read ${all.length - left.length} of its ${all.length} files; the ${left.length} it never opened (${formatBytes(bytes)}: ${named.join(', ')}${left.length > named.length ? ', …' : ''}) are left out, and a program that expects every file it lists fails inside Nanos without them. Package the folder whole with --include-listed (recipe: "probe": { "includeListed": true }), or list the files in the recipe`,
      path: dir,
      parent: binary,
      leftOut: { files: paths.slice(0, MAX_NAMED), count: paths.length, bytes },
    });
  }
  return result;
}

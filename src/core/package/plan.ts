/**
 * From discovered files to a package plan: every guest path the image will
 * hold, as a regular file (with its host source) or a symlink (with its
 * relative target), each with the reasons it is there.
 */
import { join, posix, relative } from 'node:path';
import { symlinkChain } from '../discover/symlinks.js';
import type { DiscoveredFile } from '../discover/types.js';
import { UniproveError } from '../errors.js';
import { addReasons, type FileReasons } from '../reasons.js';

/** One entry of the image tree: a guest path (absolute) and why it is there, as a file, a link or a folder. */
export type PlanEntry =
  | (FileReasons & {
      type: 'file';
      /** Host file the bytes come from (absolute, real). */
      source: string;
    })
  | (FileReasons & {
      type: 'symlink';
      /** Relative link target, as it will be stored. */
      target: string;
    })
  | (FileReasons & {
      /** A folder the recipe names (empty or not): made in the image even when nothing is put in it. */
      type: 'dir';
      /** Permission bits (e.g. 0o755). */
      mode: number;
    });

/** A folder for the image tree, from the recipe's `dirs` (an absolute guest path). */
export interface PlanDir extends FileReasons {
  mode: number;
}

export interface PackagePlan {
  /** Sorted by guest path; unique paths. */
  entries: PlanEntry[];
}

/** Normalise a guest path and refuse anything that climbs out of the image root. */
export function checkGuestPath(path: string, what: string): string {
  if (!path.startsWith('/')) {
    throw new UniproveError('E_PATH_ESCAPE', {
      message: `${what}: guest path ${JSON.stringify(path)} is not absolute`,
      hint: 'Guest paths start with / (the image root).',
    });
  }
  if (path.split('/').includes('..')) {
    throw new UniproveError('E_PATH_ESCAPE', {
      message: `${what}: guest path ${JSON.stringify(path)} climbs out of the image root with ".."`,
      hint: 'Write the guest path without "..".',
    });
  }
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/$/, '') : normal;
}

/** The guest path of a host path: the same path, or its path inside `root`. */
export function toGuest(hostPath: string, root: string): string {
  if (root === '/' || root === '') return hostPath;
  const rel = relative(root, hostPath);
  if (rel.startsWith('..') || rel === '') {
    throw new UniproveError('E_PATH_ESCAPE', {
      message: `${hostPath} is outside the resolution root ${root}`,
      hint: 'Every file of a --root package must come from inside that root.',
    });
  }
  return `/${rel}`;
}

/** Build the plan from discovered files (host paths), the recipe's folders and a resolution root. */
export async function planPackage(
  files: readonly DiscoveredFile[],
  root = '/',
  dirs: readonly PlanDir[] = [],
): Promise<PackagePlan> {
  const byPath = new Map<string, PlanEntry>();
  const add = (entry: PlanEntry) => {
    const existing = byPath.get(entry.path);
    if (!existing) {
      byPath.set(entry.path, entry);
      return;
    }
    if ((existing.type === 'dir') !== (entry.type === 'dir')) {
      throw new UniproveError('E_CONFIG', {
        message: `${entry.path} would be both a folder and a ${existing.type === 'dir' ? entry.type : existing.type}`,
        hint: 'The recipe puts a folder and a file at the same guest path; change one guest path.',
      });
    }
    // Two recipe entries naming one folder: the first one's mode stands, as the first file's source does.
    addReasons(existing, entry.reasons, entry.parents);
  };
  for (const file of files) {
    const chain = file.chain.length > 0 ? file.chain : await symlinkChain(file.path, root);
    const guestChain = chain.map((p, i) =>
      checkGuestPath(p, i === 0 ? file.path : `${file.path} (link ${i})`),
    );
    const reasons = [...file.reasons];
    for (let i = 0; i < guestChain.length - 1; i++) {
      const from = guestChain[i] as string;
      const to = guestChain[i + 1] as string;
      add({
        type: 'symlink',
        path: from,
        target: posix.relative(posix.dirname(from), to) || posix.basename(to),
        reasons: i === 0 ? [...reasons] : ['symlink'],
        parents: i === 0 ? [...file.parents] : [from],
      });
    }
    const last = guestChain[guestChain.length - 1] as string;
    const source = root === '/' ? last : join(root, last);
    add({
      type: 'file',
      path: last,
      source,
      reasons: guestChain.length === 1 ? [...reasons] : ['symlink-target'],
      parents: guestChain.length === 1 ? [...file.parents] : [guestChain[guestChain.length - 2] as string],
    });
  }
  for (const d of dirs) {
    const path = checkGuestPath(d.path, d.path);
    add({ type: 'dir', path, mode: d.mode, reasons: [...d.reasons], parents: [...d.parents] });
  }
  // A path cannot be both a file and a folder holding other entries.
  const entries = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (let i = 0; i + 1 < entries.length; i++) {
    const a = entries[i] as PlanEntry;
    const b = entries[i + 1] as PlanEntry;
    if (a.type !== 'dir' && b.path.startsWith(`${a.path}/`)) {
      throw new UniproveError('E_CONFIG', {
        message: `${a.path} would be both a file and a folder (it holds ${b.path})`,
        hint: 'Two entries of the recipe put a file and a folder at the same guest path; change one guest path.',
      });
    }
  }
  for (const e of entries) e.reasons.sort();
  return { entries };
}

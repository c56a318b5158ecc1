/**
 * Which guest path each file of a package claims, and why: recipe files, recipe folders and the links inside them.
 */
import { readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { DiscoveredFile } from '../discover/types.js';
import { UniproveError } from '../errors.js';
import { notRegularFile } from '../fs.js';
import type { ResolvedRecipe } from '../recipe/load.js';
import { packageOwnPath } from './layout.js';
import { checkGuestPath, type PlanDir, type PlanEntry } from './plan.js';

/** Where a guest path of the image was claimed by the recipe: the field, and the host file for dirs. */
export interface Claim {
  field: string;
  host: string;
  replace: boolean;
}

export function claimLabel(claim: Claim): string {
  return claim.field.startsWith('dirs') ? `${claim.field} (${claim.host})` : claim.field;
}

/**
 * Files and folders the recipe lists itself (files, whole dirs with every folder in them, empty folders), as
 * discovered files with reason explicit and as plan folders, each guest path claimed once: two entries at one
 * path, an entry on the program, or one where the package keeps its own files are refused. Symlinks in dirs
 * are kept when they stay inside their folder (E_PATH_ESCAPE else).
 */
export async function explicitFiles(recipe: ResolvedRecipe): Promise<ExplicitFiles> {
  const found: ExplicitFiles = { files: [], dirs: [], hostToGuest: new Map(), claims: new Map() };
  for (const f of recipe.files) {
    pushExplicit(recipe, found, f.hostPath, f.guestPath, f.reason, {
      field: f.field,
      host: f.hostPath,
      replace: f.replace,
    });
  }
  for (const [i, d] of recipe.dirs.entries()) await addRecipeDir(recipe, found, d, i);
  return found;
}

/** What the recipe lists itself: files with reason explicit, folders, and which recipe entry claimed each path. */
export interface ExplicitFiles {
  files: DiscoveredFile[];
  dirs: PlanDir[];
  /** Guest path to the host file its bytes come from. */
  hostToGuest: Map<string, string>;
  claims: Map<string, Claim>;
}

/** Claim a guest path for a recipe entry; refuse the program's path, the package's own files and a second claim. */
export function claimPath(recipe: ResolvedRecipe, claims: Map<string, Claim>, path: string, c: Claim): void {
  if (path === recipe.program) {
    throw new UniproveError('E_CONFIG', {
      message: `${claimLabel(c)}: ${path} is where the program goes`,
      hint: 'To package another program, change "binary"; else give the file another guest path.',
      details: { field: c.field, source: recipe.source },
    });
  }
  const own = packageOwnPath(path);
  if (own) {
    throw new UniproveError('E_CONFIG', {
      message: `${claimLabel(c)}: ${path} is where the package keeps ${own}; the file would be overwritten`,
      hint: 'Give the file another guest path.',
      details: { field: c.field, source: recipe.source },
    });
  }
  const other = claims.get(path);
  if (other) {
    throw new UniproveError('E_CONFIG', {
      message: `${claimLabel(c)}: ${path} is also where ${claimLabel(other)} goes`,
      hint: 'Give each file its own guest path, or remove one of the two entries.',
      details: { field: c.field, other: other.field, source: recipe.source },
    });
  }
  claims.set(path, c);
}

export function pushExplicit(
  recipe: ResolvedRecipe,
  found: ExplicitFiles,
  host: string,
  guest: string,
  reason: string | undefined,
  c: Claim,
): void {
  const path = checkGuestPath(guest, host);
  claimPath(recipe, found.claims, path, c);
  found.hostToGuest.set(path, host);
  found.files.push({
    path,
    chain: [path],
    reasons: ['explicit'],
    parents: reason ? [reason] : [],
    isElf: false,
  });
}

export type RecipeDir = ResolvedRecipe['dirs'][number];

/** One entry of the recipe's `dirs`: an empty folder, or a host folder with every file, folder and inner link in it. */
export async function addRecipeDir(
  recipe: ResolvedRecipe,
  found: ExplicitFiles,
  d: RecipeDir,
  i: number,
): Promise<void> {
  // `why` names the recipe entry a folder comes from.
  const parents = [d.reason ?? `recipe dirs[${i}]: ${d.hostPath ?? 'an empty folder'}`];
  const folder = async (host: string | undefined, guest: string, mode: number | undefined) => {
    const path = checkGuestPath(guest, host ?? `${d.field}.guest`);
    if (path === '/') return; // the image root is there anyway
    const bits = mode ?? (await stat(host as string)).mode & 0o7777;
    found.dirs.push({ path, mode: bits, reasons: ['explicit'], parents });
  };
  if (d.hostPath === undefined) {
    await folder(undefined, d.guestPath, d.mode);
    return;
  }
  const hostTop = d.hostPath;
  const top = await realpath(hostTop);
  const guestTop = d.guestPath === '/' ? '' : d.guestPath;
  const walk = async (hostDir: string, guestDir: string): Promise<void> => {
    await folder(hostDir, guestDir || '/', undefined);
    for (const e of (await readdir(hostDir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const h = join(hostDir, e.name);
      const g = `${guestDir}/${e.name}`;
      const c: Claim = { field: d.field, host: h, replace: d.replace };
      if (e.isDirectory()) await walk(h, g);
      else if (e.isFile()) pushExplicit(recipe, found, h, g, d.reason, c);
      else if (e.isSymbolicLink())
        await addInnerLink(recipe, found, d, { hostDir, hostTop, top, guestTop }, h, g, c);
      else {
        throw notRegularFile(
          await stat(h),
          h,
          d.field,
          'A "dirs" folder may hold regular files, folders and links to files in it.',
        );
      }
    }
  };
  await walk(hostTop, guestTop);
}

/**
 * A symlink inside a recipe folder, kept as a link when it leads to a regular file in the folder. In the image a
 * link means what it means here only if it stays inside the folder; an absolute target or one that climbs out
 * would point at the guest's own /etc, or at nothing.
 */
export async function addInnerLink(
  recipe: ResolvedRecipe,
  found: ExplicitFiles,
  d: RecipeDir,
  where: { hostDir: string; hostTop: string; top: string; guestTop: string },
  h: string,
  g: string,
  c: Claim,
): Promise<void> {
  const inside = (host: string, root: string) => host === root || host.startsWith(`${root}/`);
  const target = await readlink(h);
  const real = await realpath(h).catch(() => undefined);
  if (
    target.startsWith('/') ||
    !inside(resolve(where.hostDir, target), where.hostTop) ||
    (real && !inside(real, where.top))
  ) {
    throw new UniproveError('E_PATH_ESCAPE', {
      message: `${d.field}: ${h} is a symlink to ${target}, outside the folder ${d.hostPath}`,
      hint: 'Make the link relative to a file inside the folder, or list the file itself under "files" (with the guest path the program opens).',
      details: { field: d.field, path: h, target, source: recipe.source },
    });
  }
  const info = real ? await stat(real) : undefined;
  if (!info?.isFile()) {
    throw new UniproveError(info ? 'E_NOT_REGULAR_FILE' : 'E_NOT_FOUND', {
      message: `${d.field}: ${h} is a symlink to ${target}, which ${info ? 'is not a regular file' : 'does not exist'}`,
      hint: 'Links inside a "dirs" folder must lead to regular files in it; remove the link or fix its target.',
      details: { field: d.field, path: h, target, source: recipe.source },
    });
  }
  const path = checkGuestPath(g, h);
  const to = `${where.guestTop}/${relative(where.top, real as string)}`;
  claimPath(recipe, found.claims, path, c);
  found.hostToGuest.set(to, real as string);
  found.files.push({
    path,
    chain: [path, to],
    reasons: ['explicit'],
    parents: d.reason ? [d.reason] : [],
    isElf: false,
  });
}

/** True when two host paths lead to one file (links followed). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  return Boolean(x && y && x.dev === y.dev && x.ino === y.ino);
}

/** What the package already holds at a path, for the error that refuses a recipe file there. */
export function describeEntry(entry: PlanEntry): string {
  const why = entry.reasons.join(', ');
  const parents = entry.parents.length ? `, for ${entry.parents.slice(0, 2).join(', ')}` : '';
  return `${entry.type === 'symlink' ? 'a link' : 'a file'} the package found itself (${why}${parents})`;
}

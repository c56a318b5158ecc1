/**
 * Locating a missing library the way the program's own loader would on the
 * host: its RPATH/RUNPATH (with $ORIGIN), LD_LIBRARY_PATH, ld.so.cache and the
 * default folders, through the ELF resolver. The host path it finds is also
 * where the library must go in the image, since packages keep host paths.
 */
import { parseElf } from '../elf/parse.js';
import { libraryResolverFor } from '../elf/resolve.js';
import type { Locate } from './locate.js';

export interface ProgramLocateOptions {
  /** The program's host path (inside `root`, when there is one). */
  binary: string;
  /** Resolve inside this tree instead of the host. */
  root?: string;
  /** Used for names the program's search does not find, and for non-library files. */
  fallback: Locate;
}

/** A Locate that asks the ELF resolver first, with the program as the requester. */
export async function createProgramLocate(options: ProgramLocateOptions): Promise<Locate> {
  const root = options.root ?? '/';
  const info = await parseElf(root === '/' ? options.binary : `${root}${options.binary}`).catch(
    () => undefined,
  );
  if (!info) return options.fallback;
  const resolveName = libraryResolverFor(options.binary, info, { root });
  return async (name, kind, context) => {
    if (kind === 'library' && !name.includes('/')) {
      const found = await resolveName(name);
      if (found) {
        return { hostPath: root === '/' ? found.path : `${root}${found.path}`, guestPath: found.path };
      }
    }
    return options.fallback(name, kind, context);
  };
}

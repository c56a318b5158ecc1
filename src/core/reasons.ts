/**
 * Why a file is in a closure, a package and its lock: one shape from discovery to `uniprove why`,
 * after vercel/nft's reasons map. Each stage adds what it knows (a symlink chain, a digest) to the
 * same three fields; nothing translates reasons from one stage's words to another's.
 */

/**
 * Why a file is there. The resolver and discovery give the first seven (`listed`: a file of a folder the
 * program listed and read part of, packaged whole on request); a package plan adds the links it makes
 * (`symlink`: a link on the way to a file; `symlink-target`: the file a link leads to).
 */
export type Reason =
  | 'explicit'
  | 'interp'
  | 'elf-needed'
  | 'dlopen'
  | 'runtime-file'
  | 'listed'
  | 'config-family'
  | 'symlink'
  | 'symlink-target';

/** A file and why it is there: the fields every stage writes and `why` reads. */
export interface FileReasons {
  /** Absolute guest path (the path the program uses). */
  path: string;
  reasons: Reason[];
  /**
   * What pulled it in: paths of files (the object whose DT_NEEDED named it, the program that opened
   * it), or a note that is no file (`family:gconv`, a recipe entry's reason).
   */
  parents: string[];
  /** Names that lead to this file (discovery: every symlink from `path` on, then the real file). */
  chain?: string[];
}

/** Add `reasons` and `parents` to `file`, each once, in the order first seen. */
export function addReasons(
  file: Pick<FileReasons, 'reasons' | 'parents'>,
  reasons: readonly Reason[],
  parents: readonly string[] = [],
): void {
  for (const r of reasons) if (!file.reasons.includes(r)) file.reasons.push(r);
  for (const p of parents) if (!file.parents.includes(p)) file.parents.push(p);
}

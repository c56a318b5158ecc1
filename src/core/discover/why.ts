/**
 * `uniprove why`: the chain of parents that pulled a file into a closure,
 * from a discover result or a package's lock file.
 */
import { basename } from 'node:path';
import { UniproveError } from '../errors.js';
import type { FileReasons } from '../reasons.js';

/** One step of an explanation: this file, and why it is there. */
export type WhyStep = Pick<FileReasons, 'path' | 'reasons'>;

export interface WhyResult {
  query: string;
  /** The entry the query matched. */
  path: string;
  /** Each way the file was pulled in, from a root (the program, an explicit file) down to the file. */
  chains: WhyStep[][];
}

function findEntry(entries: readonly FileReasons[], query: string): FileReasons | undefined {
  const exact = entries.find((e) => e.path === query || e.chain?.includes(query));
  if (exact) return exact;
  const byName = entries.filter(
    (e) => basename(e.path) === query || e.chain?.some((c) => basename(c) === query),
  );
  if (byName.length > 1) {
    throw new UniproveError('E_USAGE', {
      message: `"${query}" matches ${byName.length} files: ${byName.map((e) => e.path).join(', ')}`,
      hint: 'Give the full path of the one you mean.',
    });
  }
  return byName[0];
}

/** Every chain of parents from a root entry down to `query`; cycles are cut. */
export function explain(entries: readonly FileReasons[], query: string, maxChains = 10): WhyResult {
  const entry = findEntry(entries, query);
  if (!entry) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `${query} is not in this closure`,
      hint: 'Nothing pulled it in: it is not needed by the program as discovered. Check the name, or run discover with a probe that exercises the code path that loads it.',
    });
  }
  const byPath = new Map<string, FileReasons>();
  for (const e of entries) {
    byPath.set(e.path, e);
    for (const c of e.chain ?? []) if (!byPath.has(c)) byPath.set(c, e);
  }
  const chains: WhyStep[][] = [];
  const walk = (e: FileReasons, below: WhyStep[], seen: Set<string>) => {
    if (chains.length >= maxChains) return;
    const here = [{ path: e.path, reasons: e.reasons }, ...below];
    const parents = e.parents.filter((p) => !seen.has(p));
    const known = parents.map((p) => [p, byPath.get(p)] as const);
    if (known.length === 0) {
      chains.push(here);
      return;
    }
    for (const [p, parent] of known) {
      if (!parent) {
        // A parent that is not a file of the closure (a family config, a recipe note): the chain starts there.
        chains.push([{ path: p, reasons: [] }, ...here]);
        continue;
      }
      walk(parent, here, new Set([...seen, e.path]));
    }
  };
  walk(entry, [], new Set());
  // Shortest explanations first.
  chains.sort((a, b) => a.length - b.length);
  return { query, path: entry.path, chains };
}

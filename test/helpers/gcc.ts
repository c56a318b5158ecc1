/** Compile tiny C fixtures with the real gcc into a temp folder. */

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/** Compile `source` into `dir/name` with extra gcc flags; returns the output path. */
export async function compileC(
  dir: string,
  name: string,
  source: string,
  flags: string[] = [],
): Promise<string> {
  const src = join(dir, `${name}.c`);
  await writeFile(src, source);
  const outPath = join(dir, name);
  await execa('gcc', ['-O1', '-o', outPath, src, ...flags]);
  return outPath;
}

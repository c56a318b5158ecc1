/** How fast the closure of many programs resolves: every dynamic ELF file in /usr/bin, one call. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseElf, resolveClosure } from '../src/core/elf/index.js';

const folder = process.argv[2] ?? '/usr/bin';
const binaries: string[] = [];
for (const name of (await readdir(folder)).sort()) {
  const path = join(folder, name);
  const info = await parseElf(path).catch(() => undefined);
  if (info?.dynamic) binaries.push(path);
}
for (const [label, set] of [
  ['one program (/usr/bin/git)', ['/usr/bin/git']],
  [`${binaries.length} programs of ${folder}`, binaries],
] as const) {
  const start = performance.now();
  const result = await resolveClosure({ binaries: [...set] });
  const ms = performance.now() - start;
  console.log(
    `${label}: ${result.files.length} files, ${result.warnings.length} warnings, ${ms.toFixed(0)} ms`,
  );
}
console.log(`rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);

/**
 * Packaging speed: a cold `packageRecipe` on a recipe carrying >= 200 MB of files, against `cp -a` of the same
 * files and against hard-linking them (`cp -al`: what staging did before packages got their own copies, for
 * comparison only); then a rebuild with nothing changed, and one with one file changed (only it is copied).
 * Targets: at most 1.2x cp -a, and a no-change rebuild under 150 ms.
 * Run: node --import tsx bench/package.ts [MB]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { HashWorkers } from '../src/core/hash-workers.js';
import { packageRecipe } from '../src/core/package/index.js';

const totalMb = Number(process.argv[2] ?? 256);
const root = await mkdtemp('/var/tmp/uniprove-bench-package-');
try {
  const data = join(root, 'recipe', 'data');
  await mkdir(data, { recursive: true });
  const fileMb = 8;
  for (let i = 0; i < totalMb / fileMb; i++)
    await writeFile(join(data, `part-${i}.bin`), randomBytes(fileMb << 20));
  const recipeDir = join(root, 'recipe');
  await writeFile(
    join(recipeDir, 'recipe.json'),
    JSON.stringify({
      name: 'bench',
      binary: '/usr/bin/true',
      probe: { skip: true },
      dirs: [{ host: 'data', guest: '/data' }],
    }),
  );
  // Warm the page cache so both sides read from memory.
  execFileSync('cat', ['-'], { input: '' });
  execFileSync('sh', ['-c', `cat ${data}/* > /dev/null`]);

  const best = async (label: string, fn: () => Promise<void> | void, runs = 3) => {
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < runs; i++) {
      // What the last run wrote is flushed first, so no run pays for another's writeback.
      execFileSync('sync');
      const t = performance.now();
      await fn();
      min = Math.min(min, performance.now() - t);
    }
    console.log(`${label.padEnd(36)} ${min.toFixed(0).padStart(7)} ms`);
    return min;
  };

  let n = 0;
  const hardlinks = await best(`cp -al ${totalMb} MB (hard links)`, () => {
    execFileSync('cp', ['-al', data, join(root, `cpl-${n++}`)]);
  });
  const cp = await best(`cp -a ${totalMb} MB`, () => {
    execFileSync('cp', ['-a', data, join(root, `cp-${n++}`)]);
  });
  // The floor: the lock needs the sha256 of every byte; the same pool hashing the files and nothing else.
  const files = (await readdir(data)).map((f) => join(data, f));
  const floor = await best(`sha256 alone, ${Math.min(4, availableParallelism())} threads`, async () => {
    const pool = new HashWorkers();
    await Promise.all(files.map((f) => pool.hashFile(f)));
    await pool.close();
  });
  let m = 0;
  // Each run's time before staging starts (hashing) and in staging (the copies), to see which one grew.
  const split: string[] = [];
  const pkg = await best(`uniprove package ${totalMb} MB`, async () => {
    const t = performance.now();
    let staged = t;
    await packageRecipe({
      recipe: recipeDir,
      out: join(root, `pkg-${m++}`),
      cwd: root,
      onProgress: (e) => {
        if (e.step === 'stage' && e.kind === 'step-start') staged = performance.now();
      },
    });
    split.push(`${(staged - t).toFixed(0)} + ${(performance.now() - staged).toFixed(0)}`);
  });
  console.log(`  hashing + staging, each run (ms): ${split.join(', ')}`);
  const again = await best(
    'no-change rebuild',
    async () => {
      const r = await packageRecipe({ recipe: recipeDir, out: join(root, 'pkg-0'), cwd: root });
      if (r.changed) throw new Error('a rebuild with nothing changed did work');
    },
    5,
  );
  let k = 0;
  const one = await best('rebuild, one 8 MB file changed', async () => {
    await writeFile(join(data, 'part-0.bin'), randomBytes(fileMb << 20));
    const r = await packageRecipe({ recipe: recipeDir, out: join(root, 'pkg-0'), cwd: root });
    if (!r.changed) throw new Error(`a rebuild with a file changed did nothing (${k++})`);
  });
  console.log(
    `hard links (cp -al): ${hardlinks.toFixed(0)} ms; cp -a: ${cp.toFixed(0)} ms; package: ${pkg.toFixed(0)} ms`,
  );
  console.log(`rebuild with one 8 MB file changed: ${one.toFixed(0)} ms`);
  console.log(`ratio package / cp -a: ${(pkg / cp).toFixed(2)}x (target <= 1.2x)`);
  console.log(
    `ratio sha256 alone / cp -a: ${(floor / cp).toFixed(2)}x; packaging beyond hashing: ${(pkg - floor).toFixed(0)} ms (${availableParallelism()} cores)`,
  );
  console.log(`no-change rebuild: ${again.toFixed(0)} ms (target < 150 ms)`);
} finally {
  await rm(root, { recursive: true, force: true });
}

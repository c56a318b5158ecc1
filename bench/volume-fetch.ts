/**
 * Throughput of `volume fetch` against curl on the same files from the same
 * local server, hashing included on both sides (curl, then b2sum), and the time
 * to re-check a set that is already cached.
 *
 *   node --import tsx bench/volume-fetch.ts [total MiB, default 1024] [files, default 4] [jobs, default 4] [rounds, default 5]
 */

import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { digestOfFile } from '../src/core/volume/digest.js';
import { fetchParameterSet } from '../src/core/volume/fetch.js';
import { resolveParameterSet } from '../src/core/volume/spec.js';

const totalMiB = Number(process.argv[2] ?? 1024);
const count = Number(process.argv[3] ?? 4);
const jobs = Number(process.argv[4] ?? 4);
const perFile = Math.floor((totalMiB * 1024 * 1024) / count);
const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-'));
const mbps = (bytes: number, ms: number) => `${(bytes / 1024 / 1024 / (ms / 1000)).toFixed(0)} MiB/s`;

async function writeRandom(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  const chunk = Buffer.alloc(4 * 1024 * 1024);
  for (let left = size; left > 0; left -= chunk.length) {
    randomFillSync(chunk);
    if (!out.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

try {
  const src = join(dir, 'src');
  await execa('mkdir', ['-p', src]);
  const names = Array.from({ length: count }, (_, i) => `bench-${i}.params`);
  for (const name of names) await writeRandom(join(src, name), perFile);
  const files = [];
  for (const name of names) {
    files.push({
      name,
      digest: await digestOfFile(join(src, name), 'blake2b512-trunc128'),
      urls: ['http://x/'],
    });
  }
  // The server runs in its own process, as a real one would.
  const server = execa(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `import('./test/helpers/param-server.ts').then(async (m) => { const s = await m.startParamServer(${JSON.stringify(src)}); console.log(s.url); })`,
    ],
    { buffer: false },
  );
  server.catch(() => {});
  const url = await new Promise<string>((resolve) =>
    server.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())),
  );
  const set = resolveParameterSet(
    { name: 'bench', mountPath: '/p', files: files.map((f) => ({ ...f, urls: [`${url}${f.name}`] })) },
    'bench',
  );
  const bytes = perFile * count;
  console.log(`${count} files, ${(bytes / 1024 / 1024).toFixed(0)} MiB total, server ${url}`);

  // Rounds alternate curl + b2sum and uniprove on fresh folders, flushed to disk before each
  // timed part, so that write-back of one side does not land on the other; best and median of each.
  const rounds = Number(process.argv[5] ?? 5);
  const curlOnlyMs: number[] = [];
  const curlMs: number[] = [];
  const oursMs: number[] = [];
  const cacheDir = join(dir, 'cache');
  for (let round = 0; round < rounds; round++) {
    // curl (4 in parallel) then b2sum, the way an operator would check by hand.
    const curlDir = join(dir, 'curl');
    await execa('mkdir', ['-p', curlDir]);
    await execa('sync');
    let t = performance.now();
    await execa('curl', [
      '-sSf',
      '--parallel',
      '--parallel-max',
      '4',
      ...names.flatMap((n) => ['-o', join(curlDir, n), `${url}${n}`]),
    ]);
    curlOnlyMs.push(performance.now() - t);
    await execa(
      'b2sum',
      names.map((n) => join(curlDir, n)),
    );
    curlMs.push(performance.now() - t);
    await rm(curlDir, { recursive: true });
    await rm(cacheDir, { recursive: true, force: true });
    await execa('sync');
    t = performance.now();
    const result = await fetchParameterSet(set, { cacheDir, jobs });
    oursMs.push(performance.now() - t);
    if (result.bytesDownloaded !== bytes) throw new Error('did not download everything');
  }
  const best = (xs: number[]) => Math.min(...xs);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const curlOnly = median(curlOnlyMs);
  const curlTotal = median(curlMs);
  const ours = median(oursMs);

  let t = performance.now();
  await fetchParameterSet(set, { cacheDir });
  const quick = performance.now() - t;
  t = performance.now();
  await fetchParameterSet(set, { cacheDir, verify: 'full' });
  const full = performance.now() - t;
  server.kill();

  console.log(`medians of ${rounds} alternating rounds`);
  console.log(
    `curl --parallel 4             ${mbps(bytes, curlOnly).padStart(10)}  (${(curlOnly / 1000).toFixed(2)} s, no hashing)`,
  );
  console.log(
    `curl + b2sum                  ${mbps(bytes, curlTotal).padStart(10)}  (${(curlTotal / 1000).toFixed(2)} s)`,
  );
  console.log(
    `uniprove volume fetch -j ${jobs}    ${mbps(bytes, ours).padStart(10)}  (${(ours / 1000).toFixed(2)} s, hashed while downloading)`,
  );
  console.log(
    `ratio vs curl + b2sum         ${(curlTotal / ours).toFixed(2)}x median, ${(best(curlMs) / best(oursMs)).toFixed(2)}x best of ${rounds} (target >= 0.9x)`,
  );
  console.log(`ratio vs curl alone           ${(curlOnly / ours).toFixed(2)}x`);
  console.log(`re-check cached set (stamps)  ${quick.toFixed(1)} ms`);
  console.log(`re-check cached set (--verify, re-hash) ${(full / 1000).toFixed(2)} s, ${mbps(bytes, full)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** Packing a sparse raw disk for Compute Engine: GNU tar (sparse-aware) against the npm fallback. */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packImageTarball } from '../src/core/cloud/tarball.js';

const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-'));
try {
  const raw = join(dir, 'disk.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(1 << 30);
  await fh.write(Buffer.alloc(8 << 20, 7), 0, 8 << 20, 512 << 20); // 8 MiB of data in a 1 GiB disk
  await fh.close();
  for (const method of ['gnu-tar', 'js'] as const) {
    const r = await packImageTarball(raw, join(dir, `${method}.tar.gz`), { method });
    console.log(
      `${method.padEnd(8)} 1 GiB disk (8 MiB data): ${(r.durationMs / 1000).toFixed(2)} s, tarball ${r.bytes} bytes`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

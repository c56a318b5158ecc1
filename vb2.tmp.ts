import { hashFile } from './src/core/volume/digest.ts';
import { fetchParameterSet } from './src/core/volume/fetch.ts';
import { resolveParameterSet } from './src/core/volume/spec.ts';
import { rm } from 'node:fs/promises';
const url = process.argv[2]; const jobs = Number(process.argv[3] ?? 4);
const names = [0,1,2,3].map((i) => `bench-${i}.params`);
const files = [];
for (const name of names) files.push({ name, digest: await hashFile(`/tmp/vb/${name}`, 'blake2b512-trunc128'), urls: [`${url}${name}`] });
const set = resolveParameterSet({ name: 'bench', mountPath: '/p', files }, 'bench');
for (let i = 0; i < 3; i++) {
  await rm('/tmp/vb-cache', { recursive: true, force: true });
  const c0 = process.cpuUsage(); const t = performance.now();
  await fetchParameterSet(set, { cacheDir: '/tmp/vb-cache', jobs });
  const c = process.cpuUsage(c0);
  console.log(`j${jobs} wall ${((performance.now() - t)/1000).toFixed(2)} s, cpu user ${(c.user/1e6).toFixed(2)} sys ${(c.system/1e6).toFixed(2)}`);
}

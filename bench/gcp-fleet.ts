/**
 * A fleet of 20 inputs, 5 at once, against the local Compute Engine server
 * with Compute Engine's latencies scaled down 100x (insert 10 s, boot 20 s,
 * prove 60 s -> 100, 200, 600 ms), against one run alone: the fleet should
 * take about 4 x one run (20 / 5 rounds), within 1.2x of it.
 *
 * Each input is the real Compute Engine runOne (core/gcp/fleet/run.ts): one run
 * of the run lifecycle with the fleet's gce driver on a fresh Spot instance of
 * the image of its input's arguments (one per distinct argument list, imported
 * before the timing starts, as before: imports are not counted) (official clients: instances.insert, operation polls,
 * serial reads, instances.get, instances.delete), its own run record and
 * proving_report.csv line, driven by the fleet scheduler; polling intervals
 * are scaled down as the latencies are.
 *
 *   node --import tsx bench/gcp-fleet.ts [inputs=20] [parallel=5] [scale=100] [reps=3]
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGcpClients } from '../src/core/cloud/clients.js';
import { runFleet } from '../src/core/gcp/fleet/scheduler.js';
import { gcpImage } from '../src/core/image/gce.js';
import { GceServer } from '../test/helpers/gce-server.js';
import { against, TARGET } from '../test/helpers/gcp.js';
import { argsImages, argsTable, fleetServerConsole, serverFleetRunOne } from '../test/helpers/gcp-fleet.js';

const [inputs = 20, parallel = 5, scale = 100, reps = 3] = process.argv.slice(2).map(Number);
const latency = { insertMs: 10_000 / scale, bootMs: 20_000 / scale, proveMs: 60_000 / scale };
// Polling as uniprove does it on Compute Engine (operations from 1 s, console every 2 s), scaled alike.
const pollMs = Math.max(1, Math.round(1000 / scale));
const watchMs = Math.max(1, Math.round(2000 / scale));

const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-fleet-'));
const list = (n: number) =>
  Array.from({ length: n }, (_, index) => ({ index, args: ['prove', String(index)] }));
// Each input boots the image of its arguments (one per distinct argument list), as the fleet imports them.
const table = argsTable(list(inputs).map((i) => i.args));
const server = await GceServer.start({ latency, console: fleetServerConsole(table) });
const clients = await createGcpClients({
  project: TARGET.project,
  endpoints: { compute: server.url, storage: server.url },
  accessToken: server.token,
});
try {
  const raw = join(dir, 'prover.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(16 << 20);
  await fh.write(Buffer.alloc(4096, 1), 0, 4096, 0);
  await fh.close();
  const imported = await gcpImage({ ...against(server), clients, disk: { rawPath: raw, name: 'prover' } });
  if (imported.dryRun) throw new Error('dry run');
  const images = argsImages(server, imported.image, [...table.values()]);

  const timeFleet = async (n: number, p: number, id: string) => {
    const runsDir = join(dir, id);
    const shared = { clients, image: imported.image, images, fleetId: id, pollMs, watchMs, runsDir };
    const t0 = performance.now();
    const result = await runFleet({
      fleetId: id,
      inputs: list(n),
      parallel: p,
      zones: [TARGET.zone],
      ...serverFleetRunOne(shared),
    });
    const ms = performance.now() - t0;
    if (result.summary.succeeded !== n) throw new Error(`only ${result.summary.succeeded} of ${n} proofs`);
    if (server.inventory().length > 0) throw new Error(`left: ${server.inventory().join(', ')}`);
    return ms;
  };

  console.log(
    `latencies (1/${scale} of Compute Engine's): insert ${latency.insertMs} ms, boot ${latency.bootMs} ms, prove ${latency.proveMs} ms; polls ${pollMs} ms, console ${watchMs} ms`,
  );
  const ones: number[] = [];
  const fleets: number[] = [];
  for (let r = 0; r < reps; r++) {
    ones.push(await timeFleet(1, 1, `fbench-one-${r}`));
    fleets.push(await timeFleet(inputs, parallel, `fbench-fleet-${r}`));
  }
  const best = (xs: number[]) => Math.min(...xs);
  const one = best(ones);
  const fleet = best(fleets);
  const rounds = Math.ceil(inputs / parallel);
  const ratio = fleet / (rounds * one);
  console.log(
    `one run:            ${one.toFixed(0)} ms (best of ${reps}: ${ones.map((x) => x.toFixed(0)).join(', ')})`,
  );
  console.log(
    `fleet ${inputs} x ${parallel}:     ${fleet.toFixed(0)} ms (best of ${reps}: ${fleets.map((x) => x.toFixed(0)).join(', ')})`,
  );
  console.log(`${rounds} x one run:       ${(rounds * one).toFixed(0)} ms`);
  console.log(
    `fleet / (${rounds} x one):  ${ratio.toFixed(2)}x (target <= 1.2x) ${ratio <= 1.2 ? 'OK' : 'OVER'}`,
  );
} finally {
  await clients.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}

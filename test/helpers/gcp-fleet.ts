/**
 * A fleet against the local Compute Engine server over the real Compute Engine runOne (core/gcp/fleet-run.ts:
 * each attempt one run of the run lifecycle with the fleet's gce driver, its own record in runsDir), on an image
 * already imported and a package stood in for by its proof markers: what the CLI's fleet does after its one
 * build and import. The server's instances print a console proof of the input they were given.
 */
import { createHash } from 'node:crypto';
import type { GcpClients } from '../../src/core/gcp/clients.js';
import { fleetMachine, type GcpFleetSpec } from '../../src/core/gcp/fleet-plan.js';
import { fleetSweeper, fleetZoneDisks, gceFleetRunOne } from '../../src/core/gcp/fleet-run.js';
import type { OpsConfig } from '../../src/core/ops/config/schema.js';
import type { PreparedTarget } from '../../src/core/run/prepare.js';
import { TARGET } from './gcp.js';

export interface ServerFleetOptions {
  clients: GcpClients;
  image: string;
  fleetId: string;
  /** Where the attempts' run records and proving_report.csv go. */
  runsDir: string;
  /** Console and operation polling (ms). */
  watchMs?: number;
  pollMs?: number;
  /** The package's folder (recorded only); default runsDir. */
  packageDir?: string;
  /** Each input's proof is a file (/out/proof.bin, fleetFileProofBytes) brought back through the console. */
  fileProof?: { cacheDir: string };
  /** A volume image every instance mounts: its own disk each, or (readOnly) one disk per zone shared. */
  volume?: { image: string; readOnly: boolean };
}

/** What the server's instances print: the input's arguments (instance metadata uniprove-args) as a console proof. */
export function fleetServerConsole(_name: string, body: Record<string, unknown>): string {
  const items = (body.metadata as { items?: { key: string; value: string }[] } | undefined)?.items ?? [];
  const args = items.find((i) => i.key === 'uniprove-args')?.value ?? '[]';
  return `Nanos booting\nen1: assigned 10.0.0.2\nUNIPROVE-PROOF-BEGIN\nproof of ${args}\nUNIPROVE-PROOF-END\nexit status 0\n`;
}

/** The file proof of an input (its arguments, JSON), as the fleet's file-proof instances write it. */
export function fleetFileProofBytes(args: string): Buffer {
  const seed = createHash('sha256').update(args).digest();
  return Buffer.concat(Array.from({ length: 2048 }, (_, i) => Buffer.from([...seed, i & 255])));
}

/** What the server's instances print with a file proof: proof-out.c's console protocol (768 bytes a line). */
export function fleetFileProofConsole(_name: string, body: Record<string, unknown>): string {
  const items = (body.metadata as { items?: { key: string; value: string }[] } | undefined)?.items ?? [];
  const data = fleetFileProofBytes(items.find((i) => i.key === 'uniprove-args')?.value ?? '[]');
  let text = `Nanos booting\nen1: assigned 10.0.0.2\nUNIPROVE-FILE-PROOF-BEGIN bytes=${data.length} path=/out/proof.bin\n`;
  for (let i = 0; i < data.length; i += 768) text += `UPF:${data.subarray(i, i + 768).toString('base64')}\n`;
  const sha = createHash('sha256').update(data).digest('hex');
  return `${text}UNIPROVE-FILE-PROOF-END bytes=${data.length} sha256=${sha}\nexit status 0\n`;
}

/** The package a fleet shares, as the lifecycle sees it once prepared. */
export function stubPrepared(packageDir: string, fileProof = false): PreparedTarget {
  return {
    name: 'prover',
    packageDir,
    config: {} as OpsConfig,
    recipe: undefined,
    proof: fileProof
      ? { kind: 'file', path: '/out/proof.bin' }
      : { kind: 'console', begin: 'UNIPROVE-PROOF-BEGIN', end: 'UNIPROVE-PROOF-END' },
    volumes: [],
    bytes: 0,
  };
}

/** runOne, sweep and leaveZone of a fleet on the server: Spot n2-standard-2 instances of `image`. */
export function serverFleetRunOne(options: ServerFleetOptions) {
  const pollMs = options.pollMs ?? 2;
  const poll = { initialMs: pollMs, maxMs: pollMs * 5, timeoutMs: 60_000 };
  const spec: GcpFleetSpec & { image: { existing: string } } = {
    target: TARGET,
    fleetId: options.fleetId,
    bucket: 'uniprove-test-uniprove',
    image: { existing: options.image },
    machine: fleetMachine({ machineType: 'n2-standard-2' }),
    bootDisk: { type: 'pd-balanced' },
    network: 'default',
    labels: {},
    maxRunSeconds: 3600,
    inputs: 0,
    parallel: 0,
    zones: [TARGET.zone],
    ...(options.volume
      ? {
          volume: {
            source: { existing: options.volume.image },
            diskType: 'pd-balanced' as const,
            sizeGb: 10,
            readOnly: options.volume.readOnly,
          },
        }
      : {}),
  };
  const runOne = gceFleetRunOne({
    shared: {
      spec,
      clients: options.clients,
      poll,
      machineType: 'n2-standard-2',
      nanosVersion: '0.1.55',
      timeoutMs: 60_000,
      watch: { intervalMs: options.watchMs ?? 1, statusEvery: 2 },
      ...(options.fileProof
        ? { fileProof: { config: { Program: 'prover' }, programPath: '/bin/true' } }
        : {}),
      ...(options.volume?.readOnly
        ? { prepareZone: fleetZoneDisks({ target: TARGET, poll }, spec, options.clients, options.runsDir) }
        : {}),
    },
    prepared: stubPrepared(options.packageDir ?? options.runsDir, Boolean(options.fileProof)),
    runsDir: options.runsDir,
    ...(options.fileProof ? { consoleProof: options.fileProof } : {}),
  });
  const sweep = fleetSweeper({ clients: options.clients, target: TARGET, fleetId: options.fleetId, poll });
  return { runOne, sweep: () => sweep(), leaveZone: (zone: string) => sweep(zone) };
}

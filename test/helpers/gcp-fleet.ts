/**
 * A fleet against the local Compute Engine server over the real Compute Engine runOne (core/gcp/fleet/run.ts:
 * each attempt one run of the run lifecycle with the fleet's gce driver, its own record in runsDir), on an image
 * already imported and a package stood in for by its proof markers: what the CLI's fleet does after its builds
 * and imports. As on Compute Engine, an instance proves what its boot image holds: the server's instances print a
 * proof of the arguments of the image they boot (its label uniprove-args, looked up in a table of the test's
 * inputs), never of anything the instance body says besides which image it boots.
 */
import { createHash } from 'node:crypto';
import type { GcpClients } from '../../src/core/cloud/clients.js';
import {
  argsDigest,
  distinctArgs,
  fleetMachine,
  type GcpFleetImage,
  type GcpFleetSpec,
} from '../../src/core/cloud/fleet-plan.js';
import { LABEL } from '../../src/core/cloud/names.js';
import { fleetSweeper, fleetZoneDisks, gceFleetRunOne } from '../../src/core/gcp/fleet/run.js';
import type { OpsConfig } from '../../src/core/manifest/schema.js';
import type { PreparedTarget } from '../../src/core/package/target.js';
import type { GceServer } from './gce-server.js';
import { TARGET } from './gcp.js';

export interface ServerFleetOptions {
  clients: GcpClients;
  image: string;
  /** One image per distinct argument list (argsImages); each input boots the one of its arguments. */
  images?: GcpFleetImage[];
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

/** The test's table of argument lists by their digest (the images' label uniprove-args). */
export type ArgsTable = Map<string, string[]>;

/** A table of the given argument lists (more can be added: it is looked up when an instance boots). */
export function argsTable(lists: string[][] = []): ArgsTable {
  return new Map(lists.map((args) => [argsDigest(args), args]));
}

/**
 * The arguments an instance runs with, as Compute Engine would have it: those baked into the image its boot disk
 * is made from (disks[0].initializeParams.sourceImage, that image's label uniprove-args, the test's table).
 * Undefined when the image or its label or the table's entry is missing.
 */
export function bootedArgs(
  body: Record<string, unknown>,
  server: GceServer,
  table: ArgsTable,
): string[] | undefined {
  const disks = (body.disks as { initializeParams?: { sourceImage?: string } }[] | undefined) ?? [];
  const image = disks[0]?.initializeParams?.sourceImage?.replace(/^.*\//, '');
  const digest = image ? server.images.get(image)?.labels[LABEL.args] : undefined;
  return digest ? table.get(digest) : undefined;
}

function bootedArgsText(body: Record<string, unknown>, server: GceServer, table: ArgsTable): string {
  const args = bootedArgs(body, server, table);
  return args ? JSON.stringify(args) : '<the boot image holds no known arguments>';
}

/** The server's console: instances print a console proof of the arguments of the image they boot. */
export function fleetServerConsole(table: ArgsTable) {
  return (_name: string, body: Record<string, unknown>, server: GceServer): string =>
    `Nanos booting\nen1: assigned 10.0.0.2\nUNIPROVE-PROOF-BEGIN\nproof of ${bootedArgsText(body, server, table)}\nUNIPROVE-PROOF-END\nexit status 0\n`;
}

/**
 * Images of the given argument lists, as a fleet imports them (one per distinct list, labelled with its digest):
 * copies of an image imported already, made in the server's state.
 */
export function argsImages(server: GceServer, base: string, lists: string[][]): GcpFleetImage[] {
  const image = server.images.get(base);
  if (!image) throw new Error(`no image ${base} on the server`);
  return distinctArgs(lists).map((args) => {
    const name = `${base}-${argsDigest(args)}`.slice(0, 63);
    server.images.set(name, { ...image, name, labels: { ...image.labels, [LABEL.args]: argsDigest(args) } });
    return { args, source: { existing: name } };
  });
}

/** The file proof of an input (its arguments, JSON), as the fleet's file-proof instances write it. */
export function fleetFileProofBytes(args: string): Buffer {
  const seed = createHash('sha256').update(args).digest();
  return Buffer.concat(Array.from({ length: 2048 }, (_, i) => Buffer.from([...seed, i & 255])));
}

/**
 * What the server's instances print with a file proof: proof-out.c's console protocol (its exit line, then 768
 * bytes a line); `exitOf` gives the prover's exit status for the booted arguments (JSON; default 0).
 */
export const fleetFileProofConsole =
  (table: ArgsTable, exitOf: (args: string) => number = () => 0) =>
  (_name: string, body: Record<string, unknown>, server: GceServer): string => {
    const args = bootedArgsText(body, server, table);
    const data = fleetFileProofBytes(args);
    let text = `Nanos booting\nen1: assigned 10.0.0.2\n\nUNIPROVE-PROVER-EXIT status=${exitOf(args)}\n\nUNIPROVE-FILE-PROOF-BEGIN bytes=${data.length} path=/out/proof.bin\n`;
    for (let i = 0; i < data.length; i += 768)
      text += `UPF:${data.subarray(i, i + 768).toString('base64')}\n`;
    const sha = createHash('sha256').update(data).digest('hex');
    return `${text}UNIPROVE-FILE-PROOF-END bytes=${data.length} sha256=${sha}\nexit status 0\n`;
  };

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
    threadVars: [],
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
    ...(options.images ? { images: options.images } : {}),
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

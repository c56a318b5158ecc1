/**
 * What Compute Engine charges for the machines uniprove asks for, and what a
 * fleet will cost before it is launched (`--dry-run`, `--max-cost`).
 *
 * Compute Engine bills vCPUs and memory as separate SKUs, per second after a
 * first minute; a machine's hourly price is vCPUs x $/vCPU-hour + GB x
 * $/GB-hour. The table is dated and names its source: prices change (Spot
 * prices up to once a month), so an estimate is a guide, not a quote.
 */
import { UniproveError } from '../errors.js';

/** $/hour of one vCPU and of one GB of memory, on demand and as Spot. */
export interface FamilyPrice {
  onDemand: { vcpuHour: number; gbHour: number };
  spot: { vcpuHour: number; gbHour: number };
}

/** The price table: per machine family (predefined types) and per family's custom types. */
export interface PriceTable {
  /** When the figures were taken (ISO date). */
  date: string;
  region: string;
  source: string;
  /** How the figures were obtained, in words. */
  note: string;
  families: Record<string, FamilyPrice>;
  /** Custom machine types (FAMILY-custom-CPUS-MB); E2's custom types cost what its predefined ones do. */
  custom: Record<string, FamilyPrice>;
  /** Persistent disks, $/GB-month (a month is 730 hours in Google's billing). */
  diskGbMonth: Record<string, number>;
}

const p = (od: [number, number], spot: [number, number]): FamilyPrice => ({
  onDemand: { vcpuHour: od[0], gbHour: od[1] },
  spot: { vcpuHour: spot[0], gbHour: spot[1] },
});

/**
 * us-central1 (Iowa) list prices, Linux, no committed-use or sustained-use
 * discount. On-demand figures are those of Google's VM instance pricing page
 * as published through 2024 and 2025; Spot figures are the us-central1 Spot
 * prices of the same period, rounded; Spot prices move (60-91% below on
 * demand), so treat them as approximate. The figures could not be re-read
 * from the page when this table was written (2026-11-30): check them there.
 */
export const PRICE_TABLE: PriceTable = {
  date: '2026-11-30',
  region: 'us-central1',
  source: 'https://cloud.google.com/compute/vm-instance-pricing',
  note: 'us-central1 list prices (USD) as published on Google Cloud VM instance pricing in 2024-2025, not re-read on the date above; Spot prices are approximate and change up to once a month.',
  families: {
    e2: p([0.021811, 0.002923], [0.006543, 0.000877]),
    n1: p([0.031611, 0.004237], [0.006655, 0.000892]),
    n2: p([0.031611, 0.004237], [0.007654, 0.001026]),
    n2d: p([0.027502, 0.003686], [0.006655, 0.000892]),
    t2d: p([0.027502, 0.003686], [0.006655, 0.000892]),
    c2: p([0.03398, 0.00455], [0.008224, 0.001101]),
    c2d: p([0.029563, 0.003959], [0.007155, 0.000958]),
    c3: p([0.03465, 0.003938], [0.008385, 0.000953]),
  },
  custom: {
    e2: p([0.021811, 0.002923], [0.006543, 0.000877]),
    n1: p([0.033174, 0.004446], [0.006984, 0.000936]),
    n2: p([0.033191, 0.004449], [0.008037, 0.001077]),
    n2d: p([0.028877, 0.00387], [0.006988, 0.000937]),
  },
  diskGbMonth: {
    'pd-standard': 0.04,
    'pd-balanced': 0.1,
    'pd-ssd': 0.17,
    'hyperdisk-balanced': 0.08,
  },
};

/** vCPUs and memory of a machine type, and how it is billed. */
export interface MachineShape {
  family: string;
  vcpus: number;
  memoryGb: number;
  custom: boolean;
}

// GB of memory per vCPU of the predefined shapes; N1 differs from the newer families.
const PER_VCPU: Record<string, Record<string, number>> = {
  standard: { n1: 3.75, default: 4 },
  highmem: { n1: 6.5, default: 8 },
  highcpu: { n1: 0.9, c3: 2, default: 1 },
};

/** The shape of a machine type name (n2-standard-8, n2-custom-8-32768, custom-4-8192, e2-medium). */
export function machineShape(machineType: string): MachineShape {
  const name = machineType.replace(/^.*\//, '');
  const custom = /^(?:([a-z][a-z0-9]*)-)?custom-(\d+)-(\d+)(?:-ext)?$/.exec(name);
  if (custom) {
    return {
      family: custom[1] ?? 'n1',
      vcpus: Number(custom[2]),
      memoryGb: Number(custom[3]) / 1024,
      custom: true,
    };
  }
  const predefined = /^([a-z][a-z0-9]*)-(standard|highmem|highcpu)-(\d+)$/.exec(name);
  if (predefined) {
    const [, family, kind, n] = predefined as unknown as [string, string, string, string];
    const perVcpu = PER_VCPU[kind]!;
    const vcpus = Number(n);
    return { family, vcpus, memoryGb: vcpus * (perVcpu[family] ?? perVcpu.default!), custom: false };
  }
  // E2's shared-core types: billed as fractions of a vCPU.
  const shared: Record<string, [number, number]> = {
    'e2-micro': [0.25, 1],
    'e2-small': [0.5, 2],
    'e2-medium': [1, 4],
  };
  const s = shared[name];
  if (s) return { family: 'e2', vcpus: s[0], memoryGb: s[1], custom: false };
  throw new UniproveError('E_USAGE', {
    message: `machine type ${name} has no known shape, so its price cannot be estimated`,
    hint: 'Use a predefined type (FAMILY-standard|highmem|highcpu-N) or a custom one (--cpus and --memory).',
  });
}

/** $/hour of one machine of this shape, or undefined when its family is not in the table. */
export function hourlyPrice(
  shape: MachineShape,
  spot: boolean,
  table: PriceTable = PRICE_TABLE,
): number | undefined {
  const family = (shape.custom ? table.custom : table.families)[shape.family];
  if (!family) return undefined;
  const rate = spot ? family.spot : family.onDemand;
  return shape.vcpus * rate.vcpuHour + shape.memoryGb * rate.gbHour;
}

/** What a fleet is expected to use. */
export interface FleetCostSpec {
  /** The machine type name (or URL) each instance gets. */
  machineType: string;
  spot: boolean;
  /** Inputs (one instance each, retries aside). */
  inputs: number;
  /** How long one input keeps its instance (boot, prove, console drain), in seconds. */
  secondsPerInput: number;
  /** Extra instances expected from preemptions, as a fraction of the inputs (default: 0.1 for Spot, 0 otherwise). */
  retryFraction?: number;
  /** Disks each instance holds while it runs (boot and volume disks). */
  disks?: { type: string; sizeGb: number }[];
  /** GPUs are not in the table: the estimate says so. */
  gpu?: { type: string; count: number };
}

/** A fleet's estimated cost, with the figures it was computed from. */
export interface FleetCostEstimate {
  /** Dollars, or null when the machine's family is not in the table. */
  usd: number | null;
  instances: number;
  instanceHours: number;
  vcpuHours: number;
  gbHours: number;
  machine: MachineShape & { spot: boolean; usdPerHour: number | null };
  diskUsd: number;
  /** What the estimate leaves out or guesses. */
  warnings: string[];
  prices: { date: string; region: string; source: string };
}

/** Round dollars to the cent, up: an estimate should not undersell. */
const cents = (usd: number) => Math.ceil(usd * 100 - 1e-9) / 100;

/**
 * The estimated cost of a fleet: instances x time each x the machine's hourly
 * price, plus its disks for that time. Each instance is billed a minute at
 * least, as Compute Engine does.
 */
export function estimateFleetCost(spec: FleetCostSpec, table: PriceTable = PRICE_TABLE): FleetCostEstimate {
  if (!(spec.inputs >= 0) || !(spec.secondsPerInput > 0)) {
    throw new UniproveError('E_USAGE', {
      message: `cannot estimate a fleet of ${spec.inputs} inputs of ${spec.secondsPerInput} s each`,
      hint: 'Give a positive run time per input (the recipe timeout, or --expected-seconds).',
    });
  }
  const shape = machineShape(spec.machineType);
  const usdPerHour = hourlyPrice(shape, spec.spot, table);
  const retryFraction = spec.retryFraction ?? (spec.spot ? 0.1 : 0);
  const instances = Math.ceil(spec.inputs * (1 + retryFraction));
  const hoursEach = Math.max(60, spec.secondsPerInput) / 3600;
  const instanceHours = instances * hoursEach;
  const warnings: string[] = [];
  if (usdPerHour === undefined) {
    warnings.push(
      `no price for the ${shape.family}${shape.custom ? ' custom' : ''} family in the table (${Object.keys(shape.custom ? table.custom : table.families).join(', ')})`,
    );
  }
  let diskUsd = 0;
  for (const disk of spec.disks ?? []) {
    const perMonth = table.diskGbMonth[disk.type];
    if (perMonth === undefined) warnings.push(`no price for disk type ${disk.type}`);
    else diskUsd += (perMonth / 730) * disk.sizeGb * instanceHours;
  }
  if (spec.gpu) warnings.push(`GPUs (${spec.gpu.count} x ${spec.gpu.type}) are not in the price table`);
  if (spec.spot) warnings.push('Spot prices are approximate and change up to once a month');
  if (retryFraction > 0) {
    warnings.push(`${Math.round(retryFraction * 100)}% more instances are counted for preempted inputs`);
  }
  return {
    usd: usdPerHour === undefined ? null : cents(usdPerHour * instanceHours + diskUsd),
    instances,
    instanceHours,
    vcpuHours: instanceHours * shape.vcpus,
    gbHours: instanceHours * shape.memoryGb,
    machine: { ...shape, spot: spec.spot, usdPerHour: usdPerHour ?? null },
    diskUsd,
    warnings,
    prices: { date: table.date, region: table.region, source: table.source },
  };
}

/** Refuse, before anything is launched, a fleet whose estimate exceeds `--max-cost USD` (or cannot be estimated). */
export function checkMaxCost(estimate: FleetCostEstimate, maxUsd: number | undefined): void {
  if (maxUsd === undefined) return;
  if (estimate.usd === null) {
    throw new UniproveError('E_GCP_MAX_COST', {
      message: `--max-cost ${maxUsd} cannot be checked: ${estimate.warnings[0] ?? 'the machine has no price'}`,
      hint: 'Pick a machine family the price table knows (see `--dry-run`), or leave out --max-cost.',
      details: { maxUsd, estimate },
    });
  }
  if (estimate.usd > maxUsd) {
    throw new UniproveError('E_GCP_MAX_COST', {
      message: `the fleet's estimated cost, $${estimate.usd.toFixed(2)} (${estimate.instances} instances, ${estimate.instanceHours.toFixed(2)} instance-hours of ${estimate.machine.family}${estimate.machine.spot ? ' Spot' : ''}), exceeds --max-cost ${maxUsd}`,
      hint: 'Raise --max-cost, run fewer inputs, use Spot (the default for fleets) or a smaller machine; `--dry-run` shows the estimate.',
      details: { maxUsd, estimate },
    });
  }
}

/** The cost of what a fleet used: instance-seconds of the machine, billed a minute at least each. */
export function costOfUsage(
  usage: { instanceSeconds: number[]; machineType: string; spot: boolean },
  table: PriceTable = PRICE_TABLE,
): { usd: number | null; instanceHours: number; vcpuHours: number } {
  const shape = machineShape(usage.machineType);
  const perHour = hourlyPrice(shape, usage.spot, table);
  const billedHours = usage.instanceSeconds.reduce((sum, s) => sum + Math.max(60, s), 0) / 3600;
  const instanceHours = usage.instanceSeconds.reduce((sum, s) => sum + s, 0) / 3600;
  return {
    usd: perHour === undefined ? null : cents(perHour * billedHours),
    instanceHours,
    vcpuHours: instanceHours * shape.vcpus,
  };
}

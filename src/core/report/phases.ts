/** The phases a run's time is split into, and the cost of machine time: what every figure of a report shares. */
import { hourlyPrice, machineShape } from '../cloud/prices.js';
import type { RunRecord } from '../record/record.js';

/** The phases a run's time is split into, in the order they happen. */
export const PHASES = ['package', 'image', 'insert', 'boot', 'prover', 'bootProver', 'proofsBack'] as const;
export type Phase = (typeof PHASES)[number];

/** How each phase is named in the report and where its figure comes from. */
export const PHASE_SOURCES: Record<Phase, { label: string; source: string }> = {
  package: {
    label: 'package & check',
    source:
      'derived: local, timings.firstConsoleLineMs − timings.bootMs − timings.imageBuildMs; Compute Engine, timings.totalMs − imageBuildMs − gce.durationMs (setup + run + cleanup). It is the checks and packaging before the machine starts (no record times packaging alone)',
  },
  image: { label: 'image', source: 'timings.imageBuildMs (ops build, or the cached image copied)' },
  insert: { label: 'instance insert', source: 'gce.durationMs.setup (Compute Engine runs only)' },
  boot: { label: 'boot', source: 'timings.bootMs (machine start to the first console line)' },
  prover: { label: 'prover', source: 'timings.proverMs (first console line to the machine end)' },
  bootProver: {
    label: 'boot + prover',
    source:
      'gce.durationMs.run, where the record does not tell boot from prover (fleet attempts: no timings.bootMs); null where it does',
  },
  proofsBack: {
    label: 'proofs back & cleanup',
    source:
      'local: derived, timings.totalMs − timings.firstConsoleLineMs − timings.proverMs (proofs collected, machine destroyed, record closed); Compute Engine: gce.durationMs.cleanup',
  },
};

export type PhaseMs = Record<Phase, number | null>;

export const round = (n: number, digits = 6) => Math.round(n * 10 ** digits) / 10 ** digits;
const nonNegative = (n: number) => (n < 0 && n > -5 ? 0 : n < 0 ? null : Math.round(n));

/** Each phase of a run in ms, from what its record holds; null where it holds no figure. */
export function runPhases(record: RunRecord): PhaseMs {
  const t = record.timings;
  const d = record.gce?.durationMs;
  const split = t.bootMs !== undefined && t.proverMs !== undefined;
  const phases: PhaseMs = {
    package: null,
    image: t.imageBuildMs ?? (record.fleet ? 0 : null),
    insert: record.via === 'gce' ? (d?.setup ?? null) : 0,
    boot: t.bootMs ?? null,
    prover: t.proverMs ?? null,
    bootProver: !split && d ? d.run : null,
    proofsBack: null,
  };
  if (record.via === 'gce') {
    phases.proofsBack = d?.cleanup ?? null;
    if (d && t.totalMs !== undefined) {
      phases.package = nonNegative(t.totalMs - (t.imageBuildMs ?? 0) - d.setup - d.run - d.cleanup);
    }
    return phases;
  }
  if (t.firstConsoleLineMs !== undefined && t.bootMs !== undefined) {
    phases.package = nonNegative(t.firstConsoleLineMs - t.bootMs - (t.imageBuildMs ?? 0));
  }
  if (t.totalMs !== undefined && t.firstConsoleLineMs !== undefined && t.proverMs !== undefined) {
    phases.proofsBack = nonNegative(t.totalMs - t.firstConsoleLineMs - t.proverMs);
  }
  return phases;
}

/** The phases a run holds no figure for (boot and prover count as told when boot + prover is, and back). */
export function missingPhases(phases: PhaseMs): Phase[] {
  return PHASES.filter((p) => {
    if (p === 'bootProver')
      return phases.bootProver === null && (phases.boot === null || phases.prover === null);
    if (p === 'boot' || p === 'prover') return phases[p] === null && phases.bootProver === null;
    return phases[p] === null;
  });
}

/** $ for `seconds` of a machine, billed a minute at least; null when its family is not in the price table. */
export function machineCost(machineType: string, spot: boolean, seconds: number): number | null {
  const perHour = hourlyPrice(machineShape(machineType), spot);
  return perHour === undefined ? null : round((perHour * Math.max(60, seconds)) / 3600);
}

/** Phases summed over runs: a phase none of them holds stays null. */
export function sumPhases(list: PhaseMs[]): PhaseMs {
  const sum = Object.fromEntries(PHASES.map((p) => [p, null])) as PhaseMs;
  for (const phases of list) {
    for (const p of PHASES) {
      const v = phases[p];
      if (v !== null) sum[p] = (sum[p] ?? 0) + v;
    }
  }
  return sum;
}

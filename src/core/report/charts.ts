/**
 * The report's charts as Vega-Lite specs over its figures, rendered to SVG when the report is made: Vega-Lite
 * compiles each to Vega, and Vega renders it headless (no browser, no canvas, no network). Vega is loaded only
 * here and only when a chart is drawn, so no other command pays for it at start-up.
 */
import type { TopLevelSpec } from 'vega-lite';
import { UniproveError } from '../errors.js';
import type { FleetFigure, ReportFigures } from './figures.js';
import { PHASE_SOURCES, PHASES } from './phases.js';

/** The charts a report draws, in the order it shows them. */
export const CHARTS = ['runs', 'fleet', 'time', 'cost'] as const;
export type ChartName = (typeof CHARTS)[number];

/** Links in the charts point at records relative to the report: `link` turns a runs-folder path into one. */
export type LinkOf = (runsDirPath: string) => string;

const OUTCOME_COLORS: Record<string, string> = {
  succeeded: '#2e7d32',
  failed: '#c62828',
  error: '#ef6c00',
  timeout: '#6a1b9a',
  unknown: '#757575',
  interrupted: '#8d6e63',
  abandoned: '#9e9e9e',
  running: '#1565c0',
};

const PHASE_COLORS = ['#90a4ae', '#5c6bc0', '#26a69a', '#ffa726', '#ef5350', '#ab47bc', '#8d6e63'];

const CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
} as const;

const secs = (ms: number | null) => (ms === null ? null : Math.round(ms) / 1000);

/** Proof time per run by prover, coloured by outcome, each point linked to its record. */
export function runsChart(figures: ReportFigures, link: LinkOf): TopLevelSpec {
  const values = figures.runs.map((r) => {
    const measured =
      r.phasesMs.prover !== null
        ? { seconds: secs(r.phasesMs.prover), measure: 'prover' }
        : r.phasesMs.bootProver !== null
          ? { seconds: secs(r.phasesMs.bootProver), measure: 'boot + prover' }
          : { seconds: secs(r.totalMs), measure: 'whole run (no prover time)' };
    return {
      id: r.id,
      prover: r.prover,
      outcome: r.outcome,
      startedAt: r.startedAt,
      via: r.via,
      error: r.error?.code ?? '',
      link: link(r.record),
      ...measured,
    };
  });
  const outcomes = [...new Set(values.map((v) => v.outcome))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Runs over time', subtitle: 'proof time per run, by prover; colour: outcome' },
    config: CONFIG,
    data: { values },
    facet: { row: { field: 'prover', type: 'nominal', title: null, header: { labelFontWeight: 'bold' } } },
    spec: {
      width: 640,
      height: 120,
      mark: { type: 'point', filled: true, size: 90, opacity: 0.85 },
      encoding: {
        x: {
          field: 'startedAt',
          type: 'temporal',
          title: 'started (UTC)',
          scale: { type: 'utc' },
          axis: { labelOverlap: true },
        },
        y: { field: 'seconds', type: 'quantitative', title: 'seconds', scale: { zero: true } },
        color: {
          field: 'outcome',
          type: 'nominal',
          scale: { domain: outcomes, range: outcomes.map((o) => OUTCOME_COLORS[o] ?? '#000') },
        },
        shape: { field: 'measure', type: 'nominal', title: 'time of' },
        href: { field: 'link' },
        tooltip: [
          { field: 'id' },
          { field: 'outcome' },
          { field: 'seconds', title: 'seconds' },
          { field: 'measure' },
          { field: 'error' },
        ],
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** A fleet's lanes: one per input, its attempts' stretches on seconds since the first instance was asked for. */
export function fleetChart(fleet: FleetFigure, link: LinkOf): TopLevelSpec {
  const t0 = Date.parse(fleet.scheduledAt);
  const at = (iso: string) => (Date.parse(iso) - t0) / 1000;
  const laneOf = (input: number) => {
    const lane = fleet.lanes.find((l) => l.input === input);
    return `#${input} ${lane?.args.join(' ') ?? ''}`.slice(0, 40);
  };
  const bars = fleet.lanes.flatMap((lane) =>
    lane.attempts.flatMap((a) => {
      const common = { lane: laneOf(lane.input), attempt: a.attempt, zone: a.zone, ended: a.kind };
      const href = a.record ? link(a.record) : '';
      if (a.segments.length === 0) {
        return [{ ...common, phase: 'insert refused', start: at(a.start), end: at(a.end), link: href }];
      }
      return a.segments.map((s) => ({
        ...common,
        phase: s.phase === 'attempt' ? `${a.kind} (phases not recorded)` : s.phase,
        start: at(s.start),
        end: at(s.end),
        link: href,
      }));
    }),
  );
  const events = fleet.events.map((e) => ({
    lane: laneOf(e.input),
    kind: e.kind,
    at: at(e.at),
    detail: e.detail,
  }));
  const phases = ['insert', 'boot', 'prove', 'delete', 'insert refused'];
  const other = [...new Set(bars.map((b) => b.phase))].filter((p) => !phases.includes(p));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Fleet ${fleet.id}`,
      subtitle: `${fleet.inputs} inputs, ${fleet.succeeded} proved, ${fleet.retried} retried · ${fleet.machineType}${fleet.spot ? ' Spot' : ''} · zones ${fleet.zones.used.join(', ')}`,
    },
    config: CONFIG,
    width: 640,
    height: { step: 22 },
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar', cornerRadius: 2, height: { band: 0.7 } },
        encoding: {
          y: { field: 'lane', type: 'nominal', title: 'input', sort: null },
          x: {
            field: 'start',
            type: 'quantitative',
            title: 'seconds since the first instance was asked for',
          },
          x2: { field: 'end' },
          color: {
            field: 'phase',
            type: 'nominal',
            scale: {
              domain: [...phases, ...other],
              range: ['#90a4ae', '#ffa726', '#43a047', '#5c6bc0', '#e0e0e0', '#e53935', '#6d4c41'],
            },
          },
          href: { field: 'link' },
          tooltip: [
            { field: 'lane' },
            { field: 'phase' },
            { field: 'attempt' },
            { field: 'zone' },
            { field: 'ended' },
          ],
        },
      },
      {
        data: { values: events },
        mark: { type: 'point', filled: true, size: 110, color: '#212121', yOffset: -8 },
        encoding: {
          y: { field: 'lane', type: 'nominal', sort: null },
          x: { field: 'at', type: 'quantitative' },
          shape: {
            field: 'kind',
            type: 'nominal',
            title: 'event',
            scale: {
              domain: ['preemption', 'retry', 'zone-move'],
              range: ['cross', 'triangle-right', 'diamond'],
            },
          },
          tooltip: [{ field: 'kind' }, { field: 'detail' }],
        },
      },
    ],
    resolve: { scale: { color: 'independent', shape: 'independent' } },
  };
}

/** Where the time goes: each run's phases stacked, and each fleet's attempts' phases summed. */
export function timeChart(figures: ReportFigures): TopLevelSpec {
  const rows: { row: string; phase: string; order: number; seconds: number }[] = [];
  const push = (row: string, phasesMs: Record<string, number | null>, extra: [string, number][] = []) => {
    for (const [i, p] of PHASES.entries()) {
      const v = phasesMs[p];
      if (v !== null && v !== undefined && v > 0)
        rows.push({ row, phase: PHASE_SOURCES[p].label, order: i + 1, seconds: v / 1000 });
    }
    for (const [phase, ms] of extra) rows.push({ row, phase, order: 0, seconds: ms / 1000 });
  };
  for (const r of figures.runs.filter((x) => !x.fleet)) push(`${r.prover} · ${r.id}`, r.phasesMs);
  for (const f of figures.fleets) {
    push(`fleet ${f.id} (Σ ${f.lanes.reduce((n, l) => n + l.attempts.length, 0)} attempts)`, f.phasesMs, [
      ['fleet setup (package, images)', f.setupMs],
    ]);
  }
  const domain = ['fleet setup (package, images)', ...PHASES.map((p) => PHASE_SOURCES[p].label)];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Where the time goes', subtitle: 'per run; per fleet summed over its attempts' },
    config: CONFIG,
    data: { values: rows },
    width: 560,
    height: { step: 22 },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'row', type: 'nominal', title: null, sort: null, axis: { labelLimit: 320 } },
      x: { field: 'seconds', type: 'quantitative', stack: 'zero', title: 'seconds' },
      color: {
        field: 'phase',
        type: 'nominal',
        title: 'phase',
        scale: { domain, range: ['#bdbdbd', ...PHASE_COLORS] },
      },
      order: { field: 'order', type: 'quantitative' },
      tooltip: [{ field: 'row' }, { field: 'phase' }, { field: 'seconds', format: '.3f' }],
    },
  };
}

/** Cost per fleet and per proof (and what preempted attempts cost), beside verify's CPU time and peak memory. */
export function costChart(figures: ReportFigures): TopLevelSpec {
  const usd: { item: string; measure: string; usd: number }[] = [];
  for (const f of figures.fleets) {
    const item = `fleet ${f.id}`;
    if (f.cost.estimatedUsd !== null)
      usd.push({ item, measure: 'fleet (estimated)', usd: f.cost.estimatedUsd });
    if (f.cost.perProofUsd !== null) usd.push({ item, measure: 'per proof', usd: f.cost.perProofUsd });
    if (f.cost.preemptedUsd) usd.push({ item, measure: 'preempted attempts', usd: f.cost.preemptedUsd });
  }
  for (const r of figures.runs.filter((x) => !x.fleet && x.cost.estimatedUsd !== null)) {
    usd.push({ item: `${r.prover} · ${r.id}`, measure: 'per proof', usd: r.cost.estimatedUsd as number });
  }
  const cpu = figures.verify.map((v) => ({
    item: v.provers.join(', '),
    measure: 'CPU seconds',
    value: v.cpuSeconds,
  }));
  const memory = figures.verify.map((v) => ({
    item: v.provers.join(', '),
    measure: 'peak memory (MiB)',
    value: v.peakMemoryMiB,
  }));
  const bar = (title: string, values: object[], x: object): object => ({
    title,
    data: { values },
    width: 200,
    height: { step: 20 },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'item', type: 'nominal', title: null, axis: { labelLimit: 260 } },
      yOffset: { field: 'measure' },
      x,
      color: { field: 'measure', type: 'nominal', title: null },
      tooltip: [
        { field: 'item' },
        { field: 'measure' },
        { field: 'usd' in (values[0] ?? {}) ? 'usd' : 'value' },
      ],
    },
  });
  const parts = [
    ...(usd.length
      ? [
          bar('Cost (USD, price table)', usd, {
            field: 'usd',
            type: 'quantitative',
            title: 'USD',
            axis: { format: '$.4f' },
          }),
        ]
      : []),
    ...(cpu.length
      ? [
          bar('CPU time (verify)', cpu, { field: 'value', type: 'quantitative', title: 'CPU seconds' }),
          bar('Peak memory (verify)', memory, { field: 'value', type: 'quantitative', title: 'MiB' }),
        ]
      : []),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Cost',
      subtitle: `estimates from the price table of ${figures.prices.date}; nothing billed is recorded`,
    },
    config: CONFIG,
    hconcat: parts,
    resolve: { scale: { color: 'independent' } },
  } as TopLevelSpec;
}

/** Why a chart has nothing to draw, or undefined when it has. */
export function emptyReason(name: ChartName, figures: ReportFigures): string | undefined {
  if (name === 'runs' && figures.runs.length === 0) return 'no run records';
  if (name === 'fleet' && figures.fleets.length === 0) return 'no fleet (runs/<fleet-id>/fleet.json)';
  if (name === 'time' && figures.runs.length === 0) return 'no run records';
  if (
    name === 'cost' &&
    figures.fleets.length === 0 &&
    figures.verify.length === 0 &&
    !figures.runs.some((r) => r.cost.estimatedUsd !== null)
  )
    return 'no Compute Engine run and no verify figures';
  return undefined;
}

/** The spec of one chart (for the fleet chart, the fleet `fleetId`, else the newest). */
export function chartSpec(
  name: ChartName,
  figures: ReportFigures,
  link: LinkOf,
  fleetId?: string,
): TopLevelSpec {
  const empty = emptyReason(name, figures);
  if (empty) {
    throw new UniproveError('E_USAGE', {
      message: `--chart ${name} has nothing to draw: the records selected hold ${empty}`,
      hint: 'Pick another --chart, or widen --since, --prover, --fleet; `uniprove report --json` shows what the records hold.',
    });
  }
  switch (name) {
    case 'runs':
      return runsChart(figures, link);
    case 'fleet': {
      const fleet = figures.fleets.find((f) => f.id === fleetId) ?? figures.fleets.at(-1);
      return fleetChart(fleet as FleetFigure, link);
    }
    case 'time':
      return timeChart(figures);
    case 'cost':
      return costChart(figures);
  }
}

/** Render a Vega-Lite spec to an SVG document with Vega, headless; Vega is imported now, not at start-up. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * The report as one self-contained HTML page: the charts inlined as SVG, the tables beside them, its style
 * inlined, no script and nothing fetched, so it opens offline and as a file attached to a ticket. Links to the
 * records are relative to the page.
 */
import type { ChartName, LinkOf } from './charts.js';
import type { FailureFigure, FleetFigure, ReportFigures, RunFigure, VerifyFigure } from './figures.js';
import { PHASE_SOURCES, PHASES, type Phase } from './phases.js';

/** The charts drawn, as SVG text, keyed by chart (the fleet chart once per fleet). */
export interface RenderedCharts {
  runs?: string;
  fleets: { id: string; svg: string }[];
  time?: string;
  cost?: string;
  /** Why a chart was not drawn. */
  empty: Partial<Record<ChartName, string>>;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
const esc = (text: unknown) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
const secs = (ms: number | null) =>
  ms === null ? '<span class="na">not recorded</span>' : (ms / 1000).toFixed(2);
const usd = (n: number | null) => (n === null ? '<span class="na">not recorded</span>' : `$${n.toFixed(4)}`);

const STYLE = `
body{font:14px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;color:#212121;background:#fafafa}
header{background:#263238;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#cfd8dc}main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;margin:18px 0;padding:14px 18px}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0 0}.card{background:#37474f;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px;color:#fff}.card span{color:#cfd8dc;font-size:12px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:13px}th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}.na{color:#9e9e9e;font-style:italic}
.chart{overflow-x:auto}.chart svg{max-width:100%;height:auto}.how{color:#546e7a;font-size:13px}
.sev-error{color:#c62828;font-weight:bold}.sev-warning{color:#ef6c00;font-weight:bold}.fix{background:#e8f5e9;padding:2px 6px;border-radius:3px}
code{background:#eceff1;padding:0 3px;border-radius:3px;font-size:12px}
`;

/** Strip the XML prolog Vega puts before an SVG: the SVG element is inlined as it is. */
const inline = (svg: string) => `<div class="chart">${svg.replace(/^<\?xml[^>]*>\s*/, '')}</div>`;

function header(f: ReportFigures, generatedAt: string): string {
  const t = f.totals;
  const filter = Object.entries(f.filter)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `--${k} ${esc(v)}`)
    .join(' ');
  const card = (value: unknown, label: string) =>
    `<div class="card"><b>${esc(value)}</b><span>${label}</span></div>`;
  return `<header><h1>uniprove report</h1><p>${esc(f.runsDir)} · made ${esc(generatedAt)}${filter ? ` · ${filter}` : ''}</p>
<div class="cards">${card(t.runs, 'runs')}${card(t.succeeded, 'succeeded')}${card(t.notSucceeded, 'did not succeed')}${card(t.fleets, 'fleets')}${card(t.proofs, 'proof files')}</div></header>`;
}

function failureRows(failures: FailureFigure[], link: LinkOf, recovered: number): string {
  const more = recovered
    ? `<p class="how">${recovered} fleet attempts that did not succeed (an insert a zone refused, a preempted instance) were retried to a proof: they are on the fleet timeline below.</p>`
    : '';
  if (failures.length === 0) return `<p>Every run selected ended well.</p>${more}`;
  const rows = failures.map((x) => {
    const findings = x.findings.length
      ? x.findings
          .map(
            (g) =>
              `<div><span class="sev-${esc(g.severity)}">${esc(g.severity)}</span> <b>${esc(g.kind)}</b> ${esc(g.name)}: ${esc(g.message)}<br><span class="fix">fix: ${esc(g.fix)}</span></div>`,
          )
          .join('')
      : '<span class="na">no findings in the record</span>';
    const error = x.error
      ? `<code>${esc(x.error.code)}</code> ${esc(x.error.message)}`
      : x.exitCode !== null
        ? `the prover exited with ${x.exitCode}`
        : '';
    return `<tr><td><a href="${esc(link(x.record))}">${esc(x.id)}</a></td><td>${esc(x.prover)}</td><td>${esc(x.outcome)}</td><td>${error}</td><td class="finding">${findings}</td></tr>`;
  });
  return `<table><tr><th>record</th><th>prover</th><th>outcome</th><th>error</th><th>findings and fixes</th></tr>${rows.join('')}</table>${more}`;
}

function runsSection(f: ReportFigures, charts: RenderedCharts, link: LinkOf): string {
  return `<section id="runs"><h2>Runs over time</h2>
<p class="how">Each point is one run: when it started (x) and how long its prover took (y), one row per prover, coloured by outcome. Click a point for its record.</p>
${charts.runs ? inline(charts.runs) : `<p class="na">${esc(charts.empty.runs)}</p>`}
<h3>Failures, their findings and fixes</h3>${failureRows(f.failures, link, f.totals.recovered)}</section>`;
}

function fleetTable(fleet: FleetFigure): string {
  const events = fleet.events.length
    ? fleet.events
        .map(
          (e) =>
            `<tr><td>#${e.input}</td><td>${esc(e.kind)}</td><td>${esc(e.detail)}</td><td>${esc(e.at)}</td></tr>`,
        )
        .join('')
    : '<tr><td colspan="4">no preemption, retry or zone move</td></tr>';
  return `<table><tr><th>input</th><th>event</th><th>what</th><th>at</th></tr>${events}</table>`;
}

function fleetSection(f: ReportFigures, charts: RenderedCharts, link: LinkOf): string {
  if (f.fleets.length === 0)
    return `<section id="fleet"><h2>Fleet timeline</h2><p class="na">${esc(charts.empty.fleet ?? 'no fleet')}</p></section>`;
  const parts = f.fleets.map((fleet) => {
    const svg = charts.fleets.find((c) => c.id === fleet.id)?.svg;
    return `<h3>Fleet <a href="${esc(link(fleet.record))}">${esc(fleet.id)}</a>: ${fleet.succeeded} of ${fleet.inputs} proved, ${fleet.retried} retried, ${fleet.wallSeconds.toFixed(1)} s wall</h3>
${svg ? inline(svg) : ''}${fleetTable(fleet)}`;
  });
  return `<section id="fleet"><h2>Fleet timeline</h2>
<p class="how">One lane per input; each bar is a stretch of one attempt (instance insert, boot and prove, delete), placed from the attempt's record (gce.durationMs) on the fleet's clock (fleet.json attempts). Grey "insert refused" bars are inserts a zone turned down; × marks a preemption, ▶ a retry, ◆ a move to another zone.</p>
${parts.join('')}</section>`;
}

/** A phase's cell: its seconds; "—" for boot + prover where boot and prover are told apart. */
const phaseCell = (phases: Record<Phase, number | null>, p: Phase) =>
  p === 'bootProver' && phases.bootProver === null && phases.boot !== null && phases.prover !== null
    ? '—'
    : secs(phases[p]);
const phaseCells = (phases: Record<Phase, number | null>) =>
  PHASES.map((p) => `<td class="n">${phaseCell(phases, p)}</td>`).join('');

function timeSection(f: ReportFigures, charts: RenderedCharts, link: LinkOf): string {
  const heads = PHASES.map((p) => `<th>${esc(PHASE_SOURCES[p].label)}</th>`).join('');
  const runs = f.runs
    .filter((r: RunFigure) => !r.fleet)
    .map(
      (r) =>
        `<tr><td><a href="${esc(link(r.record))}">${esc(r.id)}</a> ${esc(r.prover)}</td>${phaseCells(r.phasesMs)}<td class="n">${secs(r.totalMs)}</td></tr>`,
    );
  const fleets = f.fleets.map(
    (x) =>
      `<tr><td>fleet ${esc(x.id)} (Σ attempts; setup ${secs(x.setupMs)} s)</td>${phaseCells(x.phasesMs)}<td class="n">${(x.wallSeconds).toFixed(2)} wall</td></tr>`,
  );
  const sources = PHASES.map(
    (p) => `<li><b>${esc(PHASE_SOURCES[p].label)}</b>: ${esc(PHASE_SOURCES[p].source)}</li>`,
  ).join('');
  return `<section id="time"><h2>Where the time goes</h2>
<p class="how">Each bar is one run's time split into its phases; a fleet's bar sums its attempts, after the fleet's own setup (packaging, image builds and imports before the first instance). A phase a record does not time is left out of the bar and marked "not recorded" below.</p>
${charts.time ? inline(charts.time) : `<p class="na">${esc(charts.empty.time)}</p>`}
<table><tr><th>run</th>${heads}<th>total</th></tr>${[...runs, ...fleets].join('')}</table><p class="how">seconds. Where each figure comes from:</p><ul class="how">${sources}</ul></section>`;
}

function verifyRows(list: VerifyFigure[]): string {
  if (list.length === 0)
    return '<p class="na">No verify figures: run <code>uniprove verify &lt;package&gt;</code>.</p>';
  const rows = list.map(
    (v) =>
      `<tr><td>${esc(v.provers.join(', '))}</td><td><code>${esc(v.package)}</code></td><td class="n">${v.cpuSeconds.toFixed(2)}</td><td class="n">${v.userSeconds.toFixed(2)}</td><td class="n">${v.sysSeconds.toFixed(2)}</td><td class="n">${v.peakMemoryMiB.toFixed(1)}</td><td>${esc(v.suggestedMemory)}</td><td>${esc(v.measuredAt)}</td></tr>`,
  );
  return `<table><tr><th>prover</th><th>package</th><th>CPU s</th><th>user s</th><th>sys s</th><th>peak MiB</th><th>suggested memory</th><th>measured</th></tr>${rows.join('')}</table>`;
}

function costSection(f: ReportFigures, charts: RenderedCharts): string {
  const fleets = f.fleets.map(
    (x) =>
      `<tr><td>fleet ${esc(x.id)}</td><td class="n">${usd(x.cost.estimatedUsd)}</td><td class="n">${usd(x.cost.perProofUsd)}</td><td class="n">${usd(x.cost.preemptedUsd)}</td><td class="n">${usd(x.cost.spentUsd)}</td><td class="how">${esc(x.cost.basis)}</td></tr>`,
  );
  const runs = f.runs
    .filter((r) => !r.fleet && r.cost.estimatedUsd !== null)
    .map(
      (r) =>
        `<tr><td>${esc(r.id)}</td><td class="n">${usd(r.cost.estimatedUsd)}</td><td class="n">${usd(r.cost.estimatedUsd)}</td><td></td><td class="n">${usd(r.cost.spentUsd)}</td><td class="how">${esc(r.cost.basis)}</td></tr>`,
    );
  const table =
    fleets.length + runs.length
      ? `<table><tr><th>what</th><th>estimated</th><th>per proof</th><th>preempted attempts</th><th>spent</th><th>basis</th></tr>${[...fleets, ...runs].join('')}</table>`
      : '<p>No Compute Engine runs: runs on this host cost no cloud money.</p>';
  return `<section id="cost"><h2>Cost</h2>
<p class="how">Compute Engine runs: the price table (${esc(f.prices.region)}, ${esc(f.prices.date)}, <a href="${esc(f.prices.source)}">source</a>) times the instance time, a minute at least per instance. On the right, the CPU time and peak memory <code>uniprove verify</code> last measured of each package.</p>
${charts.cost ? inline(charts.cost) : `<p class="na">${esc(charts.empty.cost)}</p>`}${table}<h3>CPU time and peak memory (verify)</h3>${verifyRows(f.verify)}</section>`;
}

function notesSection(f: ReportFigures): string {
  const skipped = f.skipped
    .map((s) => `<li><code>${esc(s.path)}</code> skipped: ${esc(s.reason)}</li>`)
    .join('');
  return `<section id="notes"><h2>What the records do not say</h2><ul>${f.notes.map((n) => `<li>${esc(n)}</li>`).join('')}${skipped}</ul></section>`;
}

/** The whole page. */
export function reportHtml(
  figures: ReportFigures,
  charts: RenderedCharts,
  link: LinkOf,
  generatedAt: string,
): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>uniprove report · ${esc(figures.runsDir)}</title><style>${STYLE}</style></head>
<body>${header(figures, generatedAt)}<main>
${runsSection(figures, charts, link)}
${fleetSection(figures, charts, link)}
${timeSection(figures, charts, link)}
${costSection(figures, charts)}
${notesSection(figures)}
</main></body></html>
`;
}

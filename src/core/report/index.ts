/**
 * `uniprove report`: a runs folder's evidence as one self-contained HTML page (or one chart as SVG), and the same
 * figures as data. Reads the records, computes the figures, draws the charts with Vega, writes atomically.
 */
import { dirname, join, relative, sep } from 'node:path';
import { UniproveError } from '../errors.js';
import { writeFileAtomic } from '../fs.js';
import type { OnProgress } from '../progress.js';
import {
  CHARTS,
  type ChartName,
  chartSpec,
  emptyReason,
  fleetChart,
  type LinkOf,
  renderSvg,
} from './charts.js';
import { readEvidence } from './evidence.js';
import { computeFigures, type ReportFigures, type ReportFilter } from './figures.js';
import { type RenderedCharts, reportHtml } from './html.js';

export { CHARTS, type ChartName } from './charts.js';
export type { ReportFigures, ReportFilter } from './figures.js';

/** What to report on and what to write. */
export interface ReportOptions {
  /** The runs folder (absolute). */
  runsDir: string;
  filter?: ReportFilter;
  /** html: the page; svg: one chart alone. */
  format?: 'html' | 'svg';
  /** With svg: which chart (default runs). */
  chart?: ChartName;
  /** Where to write (absolute); undefined: nothing is written (the figures alone, for --json). */
  output?: string;
  /** With no output: draw it anyway and return it (`-o -`, for stdout). */
  stdout?: boolean;
  /** When the report is made (shown on the page). */
  now?: Date;
  onProgress?: OnProgress;
}

/** What was made. */
export interface ReportResult {
  figures: ReportFigures;
  format: 'html' | 'svg';
  /** The file written, if any. */
  output: string | null;
  bytes: number;
  /** The page or chart itself, for writing to stdout. */
  content: string | null;
}

/** Links from the written file to a record of the runs folder (runs-folder relative paths). */
function linker(runsDir: string, output: string | undefined): LinkOf {
  const from = output ? dirname(output) : process.cwd();
  return (path) => relative(from, join(runsDir, path)).split(sep).join('/');
}

function checkFilter(figures: ReportFigures, filter: ReportFilter, all: ReportFigures): void {
  if (filter.fleet && figures.fleets.length === 0) {
    const known = all.fleets.map((f) => f.id);
    throw new UniproveError('E_NOT_FOUND', {
      message: `--fleet ${filter.fleet}: no such fleet in ${figures.runsDir}${filter.prover || filter.since ? ' (with the other filters)' : ''}`,
      hint: known.length
        ? `Fleets there: ${known.join(', ')}.`
        : 'That folder holds no fleet (runs/<fleet-id>/fleet.json).',
    });
  }
  if (figures.runs.length === 0 && figures.fleets.length === 0) {
    const provers = [...new Set(all.runs.map((r) => r.prover))];
    throw new UniproveError('E_NOT_FOUND', {
      message: `no run in ${figures.runsDir} matches ${[
        filter.since ? `--since ${filter.since.toISOString()}` : '',
        filter.prover ? `--prover ${filter.prover}` : '',
      ]
        .filter(Boolean)
        .join(' ')}`,
      hint: `Its ${all.runs.length} runs are of ${provers.join(', ') || 'no prover'}, the first started ${all.runs[0]?.startedAt ?? 'never'}: widen the filter.`,
    });
  }
}

async function drawAll(figures: ReportFigures, link: LinkOf): Promise<RenderedCharts> {
  const charts: RenderedCharts = { fleets: [], empty: {} };
  for (const name of CHARTS) {
    const empty = emptyReason(name, figures);
    if (empty) {
      charts.empty[name] = `Nothing to draw: the records selected hold ${empty}.`;
      continue;
    }
    if (name === 'fleet') {
      for (const fleet of figures.fleets) {
        charts.fleets.push({ id: fleet.id, svg: await renderSvg(fleetChart(fleet, link)) });
      }
    } else charts[name] = await renderSvg(chartSpec(name, figures, link));
  }
  return charts;
}

/** Read the runs folder, compute the figures and, with an output or a format, draw and write the report. */
export async function makeReport(options: ReportOptions): Promise<ReportResult> {
  const filter = options.filter ?? {};
  const format = options.format ?? 'html';
  const onProgress = options.onProgress ?? (() => {});
  onProgress({ kind: 'step-start', step: 'report', detail: `reading ${options.runsDir}` });
  const evidence = await readEvidence(options.runsDir);
  const all = computeFigures(evidence);
  const figures = computeFigures(evidence, filter);
  checkFilter(figures, filter, all);
  if (options.output === undefined && format === 'html' && !options.stdout) {
    onProgress({ kind: 'step-done', step: 'report', detail: `${figures.runs.length} runs` });
    return { figures, format, output: null, bytes: 0, content: null };
  }
  const link = linker(options.runsDir, options.output);
  onProgress({ kind: 'update', step: 'report', detail: 'drawing the charts' });
  const content =
    format === 'svg'
      ? await renderSvg(chartSpec(options.chart ?? 'runs', figures, link, filter.fleet))
      : reportHtml(figures, await drawAll(figures, link), link, (options.now ?? new Date()).toISOString());
  if (options.output) await writeFileAtomic(options.output, content, { what: 'the report' });
  onProgress({
    kind: 'step-done',
    step: 'report',
    detail: options.output ? `wrote ${options.output}` : `${figures.runs.length} runs`,
  });
  return {
    figures,
    format,
    output: options.output ?? null,
    bytes: Buffer.byteLength(content),
    content: options.output ? null : content,
  };
}

/** `uniprove report [runs-dir]`: the runs folder's evidence as one HTML page, one chart as SVG, or the figures. */
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { parseDuration } from '../../core/duration.js';
import { UniproveError } from '../../core/errors.js';
import { CHARTS, type ChartName, makeReport, type ReportFilter } from '../../core/report/index.js';
import type { CliContext } from '../context.js';
import { printJson, printLines } from '../render.js';

interface ReportFlags {
  output?: string;
  format: 'html' | 'svg';
  chart?: ChartName;
  since?: string;
  prover?: string;
  fleet?: string;
  json?: boolean;
}

/** --since as a time: an ISO date or time (2026-12-01, 2026-12-01T10:00Z), or an age (90m, 6h, 7d) before now. */
export function parseSince(text: string, now = new Date()): Date {
  if (/^\d+(\.\d+)?\s*(ms|s|m|h|d|w)?$/.test(text.trim())) {
    return new Date(now.getTime() - parseDuration(text, '--since'));
  }
  const at = Date.parse(text);
  if (Number.isNaN(at)) {
    throw new UniproveError('E_USAGE', {
      message: `--since must be a date, a time or an age, not ${JSON.stringify(text)}`,
      hint: 'Write a date (2026-12-01), a UTC time (2026-12-01T10:00:00Z) or an age before now (90m, 6h, 7d).',
    });
  }
  return new Date(at);
}

function checkFlags(flags: ReportFlags): void {
  if (flags.chart && flags.format !== 'svg') {
    throw new UniproveError('E_USAGE', {
      message: `--chart ${flags.chart} draws one chart alone, which only --format svg writes`,
      hint: `Add --format svg (\`uniprove report --format svg --chart ${flags.chart} -o ${flags.chart}.svg\`), or leave --chart out for the whole page.`,
    });
  }
}

/** The file written: -o, else report.html (or <chart>.svg) here; `-o -` is stdout; --json alone writes none. */
function outputOf(ctx: CliContext, flags: ReportFlags): string | undefined {
  if (flags.output === '-') return undefined;
  if (flags.output) return resolve(ctx.cwd, flags.output);
  if (flags.json && flags.format === 'html') return undefined;
  return resolve(ctx.cwd, flags.format === 'svg' ? `${flags.chart ?? 'runs'}.svg` : 'report.html');
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('report')
    .argument('[runs-dir]', 'the folder runs keep their records in (run --runs-dir)', 'runs')
    .description(
      'Draw the runs folder as one self-contained HTML page: runs over time, fleet timelines, where the time goes, cost.',
    )
    .option('-o, --output <file>', 'where to write (default ./report.html, or ./<chart>.svg; - for stdout)')
    .addOption(
      new Option('--format <format>', 'html: the whole page; svg: one chart alone')
        .choices(['html', 'svg'])
        .default('html'),
    )
    .addOption(new Option('--chart <chart>', 'with --format svg: which chart').choices([...CHARTS]))
    .option('--since <when>', 'only runs started since a date, a time or an age (2026-12-01, 7d, 6h)')
    .option('--prover <name>', 'only runs of this prover (recipe or package name)')
    .option('--fleet <id>', 'only this fleet and its attempts (runs/<fleet-id>/fleet.json)')
    .option('--json', 'print the figures as JSON (writes the page only with -o)')
    .addHelpText(
      'after',
      `
Examples:
  $ uniprove report                                    runs/ -> report.html (open it in a browser, offline)
  $ uniprove report ~/proofs/runs -o /tmp/week.html --since 7d
  $ uniprove report --prover demo --json | jq '.runs[] | {id, outcome, phasesMs}'
  $ uniprove report --fleet f20261207t010936974-d41ee4 -o fleet.html
  $ uniprove report --format svg --chart fleet -o docs/fleet.svg      one chart alone, for a README or a ticket

Charts: runs (proof time per run by prover, coloured by outcome), fleet (one lane per input: insert, boot and
prove, delete, preemptions, retries, zone moves), time (package, image, insert, boot, prover, proofs back),
cost (per fleet and per proof from the price table; verify's CPU time and peak memory).
What each shows and where each figure comes from: docs/report.md.`,
    )
    .action(async (runsDir: string, flags: ReportFlags) => {
      checkFlags(flags);
      const filter: ReportFilter = {
        ...(flags.since ? { since: parseSince(flags.since) } : {}),
        ...(flags.prover ? { prover: flags.prover } : {}),
        ...(flags.fleet ? { fleet: flags.fleet } : {}),
      };
      const output = outputOf(ctx, flags);
      const result = await makeReport({
        runsDir: resolve(ctx.cwd, runsDir),
        filter,
        format: flags.format,
        ...(flags.chart ? { chart: flags.chart } : {}),
        ...(output ? { output } : {}),
        ...(flags.output === '-' && !flags.json ? { stdout: true } : {}),
      });
      if (flags.json) {
        printJson(ctx.out, { output: result.output, format: result.format, ...result.figures });
        return;
      }
      if (result.content !== null) {
        ctx.out.stdout.write(result.content);
        return;
      }
      const f = result.figures;
      printLines(ctx.out, [
        `wrote ${result.output} (${Math.round(result.bytes / 1024)} KiB): ${f.totals.runs} runs (${f.totals.succeeded} succeeded, ${f.totals.notSucceeded} did not), ${f.totals.fleets} fleets`,
      ]);
    });
}

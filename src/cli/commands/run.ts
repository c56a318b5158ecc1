/** `uniprove run <recipe|package>`: prove inside Nanos under QEMU, end for sure, keep the evidence. */
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { formatDuration } from '../../core/duration.js';
import { UniproveError } from '../../core/errors.js';
import type { AccelChoice } from '../../core/machine/accel.js';
import { opsHomeDir } from '../../core/ops/build.js';
import { type RunProverOptions, type RunResult, runProver } from '../../core/run/index.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import {
  addObserveOptions,
  OBSERVE_HELP,
  type Observer,
  observeSpec,
  proverName,
  startObserver,
} from '../observe.js';
import { createProgress } from '../progress.js';
import { printJson, printLines, printWarnings } from '../render.js';
import {
  addRecipeOverrides,
  durationFlag,
  exitForOutcome,
  positiveInt,
  recipeLoadOptions,
  sweepLeftBehind,
} from './shared.js';

function parseAccel(value: string): AccelChoice {
  if (value !== 'auto' && value !== 'kvm' && value !== 'tcg')
    throw new InvalidArgumentError('auto, kvm or tcg');
  return value;
}

/** The --json shape of one run. */
function runJson(r: RunResult) {
  return {
    id: r.id,
    dir: r.dir,
    outcome: r.outcome,
    exitCode: r.exitCode,
    accel: r.accel ?? null,
    accelReason: r.accelReason ?? null,
    proofs: r.proofs.map((p) => ({ path: join(r.dir, p.path), sha256: p.sha256, source: p.source })),
    timings: r.timings,
    imageCache: r.record.imageCache?.state ?? null,
    ...(r.record.vcpus ? { vcpus: r.record.vcpus } : {}),
    warnings: r.warnings,
    ...(r.record.findings?.length ? { findings: r.record.findings } : {}),
    ...(r.record.error ? { error: r.record.error } : {}),
  };
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('run')
    .argument(
      '<target>',
      'a recipe (name, folder or recipe.json) or a package folder made by `uniprove package`',
    )
    .description(
      "Build the image with `ops build`, boot it in QEMU, and report the prover's real exit status. The run ends for sure (timeout, Ctrl-C) and keeps its evidence in runs/<id>/.",
    )
    .addOption(
      new Option(
        '--timeout <duration>',
        'kill the prover after this long: seconds (600) or with a unit (90s, 15m, 6h)',
      )
        .argParser(durationFlag('--timeout'))
        .default(3600_000, '1h'),
    )
    .addOption(
      new Option('--accel <mode>', 'auto: KVM when a probe boot shows it works, else TCG')
        .argParser(parseAccel)
        .default('auto'),
    )
    .option('--nanos-version <version>', 'pin the Nanos release (a folder in ~/.ops)')
    .option(
      '--trace',
      'Nanos syscall trace, missing files and syscall summary (ops run --trace and more): trace.log',
    )
    .option('--out <dir>', 'the run record folder (default runs/<id>); the package never goes there')
    .option('--runs-dir <dir>', 'where run folders and proving_report.csv go', 'runs')
    .option(
      '--copy-out <guestPath>',
      'copy this guest path out after the run, as a proof (repeat)',
      collect,
      [],
    )
    .option(
      '--image-size <size>',
      "the image's root file system size (Ops BaseVolumeSz), e.g. 512m; default the package plus 64 MiB",
    )
    .addOption(
      new Option(
        '--proof-via <route>',
        "how a file proof comes back: copy (off the image, after the run) or console (as on Compute Engine: a preloaded library prints it at the prover's exit; see docs/run.md)",
      )
        .choices(['copy', 'console'])
        .default('copy'),
    )
    .option('--keep-image', 'keep the image in ~/.ops/images after the run')
    .option(
      '--no-image-cache',
      'always run `ops build`, even when an image of the same package, config, Ops and Nanos is cached',
    )
    .addOption(
      new Option('--via <runner>', 'qemu (default), or ops: plain `ops run` for parity')
        .choices(['qemu', 'ops'])
        .default('qemu'),
    )
    .option(
      '--allow-unmap-deadlock',
      'run with the vCPUs asked even on a Nanos kernel with the unmap deadlock (by default such a run gets 1 vCPU)',
    )
    .option('--parallel <n>', 'with --inputs: VMs at once', positiveInt('--parallel'))
    .option('--inputs <file>', 'one run a line: prover arguments as a JSON array or separated by spaces')
    .option(
      '--package-out <dir>',
      'where a recipe is packaged (default build/<name>); --out is the run record only',
    )
    .option(
      '--json',
      'print the run record as JSON: { id, dir, exitCode, accel, proofs: [{ path, sha256 }], timings }',
    )
    .option('-q, --quiet', 'no progress and no live console');
  addRecipeOverrides(cmd);
  addObserveOptions(cmd, 'the runs (inputs by state, attempts, proof durations and bytes)');
  cmd.addHelpText('after', `${RUN_HELP}\n${OBSERVE_HELP}`);
  cmd.action((target: string, opts: RunFlags) => runAction(ctx, target, opts));
}

/** The flags of `uniprove run`, as commander gives them. */
// biome-ignore lint/suspicious/noExplicitAny: commander's option bag
type RunFlags = Record<string, any>;

async function runAction(ctx: CliContext, target: string, opts: RunFlags): Promise<void> {
  const observing = await observeSpec(ctx, opts);
  // What a uniprove killed hard left (records still running, images, processes, temp folders) goes first.
  await sweepLeftBehind(ctx, resolve(ctx.cwd, opts.runsDir));
  const progress = createProgress(ctx.out, { quiet: opts.quiet || opts.json });
  const live = !opts.quiet && !opts.json;
  const env = { ...ctx.env } as Record<string, string | undefined>;
  const base: RunProverOptions = {
    ...recipeLoadOptions(ctx, opts),
    target,
    cwd: ctx.cwd,
    runsDir: resolve(ctx.cwd, opts.runsDir),
    cacheDir: cacheDirFrom(ctx.env),
    opsHome: opsHomeDir(ctx.env),
    env,
    accel: opts.accel,
    timeoutMs: opts.timeout,
    via: opts.via,
    ...(opts.proofVia === 'console' ? { proofVia: 'console' as const } : {}),
    ...(opts.trace ? { trace: true } : {}),
    ...(opts.nanosVersion ? { nanosVersion: opts.nanosVersion } : {}),
    ...(opts.copyOut.length ? { copyOut: opts.copyOut } : {}),
    ...(opts.keepImage ? { keepImage: true } : {}),
    ...(opts.imageCache === false ? { imageCache: false } : {}),
    ...(opts.imageSize ? { imageSize: opts.imageSize } : {}),
    ...(opts.packageOut ? { packageOut: opts.packageOut } : {}),
    ...(opts.allowUnmapDeadlock ? { allowUnmapDeadlock: true } : {}),
    signal: ctx.signal,
    onProgress: progress.onProgress,
  };
  if (opts.arg) base.args = opts.arg;
  if (opts.inputs || opts.parallel) return runMany(ctx, base, opts, progress, observing);
  const observer = observing
    ? await startObserver(ctx, observing, { prover: proverName(target), inputs: 1 })
    : undefined;
  let result: RunResult;
  try {
    result = await runProver({
      ...base,
      ...(opts.out ? { out: opts.out } : {}),
      ...(live ? { onConsole: (chunk: string) => ctx.out.stderr.write(chunk) } : {}),
    });
    observer?.single(result.record);
  } catch (error) {
    observer?.failed(error, runDirOf(error));
    throw error;
  } finally {
    await observer?.end();
  }
  progress.done();
  if (opts.json) printJson(ctx.out, runJson(result));
  else printRun(ctx, result, opts);
  process.exitCode = exitForOutcome(result.outcome);
}

/** `--parallel N --inputs FILE`: one run a line, N at once. */
async function runMany(
  ctx: CliContext,
  base: RunProverOptions,
  opts: RunFlags,
  progress: ReturnType<typeof createProgress>,
  observing: Awaited<ReturnType<typeof observeSpec>>,
): Promise<void> {
  if (!opts.inputs) {
    throw new UniproveError('E_USAGE', {
      message: '--parallel needs --inputs FILE',
      hint: 'Give a file with one line of prover arguments per run: `uniprove run demo --parallel 4 --inputs runs.txt`.',
    });
  }
  const { readInputs, runParallel } = await import('../../core/run/parallel.js');
  let observer: Observer | undefined;
  if (observing) {
    const inputs = await readInputs(opts.inputs, ctx.cwd);
    observer = await startObserver(ctx, observing, {
      prover: proverName(base.target),
      inputs: inputs.length,
    });
  }
  let result: Awaited<ReturnType<typeof runParallel>>;
  try {
    result = await runParallel({
      ...base,
      inputs: opts.inputs,
      parallel: opts.parallel ?? 1,
      ...(observer ? { onRunStart: (index: number) => observer.onRunStart(index) } : {}),
      onRunDone: (e) => {
        observer?.onRunDone(e);
        if (!opts.json) {
          ctx.out.stderr.write(
            `run ${e.index + 1} [${e.args.join(' ')}]: ${e.outcome}${e.exitCode !== null ? ` (exit ${e.exitCode})` : ''}${e.error ? `: ${e.error.message}` : ''}${e.dir ? ` -> ${e.dir}` : ''}\n`,
          );
        }
      },
    });
    observer?.batchEnd(result.summary);
  } catch (error) {
    observer?.failed(error, undefined, false);
    throw error;
  } finally {
    await observer?.end();
  }
  progress.done();
  const failure = result.ok ? undefined : parallelError(result.summary);
  if (opts.json) {
    printJson(ctx.out, {
      ok: result.ok,
      ...(failure ? { error: failure.summary() } : {}),
      summary: result.summary,
      runs: result.runs.map((e) =>
        e.result
          ? { index: e.index, args: e.args, ...runJson(e.result) }
          : {
              index: e.index,
              args: e.args,
              outcome: e.outcome,
              exitCode: e.exitCode,
              dir: e.dir ?? null,
              error: e.error,
            },
      ),
    });
  } else {
    const s = result.summary;
    printLines(ctx.out, [
      `${s.total} runs: ${s.succeeded} succeeded, ${s.failed} failed, ${s.timeout} timed out, ${s.error} errors, ${s.interrupted} interrupted${s.unknown ? `, ${s.unknown} unknown` : ''}`,
    ]);
  }
  if (failure) process.exitCode = failure.exitCode;
}

/** Why a set of runs did not all succeed, as one error (the --json contract: a failure has a top-level error). */
function parallelError(s: { total: number; succeeded: number; interrupted: number }): UniproveError {
  if (s.interrupted > 0) {
    return new UniproveError('E_INTERRUPTED', {
      message: `interrupted: ${s.interrupted} of ${s.total} runs did not finish`,
      hint: 'Each run that started has its record folder (runs[].dir); run the inputs again to finish them.',
    });
  }
  return new UniproveError('E_RUN_FAILED', {
    message: `${s.total - s.succeeded} of ${s.total} runs did not succeed`,
    hint: 'runs[] gives each run its outcome, error and record folder; `uniprove debug <dir>/console.log` explains one.',
  });
}

/** A run for humans: the outcome, the record, the timings, the proofs and findings. */
function printRun(ctx: CliContext, result: RunResult, opts: RunFlags): void {
  printWarnings(ctx.out, result.warnings);
  const t = result.timings;
  const s = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
  const head =
    result.outcome === 'succeeded'
      ? `ok: the prover exited 0 (${result.accel})`
      : result.outcome === 'failed'
        ? `FAILED: the prover exited with status ${result.exitCode}`
        : result.outcome === 'timeout'
          ? `TIMEOUT: the prover was still running after ${formatDuration(opts.timeout)} and was killed`
          : `UNKNOWN: ${result.record.exitReason ?? 'the exit status did not reach the host'}`;
  printLines(ctx.out, [
    head,
    `  record: ${result.dir}`,
    ...(result.record.vcpus
      ? [
          `  vCPUs: ${result.record.vcpus.used}${result.record.vcpus.used !== result.record.vcpus.asked ? ` (asked ${result.record.vcpus.asked}: ${result.record.vcpus.reason})` : ''}`,
        ]
      : []),
    `  timings: image ${result.record.imageCache?.state === 'hit' ? '(cached) ' : 'build '}${s(t.imageBuildMs)}, boot to first console line ${s(t.bootMs)}, prover ${s(t.proverMs)}, total ${s(t.totalMs)}`,
    ...result.proofs.map((p) => `  proof ${join(result.dir, p.path)} sha256:${p.sha256}`),
    ...(result.record.findings ?? []).flatMap((f) => [
      `  finding: ${f.message}`,
      ...(f.fix ? [`    fix: ${f.fix}`] : []),
    ]),
  ]);
}

/** What `uniprove run --help` says after the options. */
const RUN_HELP = `
QEMU is started with -no-reboot (no reboot loops, even with RebootOnExit) and isa-debug-exit with the manifest's
debug_exit, so uniprove's exit status follows the prover's: 0 it succeeded, 1 it failed (its status is in the record),
6 it hit --timeout and was killed, 130 Ctrl-C; 2 bad input (a volume that does not exist), 3 a missing tool (ops,
a Nanos release, QEMU) or too little disk. No QEMU process outlives the run.

The image \`ops build\` makes is kept in the cache (the last 4, 8 GiB at most, under $UNIPROVE_CACHE/images), keyed by the
package files, the run's config, the ops program and the Nanos release: a run of the same inputs boots it as a
snapshot (writes go to a throwaway overlay) instead of building again, or a copy of it when the run reads the image
afterwards (a file proof or --copy-out outside a volume, --keep-image). --no-image-cache builds anyway.

KVM is used only when it works here: a probe boot decides once per host and the verdict is cached (TCG otherwise).

vCPUs: the recipe's resources.cpus, or --cpus N (--cpus all: this host's cores); the recipe's resources.threadVars
(RAYON_NUM_THREADS and the like) are set to the count. Nanos kernels before the vmap-lock fix (stock 0.1.55)
deadlock with more than one vCPU when a prover unmaps file mappings while another thread faults: a run of several
vCPUs first asks whether the installed kernel has that deadlock (a 2-vCPU reproducer booted once per kernel, a few
seconds; \`uniprove doctor\` shows the verdict), and on an affected kernel it runs with 1 vCPU and says so, unless
--allow-unmap-deadlock. The record's vcpus says what was asked, what was used and why.

A Nanos kernel that stops (an assertion, a panic, a fault in the kernel) ends the run at once, as failed, with a
finding that quotes it: the guest would otherwise spin until --timeout.

The record folder holds ops-config.json, manifest.txt, qemu-cmdline.txt, console.log, trace.log (--trace),
proofs/ with their sha256, and record.json; runs/proving_report.csv gets one line per run.

Examples:
  $ uniprove run demo
  $ uniprove run build/demo --timeout 600 --json
  $ uniprove run demo --copy-out /tmp/proof --accel tcg
  $ uniprove run demo --parallel 4 --inputs seeds.txt
  $ uniprove run zkwasm --cpus all`;

/** The run folder a failed run's error names, if it had one. */
function runDirOf(error: unknown): string | undefined {
  const dir = (error as { details?: { runDir?: unknown } } | undefined)?.details?.runDir;
  return typeof dir === 'string' ? dir : undefined;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

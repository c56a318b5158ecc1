import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { ExitCode, UniproveError } from '../../core/errors.js';
import { packageRecipe } from '../../core/package/index.js';
import { isPackageDir } from '../../core/package/layout.js';
import type { VerifyUsage } from '../../core/package/usage.js';
import { type VerifyResult, verifyPackage } from '../../core/package/verify.js';
import type { OnProgress } from '../../core/progress.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines, printWarnings } from '../render.js';
import { addRecipeOverrides, durationFlag, recipeLoadOptions, sweepLeftBehind } from './shared.js';

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('verify')
    .argument(
      '<package>',
      'a package folder made by `uniprove package` (build/demo), or a recipe to package first',
    )
    .description(
      'Run the packaged program with the package folder as its whole file system, to prove the closure complete without a VM.',
    )
    .option(
      '--bind <guest=host>',
      "mount a host folder at a guest path, e.g. a volume's content (repeat)",
      collectBind,
      {},
    )
    .addOption(
      new Option(
        '--timeout <duration>',
        'kill the program after this long: seconds (600) or with a unit (90s, 15m)',
      )
        .argParser(durationFlag('--timeout'))
        .default(600_000, '10m'),
    )
    .option('--no-trace', 'do not run under strace (missing files are then read from loader messages only)')
    .option(
      '--as-is',
      'run a package folder as it is on disk even where it differs from its lock (e.g. a file removed to see whether the program needs it); without it such a package is refused (E_PACKAGE_CHANGED)',
    )
    .option('--proof-markers <begin,end>', 'take a proof printed on stdout between these two markers')
    .option('--json', 'print { ok, exitCode, missing, proofs, usage, warnings } as JSON')
    .option('-q, --quiet', 'no progress output');
  addRecipeOverrides(cmd);
  cmd
    .addHelpText(
      'after',
      `
The program runs in bubblewrap (or a chroot as root) with the package read-only as /, a fresh /proc and /dev,
and empty writable folders at /tmp and at each volume mount point. Files it writes there are listed as proofs.
Under strace, a failure names every library the program searched for and never found.
It reports the program's CPU time (user + sys, every process of it) and peak resident memory (its largest
process), with the guest memory they suggest, and warns when the recipe's resources.memory is below that.
Exit status: 0 when the program succeeded, 1 when it failed (see "missing"), 2 for a bad package folder.

Given a recipe (a name from provers/, a folder, a binary) instead of a package folder, it packages it first
into build/<recipe>, as \`uniprove package\` would.

Examples:
  $ uniprove verify demo
  $ uniprove verify build/demo
  $ uniprove verify build/benchy --bind /tmp=$HOME/.cache/uniprove/volumes/filecoin-2KiB --json`,
    )
    .action(async (pkg: string, opts) => {
      await sweepLeftBehind(ctx);
      const progress = createProgress(ctx.out, { quiet: opts.quiet || opts.json });
      let markers: { begin: string; end: string } | undefined;
      if (opts.proofMarkers) {
        const [begin, end] = String(opts.proofMarkers).split(',');
        if (!begin || !end)
          throw new UniproveError('E_USAGE', { message: '--proof-markers takes BEGIN,END' });
        markers = { begin, end };
      }
      const packageDir = await packageFor(ctx, pkg, opts, progress.onProgress);
      const result = await verifyPackage({
        package: packageDir,
        ...(opts.asIs ? { asIs: true } : {}),
        binds: opts.bind,
        timeoutMs: opts.timeout,
        ...(opts.trace === false ? { trace: false } : {}),
        ...(ctx.env.PATH ? { pathEnv: ctx.env.PATH } : {}),
        cacheDir: cacheDirFrom(ctx.env),
        isRoot: process.getuid?.() === 0,
        ...(markers ? { proofMarkers: markers } : {}),
        signal: ctx.signal,
        onProgress: progress.onProgress,
      });
      await progress.done();
      if (opts.json) printJson(ctx.out, verifyJson(result));
      else {
        printLines(ctx.out, verifyLines(result));
        printWarnings(ctx.out, result.warnings);
      }
      if (!result.ok) process.exitCode = ExitCode.failure;
    });
}

/** The package folder to verify: the argument itself, or a fresh package of the recipe it names. */
async function packageFor(
  ctx: CliContext,
  ref: string,
  opts: Parameters<typeof recipeLoadOptions>[1],
  onProgress: OnProgress,
): Promise<string> {
  const dir = resolve(ctx.cwd, ref);
  if (await isPackageDir(dir)) return dir;
  const packaged = await packageRecipe({
    recipe: ref,
    ...recipeLoadOptions(ctx, opts),
    signal: ctx.signal,
    onProgress,
  });
  return packaged.package;
}

function collectBind(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0 || !value.startsWith('/')) {
    throw new UniproveError('E_USAGE', { message: `--bind takes /guest/path=host/path, got "${value}"` });
  }
  return { ...previous, [value.slice(0, eq)]: resolve(value.slice(eq + 1)) };
}

/** The --json output: stable field names (docs/verify.md). */
function verifyJson(result: VerifyResult) {
  return {
    ok: result.ok,
    exitCode: result.exitCode,
    missing: result.missing,
    proofs: result.proofs,
    sandbox: result.sandbox,
    traced: result.traced,
    durationMs: Math.round(result.durationMs),
    ...(result.usage ? { usage: result.usage } : {}),
    warnings: result.warnings,
    ...(result.error ? { error: result.error } : {}),
  };
}

/** CPU 1.23 s (1.10 user, 0.13 sys), peak memory 64.6 MiB: what the guest should get. */
function usageLine(usage: VerifyUsage): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const mib = (usage.maxRssBytes / (1024 * 1024)).toFixed(1);
  return `  CPU ${s(usage.cpuMs)} s (${s(usage.userMs)} user, ${s(usage.sysMs)} sys), peak memory ${mib} MiB (suggested guest memory ${usage.suggestedMemory})`;
}

/** The human output: the outcome, what the program took, its proofs or what it missed. */
function verifyLines(result: VerifyResult): string[] {
  const usage = result.usage ? [usageLine(result.usage)] : [];
  if (result.ok) {
    return [
      `ok: the program ran from the package alone (exit 0, ${(result.durationMs / 1000).toFixed(2)} s, ${result.sandbox})`,
      ...usage,
      ...result.proofs.map((p) => `  proof ${p.guestPath} -> ${p.path} sha256:${p.sha256}`),
    ];
  }
  return [
    `FAILED: the program exited with ${result.signal ? `signal ${result.signal}` : `status ${result.exitCode}`}`,
    ...usage,
    ...(result.missing.length
      ? ['  missing from the package:', ...result.missing.map((m) => `    ${m}`)]
      : ['  no missing file was seen; the last lines it printed:']),
    ...result.stderrTail
      .trimEnd()
      .split('\n')
      .slice(-10)
      .map((l) => `  | ${l}`),
    ...(result.missing.length
      ? ['hint: add them to the recipe ("libraries" or "files"), or run `uniprove debug <log> --fix`.']
      : []),
  ];
}

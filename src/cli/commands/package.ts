/** `uniprove package <recipe|folder|binary>`: stage a prover and its closure with generated Ops configs. */
import type { Command } from 'commander';
import { formatBytes } from '../../core/format.js';
import { packageRecipe } from '../../core/package/index.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines, printWarnings } from '../render.js';
import { addRecipeOverrides, recipeLoadOptions, sweepLeftBehind } from './shared.js';

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('package')
    .argument(
      '<recipe>',
      'a recipe name from provers/, a folder holding recipe.json, a recipe file, or a binary',
    )
    .description(
      'Stage a prover, every library it needs and its files into a folder Ops can build and run as it is.',
    )
    .option('-o, --out <dir>', 'package folder (default: build/<recipe>)')
    .option('--force', 'run discovery again even if the binary and probe did not change')
    .option('--json', 'print { package, config, files } as JSON')
    .option('-q, --quiet', 'no progress output');
  addRecipeOverrides(cmd);
  cmd.addHelpText(
    'after',
    `
The package folder holds the image tree (each file at the guest path where the guest's loader looks for it),
local.json and gcloud.json (Ops configs), and uniprove.lock.json (sha256, size, mode and reasons of every file).
Run it with Ops directly:  cd build/<recipe> && ops run <program> -c local.json
Ask why a file is there:   uniprove why <file> --from build/<recipe>

Examples:
  $ uniprove package demo
  $ uniprove package benchy --binary ~/rust-fil-proofs/target/release/benchy
  $ uniprove package ./my-prover --json`,
  );
  cmd.action(async (recipe: string, opts) => {
    await sweepLeftBehind(ctx);
    const progress = createProgress(ctx.out, { quiet: opts.quiet || opts.json });
    try {
      const result = await packageRecipe({
        recipe,
        out: opts.out,
        force: opts.force,
        cacheDir: cacheDirFrom(ctx.env),
        ...recipeLoadOptions(ctx, opts),
        signal: ctx.signal,
        onProgress: progress.onProgress,
      });
      await progress.done();
      if (opts.json) {
        printJson(ctx.out, {
          package: result.package,
          config: result.config,
          files: result.files,
          dirs: result.dirs,
          configs: result.configs,
          lock: result.lock,
          changed: result.changed,
          warnings: result.warnings,
          ...(result.probe ? { probe: result.probe } : {}),
        });
        return;
      }
      printWarnings(ctx.out, result.warnings);
      printLines(ctx.out, [
        `${result.changed ? 'packaged' : 'up to date'}: ${result.package}`,
        `  program  ${result.program}`,
        `  files    ${result.files} (${formatBytes(result.bytes)})${result.dirs ? `, ${result.dirs} folder${result.dirs === 1 ? '' : 's'}` : ''}`,
        `  config   ${result.config}`,
        `  lock     ${result.lock}`,
        ...(result.probe?.lingerMs
          ? [
              `  probe    exit ${result.probe.exitCode}, lingered up to ${result.probe.lingerMs} ms after exit`,
            ]
          : []),
      ]);
    } finally {
      await progress.done();
    }
  });
}

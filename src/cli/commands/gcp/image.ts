/** `uniprove gcp image`: a recipe's image, or a raw disk, imported into Compute Engine (reused by digest). */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UniproveError } from '../../../core/errors.js';
import { gcpImage, gcpImageRecipe } from '../../../core/image/gce.js';
import type { CliContext } from '../../context.js';
import { createProgress } from '../../progress.js';
import { printJson, printLines } from '../../render.js';
import { addRecipeOverrides } from '../shared.js';
import {
  type CommonFlags,
  common,
  noRecipeFlags,
  printDryRun,
  type RecipeFlags,
  recipeSource,
  target,
  withCommon,
} from './shared.js';

/** Register `uniprove gcp image`. */
export function registerImage(gcp: Command, ctx: CliContext): void {
  const image = withCommon(
    gcp
      .command('image')
      .argument(
        '[recipe]',
        'a recipe (name, folder or recipe.json) or a package folder made by `uniprove package`',
      )
      .description(
        "Import a prover image into Compute Engine. From a recipe: package it, `ops build` it with the package's gcloud.json, then pack the raw disk as disk.raw in a gzip'd tar (sparse-aware with GNU tar), upload it (resumable), images.insert, wait. An image with the same digest is reused (a recipe image's digest is that of its build inputs: package lock, config, Nanos kernel and klibs).",
      )
      .option('--image-file <path>', 'instead of a recipe: a raw disk image (as ops builds it)')
      .option('--name <name>', 'with --image-file: a name for the image (default: the file name)')
      .option('--package-out <dir>', 'where a recipe is packaged (default build/<name>)')
      .option('--nanos-version <version>', 'pin the Nanos release (a folder in ~/.ops)')
      .option('--dry-run', 'print the API calls, make none; builds nothing, needs no credentials'),
  );
  addRecipeOverrides(image).action(
    async (
      recipe: string | undefined,
      flags: CommonFlags & RecipeFlags & { imageFile?: string; name?: string; dryRun?: boolean },
    ) => {
      if (Boolean(recipe) === Boolean(flags.imageFile)) {
        throw new UniproveError('E_USAGE', {
          message: 'give exactly one of a recipe and --image-file PATH',
          hint: 'A recipe (e.g. `uniprove gcp image demo`) is packaged and built first; --image-file imports a raw disk as it is.',
        });
      }
      if (flags.imageFile) noRecipeFlags(flags, '--image-file');
      const t = await target(ctx, flags);
      const progress = createProgress(ctx.out, { quiet: Boolean(flags.dryRun) || Boolean(flags.json) });
      try {
        const c = common(ctx, t, flags, progress.onProgress);
        const result = recipe
          ? await gcpImageRecipe({
              ...recipeSource(ctx, recipe, flags),
              ...c,
              ...(flags.bucket ? { bucket: flags.bucket } : {}),
              dryRun: Boolean(flags.dryRun),
            })
          : await gcpImage({
              ...c,
              disk: { rawPath: resolve(ctx.cwd, flags.imageFile!), name: flags.name },
              bucket: flags.bucket,
              dryRun: Boolean(flags.dryRun),
            });
        await progress.done();
        if (result.dryRun) return printDryRun(ctx, result, Boolean(flags.json));
        if (flags.json) return printJson(ctx.out, result);
        printLines(ctx.out, [
          `${result.reused ? 'reused' : 'created'} image ${result.image} in project ${result.project}`,
          `  run it: uniprove gcp run --image ${result.image} --machine-type n2-standard-4`,
        ]);
      } finally {
        await progress.done();
      }
    },
  );
}

/** `uniprove gcp gc`: delete what uniprove left behind. */
import type { Command } from 'commander';
import { gcpGc } from '../../../core/cloud/inventory.js';
import { parseDuration } from '../../../core/duration.js';
import { UniproveError } from '../../../core/errors.js';
import type { CliContext } from '../../context.js';
import { createProgress } from '../../progress.js';
import { printJson, printLines } from '../../render.js';
import { type CommonFlags, common, target, withCommon } from './shared.js';

/** Register `uniprove gcp gc`. */
export function registerGc(gcp: Command, ctx: CliContext): void {
  withCommon(
    gcp
      .command('gc')
      .description(
        'Delete what uniprove left behind: instances first, then disks, images and staging objects',
      )
      .option('--older-than <duration>', 'only what was created longer ago, e.g. 2h, 7d')
      .option('--run <id>', 'only what belongs to this run id')
      .option(
        '--fleet <id>',
        "only a fleet's instances and disks (label uniprove-fleet; its images stay, reused)",
      )
      .option('--dry-run', 'list what would be deleted, delete nothing'),
  ).action(
    async (flags: CommonFlags & { olderThan?: string; run?: string; fleet?: string; dryRun?: boolean }) => {
      const t = await target(ctx, flags);
      const progress = createProgress(ctx.out);
      try {
        const result = await gcpGc({
          ...common(ctx, t, flags, progress.onProgress),
          bucket: flags.bucket,
          olderThanMs: flags.olderThan ? parseDuration(flags.olderThan, '--older-than') : undefined,
          runId: flags.run,
          ...(flags.fleet ? { fleetId: flags.fleet } : {}),
          dryRun: Boolean(flags.dryRun),
        });
        await progress.done();
        if (flags.json) printJson(ctx.out, result);
        else {
          const verb = result.dryRun ? 'would delete' : 'deleted';
          printLines(
            ctx.out,
            [
              ...result.deleted.map((r) => `${verb} ${r.kind} ${r.name}`),
              ...result.failed.map(
                (f) => `FAILED to delete ${f.resource.kind} ${f.resource.name}: ${f.message}`,
              ),
              result.deleted.length === 0 && result.failed.length === 0 ? 'nothing to delete' : '',
            ].filter(Boolean),
          );
        }
        if (result.failed.length > 0) {
          throw new UniproveError('E_GCP', {
            message: `${result.failed.length} resource(s) could not be deleted`,
            hint: 'Read the reasons above; a disk still attached goes once its instance is deleted: run gc again.',
          });
        }
      } finally {
        await progress.done();
      }
    },
  );
}

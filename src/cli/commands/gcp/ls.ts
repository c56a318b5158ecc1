/** `uniprove gcp ls`: what uniprove made in the project. */
import type { Command } from 'commander';
import { gcpList } from '../../../core/gcp/inventory.js';
import type { CliContext } from '../../context.js';
import { printJson, printLines } from '../../render.js';
import { type CommonFlags, common, target, withCommon } from './shared.js';

/** Register `uniprove gcp ls`. */
export function registerLs(gcp: Command, ctx: CliContext): void {
  withCommon(
    gcp
      .command('ls')
      .description('List what uniprove created in the project (label uniprove=1), in every zone'),
  ).action(async (flags: CommonFlags) => {
    const t = await target(ctx, flags);
    const result = await gcpList({ ...common(ctx, t, flags, undefined), bucket: flags.bucket });
    if (flags.json) return printJson(ctx.out, result);
    if (result.resources.length === 0)
      return printLines(ctx.out, [`nothing made by uniprove in ${result.project}`]);
    printLines(
      ctx.out,
      result.resources.map(
        (r) =>
          `${r.kind.padEnd(9)} ${r.name}${r.zone ? `  ${r.zone}` : ''}${r.bucket ? `  gs://${r.bucket}` : ''}${r.status ? `  ${r.status}` : ''}${r.created ? `  ${r.created}` : ''}`,
      ),
    );
  });
}

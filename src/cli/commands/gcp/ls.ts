/** `uniprove gcp ls`: what uniprove made in the project. */
import type { Command } from 'commander';
import { gcpList } from '../../../core/cloud/inventory.js';
import type { CliContext } from '../../context.js';
import { printJson, printLines } from '../../render.js';
import { type CommonFlags, common, target, withCommon } from './shared.js';

/** Register `uniprove gcp ls`. */
export function registerLs(gcp: Command, ctx: CliContext): void {
  withCommon(
    gcp
      .command('ls')
      .description(
        'List what uniprove created in the project (label uniprove=1), in every zone, grouped by fleet',
      ),
  ).action(async (flags: CommonFlags) => {
    const t = await target(ctx, flags);
    const result = await gcpList({ ...common(ctx, t, flags, undefined), bucket: flags.bucket });
    if (flags.json) return printJson(ctx.out, result);
    if (result.resources.length === 0)
      return printLines(ctx.out, [`nothing made by uniprove in ${result.project}`]);
    const line = (r: (typeof result.resources)[number]) =>
      `${r.kind.padEnd(9)} ${r.name}${r.zone ? `  ${r.zone}` : ''}${r.bucket ? `  gs://${r.bucket}` : ''}${r.status ? `  ${r.status}` : ''}${r.created ? `  ${r.created}` : ''}`;
    const fleetOf = (r: (typeof result.resources)[number]) =>
      r.kind === 'instance' || r.kind === 'disk' ? r.labels?.['uniprove-fleet'] : undefined;
    for (const f of result.fleets) {
      printLines(ctx.out, [
        `fleet ${f.id}: ${f.instances} instance(s), ${f.disks} disk(s) in ${f.zones.join(', ')} (delete: uniprove gcp gc --fleet ${f.id})`,
        ...result.resources.filter((r) => fleetOf(r) === f.id).map((r) => `  ${line(r)}`),
      ]);
    }
    const rest = result.resources.filter((r) => !fleetOf(r));
    if (rest.length > 0 && result.fleets.length > 0) printLines(ctx.out, ['not in a fleet:']);
    printLines(
      ctx.out,
      rest.map((r) => (result.fleets.length > 0 ? `  ${line(r)}` : line(r))),
    );
  });
}

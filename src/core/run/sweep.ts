/**
 * What a uniprove killed hard (SIGKILL, the OOM killer) left behind: records still "running" whose uniprove is
 * gone, and their images under ~/.ops/images. The next run sweeps them: the record is closed as `abandoned`,
 * the image removed, and the caller is told what was swept.
 */
import { readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../exec.js';
import { readJsonIfExists, writeJsonAtomic } from '../fs.js';
import { isRunId, RECORD_FILE, type RunRecord } from '../record/record.js';

export interface SweepOptions {
  /** The folder of run records (runs/). */
  runsDir: string;
  /** Ops's home (~/.ops): local runs build their image as images/uniprove-<id>. */
  opsHome: string;
}

/** One abandoned run that was swept. */
export interface SweptRun {
  id: string;
  dir: string;
  /** The uniprove that ran it and is gone. */
  pid: number;
  /** Files removed (the run's image). */
  removed: string[];
  /** For a Compute Engine run: what it may have left in the cloud, and the command that deletes it. */
  cloud?: string;
}

/**
 * Close every record in `runsDir` left `running` by a uniprove of this host that is gone: outcome `abandoned`
 * with a warning saying so, its local image removed. A record of a live uniprove, of another host, or
 * without an owner (written before owners were kept) is left alone.
 */
export async function sweepAbandonedRuns(options: SweepOptions): Promise<SweptRun[]> {
  const names = await readdir(options.runsDir).catch(() => [] as string[]);
  const host = hostname();
  const swept: SweptRun[] = [];
  for (const name of names.filter(isRunId).sort()) {
    const dir = join(options.runsDir, name);
    const record = await readJsonIfExists<RunRecord>(join(dir, RECORD_FILE)).catch(() => undefined);
    if (record?.outcome !== 'running' || !record.owner || record.owner.host !== host) continue;
    if (record.owner.pid === process.pid || processAlive(record.owner.pid)) continue;
    const removed: string[] = [];
    if (record.via !== 'gce') {
      const image = join(options.opsHome, 'images', `uniprove-${record.id}`);
      const existed = await rm(image, { force: false }).then(
        () => true,
        () => false,
      );
      if (existed) removed.push(image);
    }
    // A Compute Engine run's instance is in the cloud, beyond this sweep: the record says how to delete it (a
    // fleet's attempts carry the fleet's label, which `gcp gc --fleet` finds).
    const cloud = record.gce
      ? `its instance ${record.gce.instance} (zone ${record.gce.zone}) may still be running: \`uniprove gcp gc ${record.fleet ? `--fleet ${record.fleet.id}` : `--run ${record.id}`}\` deletes what it left`
      : '';
    record.outcome = 'abandoned';
    record.endedAt ??= new Date().toISOString();
    record.warnings = [
      ...(record.warnings ?? []),
      {
        code: 'abandoned',
        message: `uniprove (pid ${record.owner.pid}) ended without closing this run (killed?); a later run marked it abandoned${removed.length ? ` and removed ${removed.join(', ')}` : ''}${cloud ? `; ${cloud}` : ''}`,
      },
    ];
    await writeJsonAtomic(join(dir, RECORD_FILE), record);
    swept.push({
      id: record.id,
      dir,
      pid: record.owner.pid,
      removed,
      ...(cloud ? { cloud } : {}),
    });
  }
  return swept;
}

/**
 * `gcp run --image` / `--image-file`: an image as it is, through the run lifecycle with the gce driver, so it gets
 * what every run gets: runs/<id>/record.json, its console, a line in proving_report.csv, and everything it made
 * deleted on success, failure, timeout and Ctrl-C. No recipe stands behind it, so no proof is known: the
 * outcome is `unknown` unless the run fails or is stopped. A dry run prints the calls and makes nothing.
 */
import { copyFile } from 'node:fs/promises';
import { type GcpDryRunResult, withClients } from '../cloud/context.js';
import {
  DEFAULT_RUN_TIMEOUT_MS,
  type GcpRunOptions,
  type GcpRunResult,
  runInstance,
} from '../cloud/instance.js';
import { machineTypeName } from '../cloud/plan.js';
import { withWriteErrors } from '../fs.js';
import { GceDriver } from '../machine/drivers/gce.js';
import type { PreparedTarget } from '../package/target.js';
import { CONSOLE_LOG, type RunOutcome, type RunRecord } from '../record/record.js';
import { lifecycleOptions, runOnMachine } from '../run/lifecycle.js';
import { describeGce } from './describe.js';

/** Options of `gcp run --image`: the instance's, and where its record goes. */
export interface GcpRunImageOptions extends GcpRunOptions {
  /** Folder of run records; proving_report.csv lives here (default <cwd>/runs). */
  runsDir?: string;
  /** This run's record folder (default <runsDir>/<id>). */
  out?: string;
  /** Do not add the run to proving_report.csv. */
  noReport?: boolean;
  cwd?: string;
}

/** What the instance did, and the run record that keeps it. */
export interface GcpRunImageResult extends GcpRunResult {
  outcome: RunOutcome;
  /** The run's record folder (runs/<id>). */
  recordDir: string;
  record: RunRecord;
}

/** The image as the lifecycle's target: nothing to package, no proof known, the volume given as a disk. */
function imageTarget(options: GcpRunImageOptions): PreparedTarget {
  const { image } = options;
  return {
    name: 'existing' in image ? image.existing : (image.name ?? image.rawPath),
    packageDir: 'existing' in image ? image.existing : image.rawPath,
    config: {},
    recipe: undefined,
    proof: { kind: 'none' },
    volumes: [],
    bytes: 0,
    threadVars: [],
  };
}

/** Run an image on a Compute Engine instance with a run record; a dry run prints the calls it would make. */
export async function gcpRun(options: GcpRunImageOptions & { dryRun: true }): Promise<GcpDryRunResult>;
export async function gcpRun(options: GcpRunImageOptions): Promise<GcpRunImageResult | GcpDryRunResult>;
export async function gcpRun(options: GcpRunImageOptions): Promise<GcpRunImageResult | GcpDryRunResult> {
  if (options.dryRun) return runInstance({ ...options, dryRun: true });
  // A machine that cannot be named fails here, before any call.
  const machineType = machineTypeName(options.target, options.machine);
  const target = imageTarget(options);
  return withClients(options, async (clients) => {
    const { image, volume, onConsoleLine, consolePath: _copy, runId: _id, ...instance } = options;
    const driver = new GceDriver({
      boot: { given: { image, ...(volume ? { volume } : {}), ...(onConsoleLine ? { onConsoleLine } : {}) } },
      instance: { ...instance, clients },
      machineType,
      diskType: volume?.diskType ?? 'pd-balanced',
    });
    const record = await runOnMachine(
      driver,
      lifecycleOptions(
        { ...options, timeoutMs: options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS },
        {
          prover: target.name,
          args: [],
          prepared: target,
          prepare: async () => target,
          describe: (r) => describeGce(r, machineType, options.target.zone),
        },
      ),
    );
    const result = driver.result();
    // --console-file: the console also where the user asked for it (the record keeps its own copy).
    if (options.consolePath) {
      const to = options.consolePath;
      await withWriteErrors(
        { what: 'the console file', path: to, elsewhere: 'give --console-file a path on a disk with room' },
        () => copyFile(`${record.dir}/${CONSOLE_LOG}`, to),
      );
      result.consolePath = to;
    }
    return { ...result, outcome: record.outcome as RunOutcome, recordDir: record.dir, record };
  });
}

/**
 * The evidence a report is made from, read back from a runs folder: every runs/<id>/record.json (checked against
 * the run record schema), every runs/<fleet-id>/fleet.json, and the CPU time and peak memory `uniprove verify`
 * last measured for each package the runs were made from (<package>/.uniprove/verify/rusage.json).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UniproveError } from '../errors.js';
import { describeFileType } from '../fs.js';
import type { FleetRecord } from '../gcp/fleet/record.js';
import { readUsage, type VerifyUsage } from '../package/usage.js';
import { RECORD_FILE, type RunRecord } from '../record/record.js';
import { RunRecordSchema } from '../record/schema.js';

/** The fleet summary's file name in its folder. */
export const FLEET_FILE = 'fleet.json';

/** One run record as read, with where it lies relative to the runs folder (for links). */
export interface EvidenceRun {
  record: RunRecord;
  /** runs-dir-relative path of its record.json, with forward slashes. */
  path: string;
}

/** One fleet record as read. */
export interface EvidenceFleet {
  record: FleetRecord;
  path: string;
}

/** What verify measured of a package, where it was read. */
export interface EvidenceUsage {
  package: string;
  usage: VerifyUsage;
  /** When verify wrote it (the file's time). */
  measuredAt: string;
}

/** A file that was skipped, and why: a report says what it could not read rather than failing on it. */
export interface EvidenceSkip {
  path: string;
  reason: string;
}

/** Everything a report reads. */
export interface Evidence {
  runsDir: string;
  runs: EvidenceRun[];
  fleets: EvidenceFleet[];
  usage: EvidenceUsage[];
  skipped: EvidenceSkip[];
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8'));
}

/** The folder as a runs folder, or the error that names it and says what to pass. */
async function checkRunsDir(runsDir: string): Promise<void> {
  const info = await stat(runsDir).catch(() => undefined);
  if (!info) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `runs folder ${runsDir} does not exist`,
      hint: 'Pass the folder `uniprove run` and `uniprove gcp run` keep their records in (--runs-dir, default ./runs): `uniprove report path/to/runs`.',
      details: { runsDir },
    });
  }
  if (!info.isDirectory()) {
    throw new UniproveError('E_USAGE', {
      message: `${runsDir} is not a folder`,
      hint: 'Pass the runs folder itself (it holds one folder per run, each with a record.json), not a file in it.',
      details: { runsDir },
    });
  }
}

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

/** One folder of the runs folder: its record.json and/or fleet.json, or what was wrong with them. */
async function readEntry(runsDir: string, name: string, evidence: Evidence): Promise<void> {
  for (const file of [RECORD_FILE, FLEET_FILE]) {
    const path = join(runsDir, name, file);
    const rel = relative(runsDir, path).split('\\').join('/');
    let value: unknown;
    try {
      // A FIFO or a device named record.json would block the read or never end: only a regular file is read.
      const info = await stat(path);
      if (!info.isFile()) {
        evidence.skipped.push({ path: rel, reason: `not a regular file (${describeFileType(info)})` });
        continue;
      }
      value = await readJson(path);
    } catch (error) {
      if (!isMissing(error)) evidence.skipped.push({ path: rel, reason: (error as Error).message });
      continue;
    }
    if (file === RECORD_FILE) {
      const parsed = RunRecordSchema.safeParse(value);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
        evidence.skipped.push({ path: rel, reason: `not a run record (${issues.slice(0, 3).join('; ')})` });
        continue;
      }
      evidence.runs.push({ record: value as RunRecord, path: rel });
    } else {
      const fleet = value as Partial<FleetRecord>;
      if (typeof fleet.id !== 'string' || !Array.isArray(fleet.attempts) || !Array.isArray(fleet.runs)) {
        evidence.skipped.push({ path: rel, reason: 'not a fleet record (no id, runs and attempts)' });
        continue;
      }
      evidence.fleets.push({ record: fleet as FleetRecord, path: rel });
    }
  }
}

/** What verify last measured of each package the runs name (the newest verify of it, if any). */
async function readUsages(runs: EvidenceRun[]): Promise<EvidenceUsage[]> {
  const packages = [...new Set(runs.map((r) => r.record.package).filter((p): p is string => Boolean(p)))];
  const found: EvidenceUsage[] = [];
  for (const pkg of packages.sort()) {
    const path = join(pkg, '.uniprove', 'verify', 'rusage.json');
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    const usage = await readUsage(path);
    if (!usage) continue;
    found.push({ package: pkg, usage, measuredAt: info.mtime.toISOString() });
  }
  return found;
}

/**
 * Read a runs folder: every record and fleet record in its folders (runs in the order of their ids, which sort
 * by time), and verify's figures of their packages. Throws E_NOT_FOUND when the folder is missing or holds
 * neither.
 */
export async function readEvidence(runsDir: string): Promise<Evidence> {
  await checkRunsDir(runsDir);
  const evidence: Evidence = { runsDir, runs: [], fleets: [], usage: [], skipped: [] };
  const entries = await readdir(runsDir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    throw new UniproveError(
      error.code === 'EACCES' || error.code === 'EPERM' ? 'E_PERMISSION' : 'E_NOT_FOUND',
      {
        message: `cannot list runs folder ${runsDir} (${error.code ?? error.message})`,
        hint: 'Give a runs folder this user can read (`ls -ld` it), or run as its owner.',
        cause: error,
      },
    );
  });
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    await readEntry(runsDir, entry.name, evidence);
  }
  if (evidence.runs.length === 0 && evidence.fleets.length === 0) {
    const skipped = evidence.skipped.length
      ? ` (${evidence.skipped.length} unreadable: ${evidence.skipped[0]?.path}: ${evidence.skipped[0]?.reason})`
      : '';
    throw new UniproveError('E_NOT_FOUND', {
      message: `runs folder ${runsDir} holds no run records (no <id>/record.json nor <fleet-id>/fleet.json)${skipped}`,
      hint: 'Make a run first (`uniprove run demo`), or pass the folder a run kept its records in (--runs-dir).',
      details: { runsDir, skipped: evidence.skipped },
    });
  }
  evidence.runs.sort((a, b) => a.record.id.localeCompare(b.record.id));
  evidence.usage = await readUsages(evidence.runs);
  return evidence;
}

/**
 * What a run reads from its console, whatever machine printed it: the proofs between the recipe's markers (each
 * with its sha256), the Nanos trace lines (trace.log), the findings of `uniprove debug`, a full guest disk.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isUniproveError } from '../errors.js';
import { sha256Of } from '../hash.js';
import type { Recipe } from '../recipe/schema.js';
import { CONSOLE_LOG, type RunRecord } from '../record/record.js';

/** Nanos trace lines: `[tid] call(...) = ret`, indented kernel trace, resumes, summaries, missing files. */
export function isTraceLine(line: string): boolean {
  return (
    /^\[\d+\]\s+\S/.test(line) ||
    /^\s{2,}\S/.test(line) ||
    /<\.\.\. \w+ resumed>|<unfinished \.\.\.>/.test(line) ||
    /^missing_files_(begin|end)$/.test(line) ||
    /^\s*(% time|syscall|-{6})/.test(line) ||
    /^\s*\w+\s+\d+ calls?(, \d+ errors?)?/.test(line)
  );
}

/** Text between `begin` and `end` marker lines, each block once. */
export function extractConsoleBlocks(text: string, begin: string, end: string): string[] {
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (current === undefined) {
      if (line.trim() === begin) current = [];
    } else if (line.trim() === end) {
      blocks.push(`${current.join('\n')}\n`);
      current = undefined;
    } else current.push(line);
  }
  return blocks;
}

/** The console so far ('' when there is none). */
export async function readConsole(record: RunRecord): Promise<string> {
  return readFile(join(record.dir, CONSOLE_LOG), 'utf8').catch(() => '');
}

/**
 * Keep each proof printed between the recipe's markers as proofs/console-proof[-N].txt with its sha256.
 * Returns how many there were; warns when there was none and one was due (`due`: the prover exited 0, or the
 * platform gives no exit status, so the proof is the only sign of success).
 */
export async function collectConsoleProofs(
  record: RunRecord,
  proof: Recipe['proof'],
  due: 'exited-0' | 'no-status' | false,
): Promise<number> {
  if (proof.kind !== 'console') return 0;
  const blocks = extractConsoleBlocks(await readConsole(record), proof.begin, proof.end);
  const proofsDir = join(record.dir, 'proofs');
  for (const [i, block] of blocks.entries()) {
    await mkdir(proofsDir, { recursive: true });
    const file = join(proofsDir, blocks.length === 1 ? 'console-proof.txt' : `console-proof-${i + 1}.txt`);
    await writeFile(file, block);
    record.proofs.push({
      path: relative(record.dir, file),
      sha256: sha256Of(block),
      bytes: Buffer.byteLength(block),
      source: 'console',
    });
  }
  if (blocks.length === 0 && due) {
    record.warnings.push({
      code: 'proof-missing',
      message:
        due === 'exited-0'
          ? `the prover exited 0 but printed no proof between ${proof.begin} and ${proof.end}`
          : `the console has no proof between ${proof.begin} and ${proof.end}`,
    });
  }
  return blocks.length;
}

/** trace.log: the Nanos trace lines of the console (--trace). */
export async function writeTraceLog(record: RunRecord): Promise<void> {
  const lines = (await readConsole(record)).split('\n').filter(isTraceLine);
  await writeFile(join(record.dir, 'trace.log'), lines.length ? `${lines.join('\n')}\n` : '');
  record.files.trace = 'trace.log';
}

/** What diagnoseLogs throws for a console with nothing to read: the VM died before printing, or never started. */
const UNREADABLE_CONSOLE = new Set(['E_LOG_INPUT', 'E_NOT_FOUND']);

/** The findings `uniprove debug` would give on this console, into the record. */
export async function addFindings(record: RunRecord, signal?: AbortSignal): Promise<void> {
  const { diagnoseLogs } = await import('../diagnose/index.js');
  try {
    const result = await diagnoseLogs({
      logs: [join(record.dir, CONSOLE_LOG)],
      ...(signal ? { signal } : {}),
    });
    record.findings = result.findings;
  } catch (error) {
    // An empty or absent console has nothing to say, and the record still has the exit status; anything else
    // (a bug in a reader, an abort) is not hidden here.
    if (!isUniproveError(error) || !UNREADABLE_CONSOLE.has(error.code)) throw error;
    record.warnings.push({ code: 'no-findings', message: `the console was not diagnosed: ${error.message}` });
  }
}

/** A warning when the guest ran out of disk. */
export async function warnDiskFull(record: RunRecord): Promise<void> {
  if (/No space left on device|ENOSPC/.test(await readConsole(record))) {
    record.warnings.push({
      code: 'disk-full',
      message:
        'the prover ran out of disk in the guest ("No space left on device"): give the image more room with --image-size (Ops BaseVolumeSz), or the volume a bigger size',
    });
  }
}

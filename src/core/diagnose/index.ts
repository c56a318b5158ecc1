/**
 * `uniprove debug`: read console and trace logs of a unikernel that died,
 * say what it needed and did not get, and what to do about it.
 */
import { basename } from 'node:path';
import { UniproveError } from '../errors.js';
import type { OnProgress } from '../progress.js';
import type { CreateLogReader, LogFormat } from './events.js';
import { Diagnoser, type Finding } from './findings.js';
import type { ImageContents } from './image-contents.js';
import { createDefaultLocate, type Locate } from './locate.js';
import { createNanosReader } from './nanos-log.js';
import { readLogLines } from './read-log.js';
import { createStraceReader, detectLogFormat } from './strace-log.js';

export interface DiagnoseOptions {
  /** Log files: Nanos consoles (with or without trace output) or host strace logs. */
  logs: string[];
  /** Finds host files for misses; default: createDefaultLocate({ roots }). */
  locate?: Locate;
  /** Folders to search for missing files when `locate` is not given. */
  roots?: string[];
  /** With the default locate, also search this host's libraries (default true). */
  hostSearch?: boolean;
  /** What the image held, when known (a package, a Nanos manifest). */
  image?: ImageContents;
  /** Force a format instead of detecting it per file. */
  format?: LogFormat;
  /** Readers by format; replace one to plug in another parser (the shared strace parser). */
  readers?: Partial<Record<LogFormat, CreateLogReader>>;
  /** How a log is named in evidence lines; default its basename. */
  label?: (path: string) => string;
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

export interface DiagnoseWarning {
  code: 'log-cut-off' | 'long-lines' | 'too-many-searches';
  message: string;
  log?: string;
}

export interface DiagnosedLog {
  path: string;
  format: LogFormat;
  bytes: number;
  lines: number;
  endsMidLine: boolean;
}

export interface DiagnoseResult {
  findings: Finding[];
  warnings: DiagnoseWarning[];
  logs: DiagnosedLog[];
}

const DEFAULT_READERS: Record<LogFormat, CreateLogReader> = {
  nanos: createNanosReader,
  strace: createStraceReader,
};

/** Read every log and diagnose why the program died. */
export async function diagnoseLogs(options: DiagnoseOptions): Promise<DiagnoseResult> {
  if (options.logs.length === 0) {
    throw new UniproveError('E_USAGE', {
      message: 'no log given',
      hint: 'uniprove debug console.log [trace.log ...]',
    });
  }
  const readers = { ...DEFAULT_READERS, ...options.readers };
  const diagnoser = new Diagnoser(options.image);
  const warnings: DiagnoseWarning[] = [];
  const logs: DiagnosedLog[] = [];
  const label = options.label ?? ((p: string) => basename(p));
  for (const path of options.logs) {
    const name = label(path);
    let format: LogFormat = options.format ?? 'nanos';
    let feed: ((text: string, lineNo: number) => void) | undefined;
    let reader: ReturnType<CreateLogReader> | undefined;
    options.onProgress?.({ kind: 'step-start', step: 'read log', detail: path });
    const status = await readLogLines(
      path,
      (sample) => {
        format = options.format ?? detectLogFormat(sample);
        diagnoser.startLog(name);
        reader = readers[format](name, diagnoser.event);
        feed = reader.line;
        return feed;
      },
      { signal: options.signal },
    );
    reader?.end(status.endsMidLine);
    diagnoser.endLog();
    options.onProgress?.({
      kind: 'step-done',
      step: 'read log',
      detail: `${path}: ${status.lines} lines, ${format}`,
    });
    logs.push({ path, format, bytes: status.bytes, lines: status.lines, endsMidLine: status.endsMidLine });
    if (status.endsMidLine) {
      warnings.push({
        code: 'log-cut-off',
        log: path,
        message: `${path} ends in the middle of a line: the log was cut off (the VM was killed, or the copy is incomplete); what it holds was read.`,
      });
    }
    if (status.longLines > 0) {
      warnings.push({
        code: 'long-lines',
        log: path,
        message: `${path} has ${status.longLines} line(s) longer than 64 KiB; only their start was read.`,
      });
    }
  }
  if (diagnoser.droppedSearches > 0) {
    warnings.push({
      code: 'too-many-searches',
      message: `${diagnoser.droppedSearches} failed opens were not followed: more than 10 000 different names were being searched at once.`,
    });
  }
  const locate =
    options.locate ?? createDefaultLocate({ roots: options.roots ?? [], host: options.hostSearch ?? true });
  const findings = await diagnoser.findings(locate);
  return { findings, warnings, logs };
}

export type { CreateLogReader, EmitEvent, LogEvent, LogFormat, LogLine, LogReader } from './events.js';
export type { Finding, FindingKind, FixEntry, FixFolder, Severity } from './findings.js';
export { Diagnoser, fixEntriesFromFindings, fixFoldersFromFindings } from './findings.js';
export type { ImageContents, ImageMount } from './image-contents.js';
export { parseNanosManifest } from './image-contents.js';
export type { DefaultLocateOptions, Locate, LocateContext, LocateKind, LocateResult } from './locate.js';
export {
  createDefaultLocate,
  GUEST_LIBRARY_DIRS,
  guestLibraryPath,
  locateNothing,
  readLdCacheEntries,
} from './locate.js';
export { createNanosReader } from './nanos-log.js';
export { looksBinary, readLogLines } from './read-log.js';
export { createStraceReader, detectLogFormat } from './strace-log.js';

/**
 * A thin typed wrapper over the Ops CLI's volume commands (local/onprem
 * volumes in ~/.ops/volumes/<name>:<uuid>.raw). Every call goes through exec.ts.
 */

import { stripVTControlCharacters } from 'node:util';
import { isUniproveError, UniproveError } from '../errors.js';
import { run } from '../exec.js';
import { OPS_INSTALL_HINT as INSTALL_HINT, type OpsOptions, opsProgram } from './build.js';

export type { OpsOptions } from './build.js';

/** One row of `ops volume list`. */
export interface OpsVolume {
  uuid: string;
  name: string;
  status: string;
  size: string;
  /** The .raw file (for local volumes). */
  location: string;
  created: string;
  attached: string;
}

function execOptions(options: OpsOptions) {
  return {
    installHint: INSTALL_HINT,
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.env ? { env: options.env } : {}),
    timeoutReport: {
      hint: 'Ops did not answer in time: run the command by hand to see where it stops (a first run may be downloading a Nanos release; `uniprove doctor` checks ~/.ops).',
    },
  };
}

/**
 * Parse the table `ops volume list` prints (tablewriter, row lines on). Cells
 * that tablewriter wrapped over several lines are joined with a space.
 */
export function parseOpsVolumeTable(text: string): OpsVolume[] {
  const rows: string[][] = [];
  let current: string[] | undefined;
  for (const raw of stripVTControlCharacters(text).split('\n')) {
    const line = raw.trim();
    if (line.startsWith('+') || line.startsWith('-')) {
      if (current) rows.push(current);
      current = undefined;
      continue;
    }
    if (!line.startsWith('|')) continue;
    const cells = line
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
    if (!current) current = cells;
    else current = current.map((c, i) => [c, cells[i] ?? ''].filter(Boolean).join(' '));
  }
  if (current) rows.push(current);
  const header = rows[0]?.map((h) => h.toUpperCase());
  if (!header?.includes('UUID')) return [];
  const col = (name: string) => header.findIndex((h) => h.startsWith(name));
  const idx = {
    uuid: col('UUID'),
    name: col('NAME'),
    status: col('STATUS'),
    size: col('SIZE'),
    location: col('LOCATION'),
    created: col('CREATED'),
    attached: col('ATTACHED'),
  };
  return rows.slice(1).map((cells) => {
    const get = (i: number) => (i >= 0 ? (cells[i] ?? '') : '');
    return {
      uuid: get(idx.uuid),
      name: get(idx.name),
      status: get(idx.status),
      size: get(idx.size),
      location: get(idx.location),
      created: get(idx.created),
      attached: get(idx.attached),
    };
  });
}

/** `ops volume list`, parsed. */
export async function opsVolumeList(options: OpsOptions = {}): Promise<OpsVolume[]> {
  const result = await run([await opsProgram(options), 'volume', 'list'], execOptions(options));
  return parseOpsVolumeTable(result.stdout);
}

export interface OpsVolumeCreateSpec {
  /** Volume name (its label); no ':' or '/'. */
  name: string;
  /** Folder whose contents become the volume's root. */
  dataDir: string;
  /** Size for mkfs: bytes, or a number with k, m or g (`40g`). */
  size?: string;
}

/** `ops volume create NAME -d DIR -s SIZE`; returns the new volume as `ops volume list` shows it. */
export async function opsVolumeCreate(
  spec: OpsVolumeCreateSpec,
  options: OpsOptions = {},
): Promise<OpsVolume> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(spec.name)) {
    throw new UniproveError('E_USAGE', {
      message: `volume name ${JSON.stringify(spec.name)} is not allowed`,
      hint: 'Use letters, digits, dot, dash and underscore (ops stores volumes as NAME:UUID.raw).',
    });
  }
  if (spec.size !== undefined && !/^\d+[kmg]?$/i.test(spec.size)) {
    throw new UniproveError('E_USAGE', {
      message: `volume size ${JSON.stringify(spec.size)} is not a size ops understands`,
      hint: 'Use bytes or a whole number with k, m or g, e.g. 40g or 512m.',
    });
  }
  const before = new Set((await opsVolumeList(options)).map((v) => v.uuid));
  const argv = [await opsProgram(options), 'volume', 'create', spec.name, '-d', spec.dataDir];
  if (spec.size) argv.push('-s', spec.size.toLowerCase());
  const result = await run(argv, execOptions(options)).catch((error: unknown) => {
    if (!isUniproveError(error) || error.code !== 'E_COMMAND_FAILED') throw error;
    throw new UniproveError('E_VOLUME', {
      message: `the volume ${spec.name} could not be built: ${error.message}`,
      hint: `Read Ops' output below; a full disk or a size too small for the files (-s ${spec.size ?? 'default'}) are the usual causes.`,
      cause: error,
      details: error.details,
    });
  });
  const created = (await opsVolumeList(options)).filter((v) => v.name === spec.name && !before.has(v.uuid));
  if (created.length !== 1) {
    throw new UniproveError('E_VOLUME', {
      message: `ops volume create ${spec.name} ran but ${created.length === 0 ? 'no new volume' : `${created.length} new volumes`} named ${spec.name} appeared in ops volume list`,
      hint: 'Run `ops volume list` to see what is there.',
      details: { stderrTail: (result.stderr || result.stdout).slice(-2000) },
    });
  }
  return created[0]!;
}

/** `ops volume delete NAME_OR_UUID`. */
export async function opsVolumeDelete(nameOrUuid: string, options: OpsOptions = {}): Promise<void> {
  await run([await opsProgram(options), 'volume', 'delete', nameOrUuid], execOptions(options));
}

/** What every command gets from main: output streams, the abort signal, the environment. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { opsHomeDir, opsInstallPath } from '../core/ops/build.js';
import type { Output } from './render.js';

export interface CliContext {
  out: Output;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The folder uniprove added to PATH to find ops (~/.ops/bin), when the user's PATH lacks it. */
  opsBinAdded?: string;
}

/**
 * Ops's installer (and `uniprove setup`) puts ops in ~/.ops/bin and names that folder in a shell profile,
 * which the shell running uniprove may not have read yet. Append the folder to `env.PATH` (after the user's
 * own entries, so an ops they chose still wins) and return it; undefined when nothing was added.
 */
export function addOpsBinToPath(env: NodeJS.ProcessEnv): string | undefined {
  const bin = dirname(opsInstallPath(opsHomeDir(env)));
  const path = env.PATH ?? '';
  if (path.split(delimiter).includes(bin) || !existsSync(join(bin, 'ops'))) return undefined;
  env.PATH = path ? `${path}${delimiter}${bin}` : bin;
  return bin;
}

/** The PATH the user gave uniprove, without the folder it added to find ops. */
export function userPath(ctx: CliContext): string | undefined {
  const path = ctx.env.PATH;
  if (!ctx.opsBinAdded || path === undefined) return path;
  return path
    .split(delimiter)
    .filter((dir) => dir !== ctx.opsBinAdded)
    .join(delimiter);
}

/** $UNIPROVE_CACHE, else $XDG_CACHE_HOME/uniprove, else ~/.cache/uniprove. */
export function cacheDirFrom(env: NodeJS.ProcessEnv): string {
  if (env.UNIPROVE_CACHE) return env.UNIPROVE_CACHE;
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'uniprove');
}

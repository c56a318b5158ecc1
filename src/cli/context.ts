/** What every command gets from main: output streams, the abort signal, the environment. */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UniproveError } from '../core/errors.js';
import type { Output } from './render.js';

export interface CliContext {
  out: Output;
  signal: AbortSignal;
  /**
   * Aborted on the second Ctrl-C when a command asked for it (`holdSecondInterrupt`): a fleet then deletes
   * everything at once instead of dying with its instances running. Without the ask, the second Ctrl-C quits.
   */
  force?: AbortSignal;
  holdSecondInterrupt?: () => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/**
 * $UNIPROVE_CACHE, else $XDG_CACHE_HOME/uniprove, else ~/.cache/uniprove. A variable that names a file (or a
 * path under one) is E_ENV_PATH naming the variable, before any work: not a download or write error later.
 */
export function cacheDirFrom(env: NodeJS.ProcessEnv): string {
  const [variable, dir] = env.UNIPROVE_CACHE
    ? ['UNIPROVE_CACHE', resolve(env.UNIPROVE_CACHE)]
    : env.XDG_CACHE_HOME
      ? ['XDG_CACHE_HOME', join(resolve(env.XDG_CACHE_HOME), 'uniprove')]
      : [undefined, join(env.HOME || homedir(), '.cache', 'uniprove')];
  for (let at = dir; ; at = dirname(at)) {
    const info = statSync(at, { throwIfNoEntry: false });
    if (info && !info.isDirectory()) {
      const named = variable ?? 'HOME';
      throw new UniproveError('E_ENV_PATH', {
        message: `the cache folder ${dir} (${named}) cannot be made: ${at} is a file, not a folder`,
        hint: variable
          ? `Point ${variable} at a folder (it is made if absent), or unset it to use ~/.cache/uniprove.`
          : `Remove the file ${at}, or set UNIPROVE_CACHE to a folder.`,
        details: { variable: named, path: dir },
      });
    }
    if (info || dirname(at) === at) return dir;
  }
}

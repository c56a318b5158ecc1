/** What every command gets from main: output streams, the abort signal, the environment. */
import { homedir } from 'node:os';
import { join } from 'node:path';
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

/** $UNIPROVE_CACHE, else $XDG_CACHE_HOME/uniprove, else ~/.cache/uniprove. */
export function cacheDirFrom(env: NodeJS.ProcessEnv): string {
  if (env.UNIPROVE_CACHE) return env.UNIPROVE_CACHE;
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'uniprove');
}

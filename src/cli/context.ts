/** What every command gets from main: output streams, the abort signal, the environment. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Output } from './render.js';

export interface CliContext {
  out: Output;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** $UNIPROVE_CACHE, else $XDG_CACHE_HOME/uniprove, else ~/.cache/uniprove. */
export function cacheDirFrom(env: NodeJS.ProcessEnv): string {
  if (env.UNIPROVE_CACHE) return env.UNIPROVE_CACHE;
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'uniprove');
}

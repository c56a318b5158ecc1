/** What every command gets from main: output streams, the abort signal, the environment. */
import type { Output } from './render.js';

export interface CliContext {
  out: Output;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

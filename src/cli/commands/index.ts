/** Every verb of the CLI; each file registers one command that calls one core function. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { register as gcp } from './gcp.js';

type Register = (program: Command, ctx: CliContext) => void;

const commands: Register[] = [gcp];

/** Attach every command to the program. */
export function registerCommands(program: Command, ctx: CliContext): void {
  for (const register of commands) register(program, ctx);
}

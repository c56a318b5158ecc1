/** Every verb of the CLI; each file registers one command that calls one core function. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { register as debug } from './debug.js';
import { register as discover } from './discover.js';
import { register as doctor } from './doctor.js';
import { register as gcp } from './gcp.js';
import { register as packageCommand } from './package.js';
import { register as runCommand } from './run.js';
import { register as verify } from './verify.js';
import { register as volume } from './volume.js';
import { register as why } from './why.js';

type Register = (program: Command, ctx: CliContext) => void;

const commands: Register[] = [discover, why, packageCommand, verify, runCommand, volume, debug, gcp, doctor];

/** Attach every command to the program. */
export function registerCommands(program: Command, ctx: CliContext): void {
  for (const register of commands) register(program, ctx);
}

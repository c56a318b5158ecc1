/**
 * Programs a traced program started, as `runs-programs` warnings. Nanos runs one program: fork, vfork and execve
 * fail there with ENOSYS (errno 38), so a prover that runs a helper (a subprocess, ldconfig, a compiler) fails
 * inside the unikernel however complete its package is. Discovery says so before the image is built, and does not
 * package the helpers (nor what only they loaded): they could not run there anyway.
 */
import { basename } from 'node:path';
import type { TraceSpawn } from '../strace/types.js';
import type { DiscoverWarning } from './types.js';

/** More distinct programs than this are summed up in one last warning. */
const MAX_WARNINGS = 50;
const MAX_COMMAND_CHARS = 200;

/** A command line as a user would type it, cut when long. */
function commandLine(argv: readonly string[]): string {
  const text = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return text.length > MAX_COMMAND_CHARS ? `${text.slice(0, MAX_COMMAND_CHARS)}…` : text;
}

function what(spawn: TraceSpawn): string {
  const times = spawn.count > 1 ? `, ${spawn.count} times` : '';
  const command = spawn.argv?.length ? ` (\`${commandLine(spawn.argv)}\`)` : '';
  if (spawn.syscall.startsWith('execve')) {
    const program = spawn.path === spawn.parent ? 'itself again' : spawn.path;
    return `it ran ${program}${command}${times}`;
  }
  const tried = spawn.tried ? `, and tried to run ${spawn.tried} in vain` : '';
  return `it forked a copy of itself (${spawn.syscall}) that ran no other program${tried}${times}`;
}

function fixFor(spawn: TraceSpawn): string {
  const exec = spawn.syscall.startsWith('execve');
  if (!exec && !spawn.tried) {
    return 'Do that work in threads of the one process (Python: threads, not multiprocessing)';
  }
  const program = exec ? spawn.path : (spawn.tried as string);
  const name = basename(program);
  const packaged = program === spawn.parent ? '' : `${program} is not packaged, nor what only it loaded. `;
  return `${packaged}Do the work in the program's own process instead of running ${name}, or run ${name} before the image is built and package what it produces`;
}

/** One warning per program started (by call, program and parent), in the order the trace first shows them. */
export function runsProgramsWarnings(spawns: readonly TraceSpawn[]): DiscoverWarning[] {
  const warnings = spawns.slice(0, MAX_WARNINGS).map(
    (spawn): DiscoverWarning => ({
      code: 'runs-programs',
      message: `${spawn.parent} runs other programs; inside Nanos these calls fail with ENOSYS: ${what(spawn)}. ${fixFor(spawn)} (docs/discover.md, "Programs the prover runs").`,
      path: spawn.path,
      parent: spawn.parent,
      syscall: spawn.syscall,
      ...(spawn.argv ? { argv: spawn.argv } : {}),
      count: spawn.count,
      ...(spawn.tried ? { tried: spawn.tried } : {}),
    }),
  );
  const rest = spawns.slice(MAX_WARNINGS);
  if (rest.length > 0) {
    const names = [...new Set(rest.map((s) => basename(s.path)))];
    warnings.push({
      code: 'runs-programs',
      message: `and ${rest.length} more programs were started (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}); inside Nanos these calls fail with ENOSYS`,
      count: rest.reduce((n, s) => n + s.count, 0),
    });
  }
  return warnings;
}

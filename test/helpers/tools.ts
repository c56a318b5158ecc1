/** Detect heavy tools so tests that need them run when present and skip with the reason otherwise. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The path of a program on PATH, or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** undefined when the tool is there, else the reason to print when skipping. */
export function needTool(name: string, install: string): string | undefined {
  return findTool(name) ? undefined : `${name} is not installed (${install})`;
}

/** undefined when a Nanos release is in ~/.ops, else why not. */
export function needNanos(): string | undefined {
  const ops = join(homedir(), '.ops');
  const latest = join(ops, 'latest.txt');
  if (!existsSync(latest)) return `no Nanos release: ${latest} is missing`;
  const version = readFileSync(latest, 'utf8').trim();
  if (!existsSync(join(ops, version, 'kernel.img')))
    return `no Nanos kernel at ${join(ops, version, 'kernel.img')}`;
  return undefined;
}

/** undefined when gcc can build a test program. */
export function needGcc(): string | undefined {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'gcc is not installed (apt-get install gcc)';
  }
}

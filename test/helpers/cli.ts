/** Run the built CLI as a user would: a real child process, real exit status. */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../bin/uniprove.js', import.meta.url));

/**
 * The cache CLI runs of this test file use unless a test names its own: runs keep images, KVM verdicts and
 * volume registries there, and none of it lands in the user's ~/.cache/uniprove.
 */
const TEST_CACHE = mkdtempSync(join(tmpdir(), 'uniprove-test-cache-'));
process.on('exit', () => {
  if (!process.env.UNIPROVE_KEEP_TMP) rmSync(TEST_CACHE, { recursive: true, force: true });
});

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run `uniprove ...args` and capture its output; never throws on a non-zero exit. */
export async function uniprove(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<CliRun> {
  const result = await execa(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { UNIPROVE_CACHE: TEST_CACHE, ...options.env, CI: '1' },
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
    input: options.input,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** Parse the --json output of a CLI run, with the whole output in the error when it is not JSON. */
export function parseJson<T = unknown>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch (error) {
    throw new Error(`not JSON (exit ${run.exitCode}):\n${run.stdout}\n--- stderr ---\n${run.stderr}`, {
      cause: error,
    });
  }
}

/**
 * Filecoin's benchy and its 2KiB parameters for the tests: UNIPROVE_BENCHY and UNIPROVE_BENCHY_PARAMS when
 * set, else unpacked once from the toolchain folder named by UNIPROVE_TOOLCHAIN (each archive checked against
 * its SHA256SUMS) into ~/.cache/uniprove/toolchain/<sha256>/.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findTool } from './tools.js';

/**
 * Unpack `name` of the toolchain folder (verified) with `unpack(archive, into)`; returns the folder it fills.
 * The folder is UNIPROVE_TOOLCHAIN unless `dir` names one.
 */
export function fromToolchain(
  name: string,
  unpack: (archive: string, into: string) => void,
  dir: string | undefined = process.env.UNIPROVE_TOOLCHAIN,
): string | undefined {
  if (!dir) return undefined;
  const archive = join(dir, name);
  if (!existsSync(archive)) return undefined;
  const sums = readFileSync(join(dir, 'SHA256SUMS'), 'utf8');
  const want = new RegExp(`^([0-9a-f]{64})\\s+\\*?${name.replaceAll('.', '\\.')}$`, 'm').exec(sums)?.[1];
  const got = createHash('sha256').update(readFileSync(archive)).digest('hex');
  if (got !== want)
    throw new Error(`${archive}: sha256 ${got} is not the ${want ?? '(unlisted)'} of SHA256SUMS`);
  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'uniprove', 'toolchain', got);
  if (!existsSync(cache)) {
    const staging = `${cache}.staging-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    unpack(archive, staging);
    renameSync(staging, cache);
  }
  return cache;
}

/** The benchy program, or undefined. */
export function findBenchy(): string | undefined {
  if (process.env.UNIPROVE_BENCHY) return process.env.UNIPROVE_BENCHY;
  const dir = fromToolchain('benchy-linux-amd64.xz', (archive, into) => {
    copyFileSync(archive, join(into, 'benchy.xz'));
    execFileSync('xz', ['-d', join(into, 'benchy.xz')]);
    chmodSync(join(into, 'benchy'), 0o755);
  });
  return dir ? join(dir, 'benchy') : findTool('benchy');
}

/** A folder of 2KiB Winning PoSt parameters, or undefined. */
export function findBenchyParams(): string | undefined {
  if (process.env.UNIPROVE_BENCHY_PARAMS) return process.env.UNIPROVE_BENCHY_PARAMS;
  return fromToolchain('filecoin-2KiB-winning-post-params.tar.xz', (archive, into) => {
    execFileSync('tar', ['-xJf', archive, '-C', into]);
  });
}

/**
 * The shipped benchy recipe in a folder of its own (`<dir>/benchy`), its parameter volume made from the local
 * 2KiB parameters with `uniprove volume import` (their digests are not rust-fil-proofs' public ones).
 */
export async function benchyRecipeWithLocalParams(
  dir: string,
  params: string,
  env: Record<string, string> = {},
): Promise<string> {
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const recipe = join(dir, 'benchy');
  await mkdir(recipe, { recursive: true });
  await cp(
    join(repo, 'provers', 'benchy', 'rust-fil-proofs.config.toml'),
    join(recipe, 'rust-fil-proofs.config.toml'),
  );
  const shipped = JSON.parse(await readFile(join(repo, 'provers', 'benchy', 'recipe.json'), 'utf8'));
  const cli = join(repo, 'bin', 'uniprove.js');
  const set = join(recipe, 'params.json');
  const imported = await execa(
    process.execPath,
    [cli, 'volume', 'import', params, '--name', 'benchy-local-2KiB', '--mount-path', '/tmp', '-o', set],
    { env: { ...env, CI: '1' }, reject: false },
  );
  if (imported.exitCode !== 0) throw new Error(`volume import of ${params} failed:\n${imported.stderr}`);
  await writeFile(
    join(recipe, 'recipe.json'),
    JSON.stringify({
      ...shipped,
      $schema: undefined,
      volumes: [{ set: './params.json', guestPath: '/tmp', size: '1g' }],
    }),
  );
  return recipe;
}

/** Build the demo prover (provers/demo) with the real cargo, outside the repo, once per process. */

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from './cli.js';
import { findTool, gate } from './tools.js';

export const DEMO_MANIFEST = join(REPO_ROOT, 'provers', 'demo', 'Cargo.toml');

/** Where cargo builds the demo prover: a cache shared between runs, never inside the repo. */
export function demoTargetDir(): string {
  if (process.env.UNIPROVE_CARGO_TARGET_DIR) return process.env.UNIPROVE_CARGO_TARGET_DIR;
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'uniprove', 'cargo-target');
}

function findCargo(): string | undefined {
  const rustup = join(homedir(), '.cargo', 'bin', 'cargo');
  return findTool('cargo') ?? (existsSync(rustup) ? rustup : undefined);
}

/** undefined when cargo can build the demo prover, else the reason to print when skipping. */
export function needCargo(): string | undefined {
  return gate(
    'cargo',
    findCargo()
      ? undefined
      : 'cargo is not installed (bash scripts/setup.sh installs it; or Rust with rustup: https://rustup.rs) so the demo prover cannot be built',
  );
}

let building: Promise<string | undefined> | undefined;

/**
 * Build uniprove-demo-prover in release mode with `--locked` and return the binary's path, or
 * undefined when cargo is missing (needCargo() says why). A failed build throws with cargo's
 * output: a broken prover must fail the tests, not skip them.
 */
export function buildDemoProver(): Promise<string | undefined> {
  building ??= build();
  return building;
}

async function build(): Promise<string | undefined> {
  const cargo = findCargo();
  if (!cargo) return undefined;
  const targetDir = demoTargetDir();
  const cargoBin = join(cargo, '..');
  const result = await execa(cargo, ['build', '--release', '--locked', '--manifest-path', DEMO_MANIFEST], {
    env: { CARGO_TARGET_DIR: targetDir, PATH: `${cargoBin}${delimiter}${process.env.PATH ?? ''}` },
    reject: false,
    timeout: 15 * 60_000,
  });
  if (result.exitCode !== 0) {
    const tail = String(result.stderr).split('\n').slice(-40).join('\n');
    throw new Error(`cargo build of ${DEMO_MANIFEST} failed (exit ${result.exitCode}):\n${tail}`);
  }
  const binary = join(targetDir, 'release', 'uniprove-demo-prover');
  if (!existsSync(binary)) throw new Error(`cargo reported success but ${binary} is missing`);
  return binary;
}

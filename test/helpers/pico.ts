/**
 * Brevis Pico's perf `bench` binary and the smallest guest program it proves (Pico's committed
 * perf/bench_data/pure-fibonacci-elf, which bench runs with n = 0 as `pure-fibonacci`), for the tests: UNIPROVE_PICO_BENCH and UNIPROVE_PICO_ELF when set, else
 * unpacked once from the toolchain folder (UNIPROVE_TOOLCHAIN, else ../shared/toolchain) when its README lists
 * `pico-bench-linux-amd64.xz` (checked against its SHA256SUMS).
 *
 * UNIPROVE_REQUIRE=pico turns a missing Pico into a failure; UNIPROVE_REQUIRE=all does so only when the
 * toolchain folder's README lists the build, so a CI without a Pico build keeps passing.
 */

import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromToolchain } from './benchy.js';
import { toolchainDir } from './tools.js';

/** The toolchain folder's name for the xz-compressed bench binary. */
export const PICO_BENCH_ARCHIVE = 'pico-bench-linux-amd64.xz';
/** The toolchain folder's name for the guest program. */
export const PICO_ELF = 'pico-pure-fibonacci-elf';

/** How a user without the toolchain folder gets the binary (and why this machine has none: provers/pico/README.md). */
export const PICO_BUILD =
  'build it from github.com/brevis-network/pico at f8617c9c4b540cf31f8b07f6144c93d04799f0f4 (nightly-2025-08-04: cargo build --release -p pico-perf --bin bench; it needs brevis-network/Plonky3 at f5056c94 and the vk_map_*.bin files, see provers/pico/README.md) and set UNIPROVE_PICO_BENCH and UNIPROVE_PICO_ELF (perf/bench_data/pure-fibonacci-elf), or put pico-bench-linux-amd64.xz in the toolchain folder';

/** Whether the toolchain folder's README lists the Pico build (then UNIPROVE_REQUIRE=all requires it). */
export function picoInToolchain(dir: string = toolchainDir()): boolean {
  const readme = join(dir, 'README.md');
  return existsSync(readme) && readFileSync(readme, 'utf8').includes(PICO_BENCH_ARCHIVE);
}

/** The bench program, or undefined. */
export function findPicoBench(): string | undefined {
  if (process.env.UNIPROVE_PICO_BENCH) return process.env.UNIPROVE_PICO_BENCH;
  if (!picoInToolchain()) return undefined;
  const dir = fromToolchain(
    PICO_BENCH_ARCHIVE,
    (archive, into) => {
      copyFileSync(archive, join(into, 'bench.xz'));
      execFileSync('xz', ['-d', join(into, 'bench.xz')]);
      chmodSync(join(into, 'bench'), 0o755);
    },
    toolchainDir(),
  );
  return dir ? join(dir, 'bench') : undefined;
}

/** The guest program bench proves as pure-fibonacci, or undefined. */
export function findPicoElf(): string | undefined {
  if (process.env.UNIPROVE_PICO_ELF) return process.env.UNIPROVE_PICO_ELF;
  if (!picoInToolchain()) return undefined;
  const dir = fromToolchain(
    PICO_ELF,
    (file, into) => copyFileSync(file, join(into, PICO_ELF)),
    toolchainDir(),
  );
  return dir ? join(dir, PICO_ELF) : undefined;
}

/**
 * undefined when the binary and the guest program are there, else the reason to skip; throws when
 * UNIPROVE_REQUIRE names pico, or is `all` and the toolchain folder lists the build.
 */
export function needPico(found: { bench?: string; elf?: string }): string | undefined {
  if (found.bench && found.elf) return undefined;
  const reason = `no Pico bench binary or guest program: ${PICO_BUILD}`;
  const want = (process.env.UNIPROVE_REQUIRE ?? '').split(',').map((s) => s.trim());
  if (want.includes('pico') || (want.includes('all') && picoInToolchain()))
    throw new Error(`UNIPROVE_REQUIRE names pico, but ${reason}`);
  return reason;
}

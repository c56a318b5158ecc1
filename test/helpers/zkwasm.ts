/**
 * DelphinusLab's zkWasm CLI (`zkwasm-cli`) and the wasm program it proves, for the tests: UNIPROVE_ZKWASM_CLI
 * and UNIPROVE_ZKWASM_WASM when set, else unpacked once from the toolchain folder named by UNIPROVE_TOOLCHAIN
 * (checked against its SHA256SUMS).
 */

import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromToolchain } from './benchy.js';

/** How a user without the toolchain folder gets the CLI. */
export const ZKWASM_BUILD =
  'build it from github.com/DelphinusLab/zkWasm at 4e75489e1069e8eef46c7915bd560213edc4d606 with its submodules (nightly-2023-10-08, apt-get install clang libclang-dev, `cargo update -p ec-gpu-gen`, cargo build --release --bin zkwasm-cli) and set UNIPROVE_ZKWASM_CLI and UNIPROVE_ZKWASM_WASM (crates/zkwasm/wasm/wasm_output.wasm), or set UNIPROVE_TOOLCHAIN';

/** The zkwasm-cli program, or undefined. */
export function findZkwasmCli(): string | undefined {
  if (process.env.UNIPROVE_ZKWASM_CLI) return process.env.UNIPROVE_ZKWASM_CLI;
  const dir = fromToolchain('zkwasm-cli-linux-amd64.xz', (archive, into) => {
    copyFileSync(archive, join(into, 'zkwasm-cli.xz'));
    execFileSync('xz', ['-d', join(into, 'zkwasm-cli.xz')]);
    chmodSync(join(into, 'zkwasm-cli'), 0o755);
  });
  return dir ? join(dir, 'zkwasm-cli') : undefined;
}

/** zkWasm's wasm_output.wasm (the program of its test_cli.sh), or undefined. */
export function findZkwasmWasm(): string | undefined {
  if (process.env.UNIPROVE_ZKWASM_WASM) return process.env.UNIPROVE_ZKWASM_WASM;
  const dir = fromToolchain('zkwasm-wasm_output.wasm', (archive, into) => {
    copyFileSync(archive, join(into, 'zkwasm-wasm_output.wasm'));
  });
  return dir ? join(dir, 'zkwasm-wasm_output.wasm') : undefined;
}

/**
 * Polygon Zero's type 1 prover (zk_evm's `leader` and `verifier`) and the block-3 witness for the tests:
 * UNIPROVE_ZK_EVM_LEADER, UNIPROVE_ZK_EVM_VERIFIER and UNIPROVE_ZK_EVM_WITNESS when set, else unpacked once
 * from the toolchain folder named by UNIPROVE_TOOLCHAIN (checked against its SHA256SUMS).
 */

import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromToolchain } from './benchy.js';

/** How a user without the toolchain folder gets the leader. */
export const ZK_EVM_BUILD =
  'build it from github.com/0xPolygonZero/zk_evm at ef388619ffbd5305209519a3a5bc0396185d68ac (nightly-2024-09-24: cargo build --release --bin leader --bin verifier) and set UNIPROVE_ZK_EVM_LEADER, UNIPROVE_ZK_EVM_VERIFIER and UNIPROVE_ZK_EVM_WITNESS (block 3 of artifacts/witness_b3_b6.json), or set UNIPROVE_TOOLCHAIN';

function unxz(program: string): string | undefined {
  const dir = fromToolchain(`zk_evm-${program}-linux-amd64.xz`, (archive, into) => {
    copyFileSync(archive, join(into, `${program}.xz`));
    execFileSync('xz', ['-d', join(into, `${program}.xz`)]);
    chmodSync(join(into, program), 0o755);
  });
  return dir ? join(dir, program) : undefined;
}

/** The leader program, or undefined. */
export function findZkEvmLeader(): string | undefined {
  return process.env.UNIPROVE_ZK_EVM_LEADER || unxz('leader');
}

/** The verifier program, or undefined. */
export function findZkEvmVerifier(): string | undefined {
  return process.env.UNIPROVE_ZK_EVM_VERIFIER || unxz('verifier');
}

/** The block-3 witness (a JSON array of one block prover input), or undefined. */
export function findZkEvmWitness(): string | undefined {
  if (process.env.UNIPROVE_ZK_EVM_WITNESS) return process.env.UNIPROVE_ZK_EVM_WITNESS;
  const dir = fromToolchain('zk_evm-witness-b3.json', (archive, into) => {
    copyFileSync(archive, join(into, 'zk_evm-witness-b3.json'));
  });
  return dir ? join(dir, 'zk_evm-witness-b3.json') : undefined;
}

/**
 * Set-up on a machine with rustup but no default toolchain: `cargo` on PATH is rustup's proxy, which fails ("no
 * default is configured"). Before, set-up installed Debian's cargo and then ran the proxy again, and stopped with
 * exit 3. scripts/setup-rust.sh now leaves a cargo that works on PATH: rustup's default set to a toolchain it has,
 * or Debian's Rust linked as its default. A temp RUSTUP_HOME and a PATH whose cargo is the real rustup proxy make
 * the situation; nothing of the user's rustup is touched.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const rustupBin = join(homedir(), '.cargo', 'bin', 'rustup');
const toolchains = join(homedir(), '.rustup', 'toolchains');
const installed = existsSync(toolchains) ? readdirSync(toolchains) : [];
const skip = !existsSync(rustupBin)
  ? "no rustup in ~/.cargo/bin (this test makes rustup's proxy without a default)"
  : installed.length === 0
    ? 'rustup has no toolchain installed to link'
    : undefined;
if (skip) console.log(`# setup-rust tests skipped: ${skip}`);

/** A HOME whose PATH has rustup's proxy as `cargo`, with an empty RUSTUP_HOME: "no default is configured". */
async function proxyWithoutDefault() {
  const home = await tempDir();
  const bin = join(home, 'bin');
  await mkdir(bin);
  await mkdir(join(home, 'rustup'));
  const rustup = realpathSync(rustupBin);
  await symlink(rustup, join(bin, 'rustup'));
  await symlink(rustup, join(bin, 'cargo'));
  const env = { HOME: home, RUSTUP_HOME: join(home, 'rustup'), PATH: `${bin}:/usr/bin:/bin` };
  const broken = await execa('cargo', ['--version'], { env, extendEnv: false, reject: false });
  assert.notEqual(broken.exitCode, 0);
  assert.match(broken.stderr, /no default is configured/);
  return { home, env };
}

async function setupRust(env: Record<string, string>) {
  return execa('bash', [join(REPO_ROOT, 'scripts', 'setup-rust.sh')], {
    env,
    extendEnv: false,
    reject: false,
    cwd: REPO_ROOT,
    timeout: 300_000,
  });
}

test('rustup with a toolchain but no default: set-up makes it the default and cargo works', {
  skip,
  timeout: 120_000,
}, async () => {
  const { env } = await proxyWithoutDefault();
  await execa('rustup', ['toolchain', 'link', 'uniprove-test', join(toolchains, installed[0] as string)], {
    env,
    extendEnv: false,
  });
  const r = await setupRust(env);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /rustup has toolchains but no default; making uniprove-test the default/);
  const cargo = await execa('cargo', ['--version'], { env, extendEnv: false });
  assert.match(cargo.stdout, /^cargo 1\.\d+/);
});

test("rustup with no toolchain at all: Debian's cargo is linked as rustup's default, so `cargo` on PATH works", {
  skip:
    skip ??
    (existsSync('/usr/bin/cargo') && existsSync('/usr/bin/rustc')
      ? undefined
      : "Debian's cargo is not installed (set-up would install cargo-web with apt-get: not done by a test)"),
  timeout: 120_000,
}, async () => {
  const { env } = await proxyWithoutDefault();
  const r = await setupRust(env);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /linking Debian's Rust as its default \(rustup toolchain link debian-system \/usr/);
  const cargo = await execa('cargo', ['--version'], { env, extendEnv: false });
  assert.match(cargo.stdout, /^cargo 1\.\d+/);
});

/**
 * Detect heavy tools so tests that need them run when present and skip with the reason otherwise.
 *
 * UNIPROVE_REQUIRE (CI sets it) turns a skip into a failure: `UNIPROVE_REQUIRE=ops,nanos,qemu,benchy`, or
 * `all` for every tool a test asks for. A test file whose required tool is missing then fails as it loads,
 * naming the tool and how to install it, instead of skipping in silence. Only what no machine here can have
 * (working KVM) is never required.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The tools UNIPROVE_REQUIRE names ('all' for every one). */
function required(): Set<string> {
  return new Set(
    (process.env.UNIPROVE_REQUIRE ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** The name a tool goes by in UNIPROVE_REQUIRE: qemu-system-x86_64 and qemu-img are `qemu`. */
function requireKey(name: string): string {
  return name.startsWith('qemu') ? 'qemu' : name;
}

/**
 * The reason to skip, or undefined when there is none; throws when UNIPROVE_REQUIRE names the tool, so the
 * test file fails instead of skipping.
 */
export function gate(tool: string, reason: string | undefined): string | undefined {
  if (reason === undefined) return undefined;
  const want = required();
  if (want.has('all') || want.has(requireKey(tool))) {
    throw new Error(`UNIPROVE_REQUIRE names ${requireKey(tool)}, but ${reason}`);
  }
  return reason;
}

/** The path of a program on PATH (ops also in ~/.ops/bin, where `uniprove setup` puts it), or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  if (name === 'ops' && existsSync(join(opsHome(), 'bin', 'ops'))) return join(opsHome(), 'bin', 'ops');
  return undefined;
}

function opsHome(): string {
  return join(process.env.OPS_HOME || homedir(), '.ops');
}

/** undefined when the tool is there, else the reason to print when skipping. */
export function needTool(name: string, install: string): string | undefined {
  return gate(name, findTool(name) ? undefined : `${name} is not installed (${install})`);
}

/** Ops, for tests that run it: installed by `uniprove setup`. */
export function needOps(): string | undefined {
  return needTool('ops', 'bash scripts/setup.sh, or uniprove setup, installs it into ~/.ops/bin');
}

/** QEMU, for tests that boot Nanos. */
export function needQemu(): string | undefined {
  return needTool('qemu-system-x86_64', 'apt-get install qemu-system-x86; bash scripts/setup.sh installs it');
}

/** undefined when a Nanos release is in ~/.ops, else why not. */
export function needNanos(): string | undefined {
  const ops = opsHome();
  const latest = join(ops, 'latest.txt');
  const fix = 'bash scripts/setup.sh, or uniprove setup, installs one';
  if (!existsSync(latest)) return gate('nanos', `no Nanos release: ${latest} is missing (${fix})`);
  const version = readFileSync(latest, 'utf8').trim();
  if (!existsSync(join(ops, version, 'kernel.img')))
    return gate('nanos', `no Nanos kernel at ${join(ops, version, 'kernel.img')} (${fix})`);
  return undefined;
}

/** Everything a test that boots Nanos needs: ops, a Nanos release and QEMU. */
export function needUnikernel(): string | undefined {
  return needOps() ?? needNanos() ?? needQemu();
}

/** undefined when gcc can build a test program. */
export function needGcc(): string | undefined {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return gate('gcc', 'gcc is not installed (apt-get install gcc)');
  }
}

/** The toolchain folder tests take Ops's and Nanos's files from (UNIPROVE_TOOLCHAIN, else ../shared/toolchain). */
export function toolchainDir(): string {
  return (
    process.env.UNIPROVE_TOOLCHAIN ||
    join(fileURLToPath(new URL('../../', import.meta.url)), '..', 'shared', 'toolchain')
  );
}

/** The stock Nanos 0.1.55 release tarball (it has the unmap deadlock), or undefined. */
export function stockNanosTarball(): string | undefined {
  const path = join(toolchainDir(), 'nanos-0.1.55.tar.xz');
  return existsSync(path) ? path : undefined;
}

/** undefined when the toolchain folder has the stock 0.1.55 (a kernel with the unmap deadlock), else why not. */
export function needStockNanos(): string | undefined {
  return gate(
    'nanos-stock',
    stockNanosTarball()
      ? undefined
      : `no stock Nanos 0.1.55 at ${join(toolchainDir(), 'nanos-0.1.55.tar.xz')} (the toolchain folder keeps it as a kernel with the unmap deadlock)`,
  );
}

/**
 * A HOME whose ~/.ops runs the stock Nanos 0.1.55 (unpacked from the toolchain folder) with this user's ops and
 * common.tar.gz: a machine whose kernel has the unmap deadlock.
 */
export async function stockNanosHome(home: string): Promise<string> {
  const { copyFile, mkdir, symlink, writeFile } = await import('node:fs/promises');
  const ops = join(home, '.ops');
  await mkdir(join(ops, 'bin'), { recursive: true });
  execFileSync('tar', ['-xJf', stockNanosTarball() as string, '-C', ops]);
  await writeFile(join(ops, 'latest.txt'), '0.1.55\n');
  await symlink(findTool('ops') as string, join(ops, 'bin', 'ops'));
  await copyFile(join(opsHome(), 'common.tar.gz'), join(ops, 'common.tar.gz'));
  return home;
}

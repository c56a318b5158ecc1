/** `uniprove setup`: install QEMU, Ops, a Nanos release and common.tar.gz, so that `uniprove run` can boot Nanos. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { opsHomeDir } from '../../core/ops/build.js';
import { type SetupResult, setupToolchain } from '../../core/setup/index.js';
import type { CliContext } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines } from '../render.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('setup')
    .description(
      'Install what local unikernel runs need: QEMU (apt-get), Ops in ~/.ops/bin, a Nanos release in ~/.ops/<version>/ named in ~/.ops/latest.txt, and ~/.ops/common.tar.gz. What is installed already is kept; a toolchain folder (UNIPROVE_TOOLCHAIN) comes next, checked against its SHA256SUMS; else Ops is downloaded as its own installer does and the release comes from `ops update`.',
    )
    .option('--toolchain <dir>', 'install from this toolchain folder (default: $UNIPROVE_TOOLCHAIN)')
    .option(
      '--force',
      'replace the installed Ops, Nanos release and common.tar.gz with what the sources have',
    )
    .option('--no-qemu', 'do not install QEMU (it needs apt-get and root)')
    .option(
      '--json',
      'print { changed, ops, opsOnPath, steps: [{ part, action, source, path, version, from, detail }] }',
    )
    .addHelpText(
      'after',
      `
Every step is idempotent: a second run changes nothing and says so. A part that cannot be installed is named
with its fix, exit 3, and nothing half-installed is left (latest.txt never names a release that is not there).
Where it came from is kept in ~/.ops/uniprove-setup.json; \`uniprove doctor\` reports it.

Examples:
  $ uniprove setup                                          online: Ops's release, then \`ops update\`
  $ UNIPROVE_TOOLCHAIN=/mnt/toolchain uniprove setup        offline, from a toolchain folder
  $ uniprove setup --force --toolchain ../shared/toolchain  reinstall from that folder`,
    )
    .action(async (opts: { toolchain?: string; force?: boolean; qemu?: boolean; json?: boolean }) => {
      const result = await runSetup(ctx, opts);
      if (opts.json) printJson(ctx.out, result);
      else printLines(ctx.out, describeSetup(result, ctx));
    });
}

/** Run set-up as the CLI does (doctor --fix shares it). */
export async function runSetup(
  ctx: CliContext,
  opts: {
    toolchain?: string | undefined;
    force?: boolean | undefined;
    qemu?: boolean | undefined;
    json?: boolean | undefined;
  },
): Promise<SetupResult> {
  const toolchain = opts.toolchain ?? ctx.env.UNIPROVE_TOOLCHAIN;
  const progress = createProgress(ctx.out, { plain: true, quiet: Boolean(opts.json) });
  try {
    return await setupToolchain({
      opsHome: opsHomeDir(ctx.env),
      env: { ...ctx.env },
      ...(toolchain ? { toolchainDir: resolve(ctx.cwd, toolchain) } : {}),
      ...(opts.force ? { force: true } : {}),
      qemu: opts.qemu !== false,
      ...(ctx.env.UNIPROVE_OPS_URL ? { opsUrl: ctx.env.UNIPROVE_OPS_URL } : {}),
      onProgress: progress.onProgress,
      signal: ctx.signal,
    });
  } finally {
    await progress.done();
  }
}

/** One line a part, then what changed, then how to put ops on PATH when it is not. */
export function describeSetup(result: SetupResult, ctx: CliContext): string[] {
  const lines = result.steps.map(
    (s) =>
      `${s.part.padEnd(6)} ${s.action.padEnd(9)} ${s.path}${s.version ? ` (${s.version})` : ''}: ${s.detail}`,
  );
  lines.push(
    result.changed
      ? `set-up done: installed ${result.steps
          .filter((s) => s.action !== 'kept')
          .map((s) => s.part)
          .join(', ')}`
      : 'set-up done: everything was installed already; nothing changed',
  );
  if (!result.opsOnPath) {
    lines.push(
      `note: ${result.ops} is not on your PATH. uniprove finds it there; to run ops yourself, add to your shell profile: export PATH="${ctx.env.OPS_HOME ? '$OPS_HOME' : '$HOME'}/.ops/bin:$PATH"`,
    );
  }
  return lines;
}

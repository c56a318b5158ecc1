/** `uniprove doctor`: is this host ready to prove locally (and on Google Cloud)? */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { runDoctor } from '../../core/doctor/index.js';
import { ExitCode } from '../../core/errors.js';
import { opsHomeDir } from '../../core/ops/build.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import { printJson, printLines } from '../render.js';
import { describeSetup, runSetup } from './setup.js';
import { positiveInt } from './shared.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description(
      'Check this host for local proving runs: ops, a Nanos release, QEMU, KVM (probed), strace, disk, memory; and Google Cloud credentials.',
    )
    .option('--memory <size>', 'check that this host has the memory a recipe asks for, e.g. 4G')
    .option('--hugepages', 'check that hugepages are reserved')
    .option('--gpus <n>', 'check that this many GPUs are bound to vfio-pci', positiveInt('--gpus'))
    .option('--no-probe', 'do not boot a probe image to see whether KVM works')
    .option('--runs-dir <dir>', 'where runs are written (its disk is checked)', 'runs')
    .option(
      '--fix',
      'first install what is missing, as `uniprove setup` does (QEMU, Ops, a Nanos release), then check',
    )
    .option(
      '--toolchain <dir>',
      'with --fix: install from this toolchain folder (default: $UNIPROVE_TOOLCHAIN)',
    )
    .option('--json', 'print { ok, checks: [{ name, ok, detail, fix, required }] } (and setup, with --fix)')
    .addHelpText(
      'after',
      `
Exit status: 0 when every required check passed (ops, nanos, qemu, disk; memory, hugepages and gpus when asked),
3 otherwise. KVM, strace and Google Cloud are reported but not required: runs fall back to TCG without KVM.

Examples:
  $ uniprove doctor
  $ uniprove doctor --fix                  install QEMU, Ops and a Nanos release first (see uniprove setup)
  $ uniprove doctor --memory 16G --json`,
    )
    .action(async (opts) => {
      // --fix applies the fixes the checks name for ops, nanos and qemu: that is set-up.
      const fixed = opts.fix
        ? await runSetup(ctx, { toolchain: opts.toolchain, json: opts.json })
        : undefined;
      if (fixed && !opts.json) printLines(ctx.out, describeSetup(fixed, ctx));
      const result = await runDoctor({
        opsHome: opsHomeDir(ctx.env),
        cacheDir: cacheDirFrom(ctx.env),
        runsDir: resolve(ctx.cwd, opts.runsDir),
        env: { ...ctx.env },
        ...(opts.memory ? { memory: opts.memory } : {}),
        ...(opts.hugepages ? { hugepages: true } : {}),
        ...(opts.gpus ? { gpus: opts.gpus } : {}),
        probe: opts.probe !== false,
        signal: ctx.signal,
      });
      if (opts.json)
        printJson(ctx.out, { ok: result.ok, checks: result.checks, ...(fixed ? { setup: fixed } : {}) });
      else {
        printLines(
          ctx.out,
          result.checks.flatMap((c) => [
            `${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn'} ${c.name}: ${c.detail}`,
            ...(c.ok ? [] : [`     fix: ${c.fix}`]),
          ]),
        );
        printLines(ctx.out, [result.ok ? 'ready for local runs' : 'not ready: fix the FAIL lines above']);
      }
      if (!result.ok) process.exitCode = ExitCode.environment;
    });
}

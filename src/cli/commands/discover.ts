/** `uniprove discover <binary> [-- args...]`: every file a program needs, each with its reasons. */
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import type { FamilyName } from '../../core/discover/families.js';
import { discover } from '../../core/discover/index.js';
import type { DiscoverResult } from '../../core/discover/types.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines, printWarnings } from '../render.js';
import { durationFlag, nonNegativeInt, sweepLeftBehind } from './shared.js';

// Discovery's reasons, in the order the listing shows them (symlink reasons come only from a package plan).
const ORDER = [
  'explicit',
  'interp',
  'elf-needed',
  'dlopen',
  'config-family',
  'runtime-file',
  'listed',
] as const;
const TITLES: Record<(typeof ORDER)[number], string> = {
  explicit: 'the program and files asked for',
  interp: 'the dynamic loader (PT_INTERP)',
  'elf-needed': 'libraries named in ELF headers (DT_NEEDED; what ldd shows)',
  dlopen: 'libraries loaded at run time (dlopen; ldd cannot see these)',
  'config-family': 'files of library families (configs and the libraries they name)',
  'runtime-file': 'data files read at run time',
  listed: 'files of folders it listed and read part of (--include-listed)',
};

function human(result: DiscoverResult): string[] {
  const lines: string[] = [`${result.binary}: ${result.files.length} files`];
  if (result.probe) {
    const lingered = result.probe.lingerMs ? `, lingered up to ${result.probe.lingerMs} ms after exit` : '';
    lines.push(
      `  probe: ${result.probe.argv.join(' ')} -> exit ${result.probe.exitCode} in ${(result.probe.durationMs / 1000).toFixed(2)} s${lingered}`,
    );
  }
  for (const reason of ORDER) {
    const files = result.files.filter(
      (f) =>
        f.reasons[0] === reason ||
        (f.reasons.includes(reason) &&
          !ORDER.slice(0, ORDER.indexOf(reason)).some((r) => f.reasons.includes(r))),
    );
    if (files.length === 0) continue;
    lines.push('', `${TITLES[reason]}:`);
    for (const f of files) {
      const link = f.chain.length > 1 ? ` -> ${f.chain[f.chain.length - 1]}` : '';
      const parents = f.parents.length ? `  <- ${f.parents.map((p) => p.split('/').pop()).join(', ')}` : '';
      lines.push(`  ${f.path}${link}${parents}`);
    }
  }
  return lines;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('discover')
    .argument('<binary>', 'the program to analyse')
    .argument('[args...]', 'arguments for the probe run (after --)')
    .description(
      'List every file a program needs: its ELF closure plus what it opens at run time under strace.',
    )
    .option('--root <dir>', 'resolve libraries inside this tree (a sysroot or unpacked container image)')
    .option(
      '--from-log <file>',
      'analyse an strace log you already have instead of running the program (repeat for -ff files)',
      (v: string, p: string[] = []) => [...p, v],
    )
    .option('--no-probe', 'ELF closure only: do not run the program')
    .addOption(
      new Option(
        '--timeout <duration>',
        'kill the probe after this long: seconds (120) or with a unit (90s, 15m, 6h)',
      )
        .argParser(durationFlag('--timeout'))
        .default(120_000, '2m'),
    )
    .option('--allow-failure', 'keep what the probe saw even if it exits non-zero')
    .option(
      '--trace-stats',
      'also trace stat/access/readlink: lists files the program only checked for (slower: every stat stops the program)',
    )
    .option(
      '--probe-cpu <n>',
      'run the probe on this one CPU (taskset): far less strace overhead where waking another CPU is slow (nested VMs), for single-threaded probes; a parallel program sees one CPU',
      nonNegativeInt('--probe-cpu'),
    )
    .addOption(
      new Option(
        '--linger <duration>',
        'keep the probed program alive this long after it exits (500ms, 2s; at most 60 s), so threads still at work run on and what they open is seen',
      ).argParser(durationFlag('--linger')),
    )
    .option(
      '--include-listed',
      'package whole the folders the program listed and read data files from (default: a listed-partly-packaged warning names the files left out)',
    )
    .option(
      '--family <name>',
      'add a library family: nss, gconv, opencl, openssl, cuda, ld-cache (repeat)',
      (v: string, p: string[] = []) => [...p, v],
    )
    .option('--json', 'print { binary, files: [{ path, reasons, parents }], warnings } as JSON')
    .option('-q, --quiet', 'no progress output')
    .addHelpText(
      'after',
      `
Reasons: interp (the loader), elf-needed (DT_NEEDED, what ldd shows), dlopen (opened at run time: plugins, NSS,
gconv, OpenSSL providers...), runtime-file (data the program read), explicit (asked for), config-family, listed
(a file of a folder it listed, with --include-listed).
Programs it runs (execve, fork) are warnings (runs-programs), not packaged: inside Nanos those calls fail with ENOSYS.
A folder it listed and read only part of is a warning (listed-partly-packaged) naming the files left out.
The probe runs the program under strace -f --seccomp-bpf, tracing only opens, execs, cwd changes and process
creation (what names a dependency), so most programs run within ~20% of their normal time; --trace-stats also
traces the stat family, which can make stat-heavy programs several times slower. Each traced call wakes strace on
another CPU and back: in a VM where that is slow (nested virtualisation), --probe-cpu 0 keeps both on one CPU and
cuts the overhead several times for a single-threaded probe (a Python import storm). A parallel prover then sees one
CPU and sizes its thread pools to it (rayon, Go, OpenMP): leave it off for those. Give it arguments that make it end.
A program whose other threads still open files when main returns (a database client resolving localhost) can exit
before they run: --linger 2s (recipe: probe.lingerMs) preloads a small library into the probe only that keeps the
process alive after exit, ending early once only the exiting thread is left. Not for static or Go programs.
Exit status: 0 ok, 1 the probe failed (without --allow-failure), 2 bad input, 3 strace missing, 6 probe timeout.

Examples:
  $ uniprove discover /usr/bin/python3 -- -c 'import ssl, sqlite3, ctypes'
  $ uniprove discover ./benchy --json -- winning-post --size 2KiB --fake > closure.json
  $ uniprove discover ./prover --from-log strace.log
  $ uniprove discover /usr/bin/openssl --root ./rootfs --no-probe`,
    )
    .action(async (binary: string, args: string[], opts) => {
      if (opts.probe !== false && !opts.fromLog?.length) await sweepLeftBehind(ctx);
      const progress = createProgress(ctx.out, { quiet: opts.quiet || opts.json });
      const result = await discover({
        binary: opts.root ? binary : resolve(ctx.cwd, binary),
        args,
        cwd: ctx.cwd,
        ...(opts.root ? { root: resolve(ctx.cwd, opts.root) } : {}),
        probe: opts.probe,
        timeoutMs: opts.timeout,
        allowFailure: Boolean(opts.allowFailure),
        ...(opts.traceStats ? { syscalls: 'full' as const } : {}),
        ...(opts.probeCpu !== undefined ? { probeCpu: opts.probeCpu as number } : {}),
        ...(opts.linger !== undefined
          ? { lingerMs: opts.linger as number, cacheDir: cacheDirFrom(ctx.env) }
          : {}),
        ...(opts.fromLog ? { fromLogs: opts.fromLog.map((f: string) => resolve(ctx.cwd, f)) } : {}),
        ...(opts.family ? { families: opts.family as FamilyName[] } : {}),
        includeListed: Boolean(opts.includeListed),
        signal: ctx.signal,
        onProgress: progress.onProgress,
      });
      await progress.done();
      if (opts.json) {
        printJson(ctx.out, {
          binary: result.binary,
          files: result.files.map((f) => ({
            path: f.path,
            reasons: f.reasons,
            parents: f.parents,
            ...(f.chain.length > 1 ? { chain: f.chain } : {}),
            ...(f.family ? { family: f.family } : {}),
          })),
          warnings: result.warnings,
          ...(result.probe ? { probe: result.probe } : {}),
        });
        return;
      }
      printWarnings(ctx.out, result.warnings);
      printLines(ctx.out, human(result));
    });
}

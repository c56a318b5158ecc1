/** `uniprove debug <log...>`: why did the unikernel die, and what to do about it. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  type Finding,
  type FixEntry,
  type FixFolder,
  fixEntriesFromFindings,
  fixFoldersFromFindings,
} from '../../core/diagnose/findings.js';
import {
  addFilesToRecipe,
  imageFromPackage,
  programOfPackage,
  recipeOfPackage,
} from '../../core/diagnose/fix.js';
import { parseNanosManifest } from '../../core/diagnose/image-contents.js';
import { createDefaultLocate, diagnoseLogs } from '../../core/diagnose/index.js';
import { createProgramLocate } from '../../core/diagnose/locate-program.js';
import { ExitCode, UniproveError } from '../../core/errors.js';
import { requireRegularFile } from '../../core/fs.js';
import { packageRecipe } from '../../core/package/index.js';
import { loadRecipe } from '../../core/recipe/load.js';
import type { CliContext } from '../context.js';
import { printJson, printLines, printWarnings } from '../render.js';
import { recipeLoadOptions } from './shared.js';

interface DebugFlags {
  json?: boolean;
  root?: string[];
  manifest?: string;
  host?: boolean;
  package?: string;
  recipe?: string;
  fix?: boolean;
}

/** What the image held, from --manifest (a record's manifest.txt or a Nanos manifest) or --package; undefined when neither is given. */
async function imageContentsFrom(
  ctx: CliContext,
  flags: DebugFlags,
): Promise<ReturnType<typeof parseNanosManifest> | undefined> {
  if (flags.manifest) {
    let text: string;
    const path = resolve(ctx.cwd, flags.manifest);
    await requireRegularFile(
      path,
      '--manifest',
      "Give the run record's manifest.txt (runs/<id>/manifest.txt) or the Nanos manifest the image was built from, or leave --manifest out.",
    );
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new UniproveError('E_NOT_FOUND', {
        message: `cannot read manifest ${flags.manifest}`,
        hint: 'Give the Nanos manifest the image was built from, or leave --manifest out.',
        cause: error,
      });
    }
    return parseNanosManifest(text);
  }
  if (flags.package) {
    return imageFromPackage(resolve(ctx.cwd, flags.package));
  }
  return undefined;
}

/** The findings (and what --fix did) as the lines `debug` prints. */
function describeDiagnosis(findings: readonly Finding[], fix: FixOutcome | undefined): string[] {
  const lines: string[] = [];
  if (findings.length === 0) {
    lines.push('No problem found in the logs.');
    lines.push(
      'If the program still fails, capture more evidence: ops run --trace (Nanos prints every system call) or --missing-files.',
    );
  }
  for (const f of findings) {
    lines.push(`${f.severity}: ${f.kind} ${f.name}`);
    lines.push(`  ${f.message}`);
    if (f.field) lines.push(`  recipe field: ${f.field}`);
    if (f.hostPath || f.guestPath) {
      lines.push(`  host: ${f.hostPath ?? '(not found on this host)'}  ->  image: ${f.guestPath ?? '?'}`);
    }
    if (f.evidence.length > 0) {
      lines.push('  evidence:');
      for (const e of f.evidence) lines.push(`    ${e}`);
    }
    lines.push(`  fix: ${f.fix}`);
    lines.push('');
  }
  if (fix) {
    if (fix.added.length === 0 && fix.addedFolders.length === 0)
      lines.push(`fix: nothing to add to ${fix.recipe}`);
    for (const a of fix.added) lines.push(`fix: added ${a.hostPath} -> ${a.guestPath} to ${fix.recipe}`);
    for (const a of fix.addedFolders)
      lines.push(`fix: added the folder ${a.guestPath} to the dirs of ${fix.recipe}`);
    for (const p of [...fix.present, ...fix.presentFolders])
      lines.push(`fix: ${p.guestPath} is already in ${fix.recipe}`);
    if (fix.package) lines.push(`fix: packaged again: ${fix.package} (${fix.files} files)`);
  }
  return lines;
}

/** Register `debug`. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('debug')
    .description(
      'Read the console and trace logs of a unikernel that died and say why: a library or file it needed and did not get (and where it must go in the image), KVM failing, exec_protection breaking the loader, an empty or read-only volume, a reboot loop, running out of memory, a crash.',
    )
    .argument('<log...>', 'Nanos console logs (ops run output, with or without --trace) or host strace logs')
    .option('--json', 'print { findings, warnings, logs } as JSON on stdout')
    .option(
      '--root <dir>',
      'a folder to search (recursively) for the files the program missed, before the host system; repeatable',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option(
      '--manifest <file>',
      "the manifest of the image the log came from (tells what the image held): a run record's manifest.txt, or a Nanos manifest",
    )
    .option('--no-host', 'do not look for missing files on this host (ld.so.cache, /lib, /usr/lib)')
    .option(
      '--package <dir>',
      'the package the image was built from (tells what the image held, and --fix packages it again)',
    )
    .option('--recipe <name>', 'the recipe of the prover (its root is searched; --fix adds to it)')
    .option(
      '--fix',
      'add the missing files to the recipe as explicit entries (and a missing working directory to its dirs), package again, and print what changed',
    )
    .addHelpText(
      'after',
      `
What it reads, in any mix, one console per file:
  - the program's own errors ("error while loading shared libraries", dlopen messages,
    "failed to map segment from shared object", "Read-only file system", ...)
  - Nanos refusing to start the program ("program startup failed on exec": a missing working
    directory, program or interpreter), each with the recipe field to change
  - Nanos trace output (ops run --trace, or manifest debugsyscalls:t): [tid] syscall(...) = result
  - missing_files_begin ... missing_files_end (ops run --missing-files, manifest missing_files:t)
  - syscall_summary tables, kernel messages, fault dumps, KVM errors from QEMU
  - host strace logs (strace -f [-o FILE]): the format is detected per file

A library searched in several folders and then found is not a miss; the last failed
attempt of a search that never succeeded is. Each finding shows its evidence lines
(log:line: text) and a concrete fix.

Exit status: 0 no error found (warnings and notes may be printed), 1 the logs show a failure
and it was diagnosed, 2 bad input (no such log, an empty or binary file).

Examples:
  $ ops run ./prover --trace 2>&1 | tee console.log; uniprove debug console.log
  $ uniprove debug console.log --root ./build/plugins --json
  $ strace -f -o trace.log ./prover args; uniprove debug trace.log
  $ uniprove debug console.log --package build/benchy --fix`,
    )
    .action(async (logs: string[], flags: DebugFlags) => {
      const image = await imageContentsFrom(ctx, flags);
      if (flags.fix && !flags.package && !flags.recipe) {
        throw new UniproveError('E_USAGE', {
          message: '--fix needs to know which recipe to change',
          hint: 'Pass --package build/<recipe> (the package the image came from) or --recipe <name>.',
        });
      }
      const recipe = flags.recipe ? await loadRecipe(flags.recipe, recipeLoadOptions(ctx, {})) : undefined;
      // The program's own library search, on this host, finds what it missed (RUNPATH $ORIGIN included).
      const programHost =
        recipe?.binary ??
        (flags.package ? await programOfPackage(resolve(ctx.cwd, flags.package)) : undefined);
      const roots = [
        ...(flags.root ?? []).map((r) => resolve(ctx.cwd, r)),
        ...(recipe?.root ? [recipe.root] : []),
      ];
      const fallback = createDefaultLocate({ roots, host: flags.host !== false });
      const locate =
        programHost && flags.host !== false
          ? await createProgramLocate({
              binary: programHost,
              ...(recipe?.root ? { root: recipe.root } : {}),
              fallback,
            })
          : fallback;
      const result = await diagnoseLogs({
        locate,
        logs: logs.map((l) => resolve(ctx.cwd, l)),
        label: (p) => logs.find((l) => resolve(ctx.cwd, l) === p) ?? p,
        roots: [
          ...(flags.root ?? []).map((r) => resolve(ctx.cwd, r)),
          ...(recipe?.root ? [recipe.root] : []),
        ],
        hostSearch: flags.host !== false,
        ...(image ? { image } : {}),
        signal: ctx.signal,
      });
      const failed = result.findings.some((f) => f.severity === 'error');
      const fix = flags.fix ? await applyFix(ctx, flags, recipe?.source, result.findings) : undefined;
      if (flags.json) {
        printJson(ctx.out, { ...result, ...(fix ? { fix } : {}) });
      } else {
        printWarnings(ctx.out, result.warnings);
        printLines(ctx.out, describeDiagnosis(result.findings, fix));
      }
      process.exitCode = failed && !fix?.package ? ExitCode.failure : ExitCode.ok;
    });
}

interface FixOutcome {
  recipe: string;
  added: FixEntry[];
  present: FixEntry[];
  addedFolders: FixFolder[];
  presentFolders: FixFolder[];
  package?: string;
  files?: number;
}

/** Add what the diagnosis found missing to the recipe, and package again when anything changed. */
async function applyFix(
  ctx: CliContext,
  flags: DebugFlags,
  recipeSource: string | undefined,
  findings: Finding[],
): Promise<FixOutcome> {
  const pkg = flags.package ? resolve(ctx.cwd, flags.package) : undefined;
  const recipeFile = recipeSource?.endsWith('.json')
    ? recipeSource
    : pkg
      ? await recipeOfPackage(pkg)
      : undefined;
  if (!recipeFile) {
    throw new UniproveError('E_USAGE', {
      message: 'the package was not made from a recipe file, so --fix has nothing to change',
      hint: 'Write a recipe (provers/<name>/recipe.json), package it, and run debug --fix with --recipe <name>.',
    });
  }
  const change = await addFilesToRecipe(
    recipeFile,
    fixEntriesFromFindings(findings),
    fixFoldersFromFindings(findings),
  );
  if (change.added.length === 0 && change.addedFolders.length === 0) return { recipe: recipeFile, ...change };
  const packaged = await packageRecipe({
    recipe: recipeFile,
    ...recipeLoadOptions(ctx, {}),
    ...(pkg ? { out: pkg } : {}),
    signal: ctx.signal,
  });
  return { recipe: recipeFile, ...change, package: packaged.package, files: packaged.files };
}

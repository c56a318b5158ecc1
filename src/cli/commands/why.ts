/** `uniprove why <file> --from <binary | discover json | package>`: the chain that pulled a file in. */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { discover } from '../../core/discover/index.js';
import { explain } from '../../core/discover/why.js';
import { UniproveError } from '../../core/errors.js';
import { notRegularFile, parseJsonFile } from '../../core/fs.js';
import { LOCK_FILE, readPackageLock } from '../../core/package/layout.js';
import type { FileReasons } from '../../core/reasons.js';
import type { CliContext } from '../context.js';
import { printJson, printLines } from '../render.js';

async function loadEntries(from: string, ctx: CliContext): Promise<FileReasons[]> {
  const path = resolve(ctx.cwd, from);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new UniproveError('E_NOT_FOUND', { message: `--from ${from} does not exist` });
  if (info.isDirectory()) {
    const lock = (await stat(join(path, LOCK_FILE)).catch(() => undefined))
      ? await readPackageLock(path)
      : undefined;
    if (!lock?.files) {
      throw new UniproveError('E_NOT_FOUND', {
        message: `${path} has no ${LOCK_FILE}`,
        hint: 'Pass a package folder made by `uniprove package`, a `discover --json` output file, or a binary.',
      });
    }
    return lock.files;
  }
  // Opening a FIFO waits for a writer: only a regular file is opened.
  if (!info.isFile()) throw notRegularFile(info, path, '--from');
  const head = Buffer.alloc(4);
  const fh = await (await import('node:fs/promises')).open(path, 'r');
  await fh.read(head, 0, 4, 0);
  await fh.close();
  if (head.toString('latin1') === '\x7fELF') {
    const result = await discover({
      binary: path,
      args: [],
      probe: false,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    return result.files;
  }
  try {
    const parsed = parseJsonFile(await readFile(path, 'utf8'), path) as { files?: FileReasons[] };
    if (Array.isArray(parsed.files)) return parsed.files;
  } catch {
    // fall through to the error below
  }
  throw new UniproveError('E_USAGE', {
    message: `--from ${from} is neither a binary, a discover JSON file nor a package folder`,
    hint: 'Save discovery with `uniprove discover BINARY --json > closure.json` and pass that file.',
  });
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('why')
    .argument('<file>', 'a path or a file name (libssl.so.3)')
    .description('Show the chain of parents that pulled a file into a closure or package.')
    .requiredOption(
      '--from <source>',
      'a binary (static closure), a `discover --json` output file, or a package folder',
    )
    .option('--json', 'print { query, path, chains } as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ uniprove why libcrypto.so.3 --from /usr/bin/python3
  $ uniprove discover ./prover --json -- --size 2KiB > closure.json && uniprove why libplugin.so --from closure.json
  $ uniprove why /lib/x86_64-linux-gnu/libgcc_s.so.1 --from build/demo`,
    )
    .action(async (file: string, opts) => {
      const result = explain(await loadEntries(opts.from, ctx), file);
      if (opts.json) {
        printJson(ctx.out, result);
        return;
      }
      const lines = [`${result.path}`];
      for (const [i, chain] of result.chains.entries()) {
        lines.push(`  ${result.chains.length > 1 ? `way ${i + 1}: ` : ''}`.trimEnd());
        for (const [depth, step] of chain.entries()) {
          // A file of a folder the program listed names who listed it: the step above.
          const above = depth > 0 ? chain[depth - 1]?.path : undefined;
          const reasons = step.reasons.map((r) => (r === 'listed' && above ? `listed by ${above}` : r));
          lines.push(
            `  ${'  '.repeat(depth)}${depth ? '└─ ' : ''}${step.path}${reasons.length ? `  (${reasons.join(', ')})` : ''}`,
          );
        }
      }
      printLines(
        ctx.out,
        lines.filter((l) => l.trim() !== ''),
      );
    });
}

/** `uniprove volume fetch|build|ls|rm|import`: parameter files, verified and cached, and Ops volumes built from them. */
import { readdir, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { isUniproveError } from '../../core/errors.js';
import { formatBytes } from '../../core/format.js';
import { parseJsonFile, writeJsonAtomic } from '../../core/fs.js';
import { buildVolume, listVolumes, loadParameterSet, removeVolume } from '../../core/volume/build.js';
import { type FetchParameterSetResult, fetchParameterSet } from '../../core/volume/fetch.js';
import {
  DEFAULT_FILECOIN_BASE_URL,
  importFilecoinParameters,
  parseSectorSize,
  toSetFile,
} from '../../core/volume/filecoin.js';
import { setFromDirectory } from '../../core/volume/from-dir.js';
import { BUILTIN_SETS_DIR, readInputFile } from '../../core/volume/spec.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines, printWarnings, renderError } from '../render.js';

/** The parameter sets shipped with uniprove. */
export const SETS_DIR = BUILTIN_SETS_DIR;

function parseJobs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new InvalidArgumentError('give a whole number from 1 to 64');
  return n;
}

function parseSector(value: string): number {
  try {
    return parseSectorSize(value);
  } catch (error) {
    throw new InvalidArgumentError(
      isUniproveError(error) ? `${error.message}. ${error.hint ?? ''}` : String(error),
    );
  }
}

function parseBaseUrl(value: string): string {
  try {
    const url = new URL(value);
    if (!['http:', 'https:', 'file:'].includes(url.protocol)) throw new Error('protocol');
  } catch {
    throw new InvalidArgumentError('give an http://, https:// or file:// URL');
  }
  return value;
}

interface FetchFlags {
  sectorSize?: number;
  baseUrl?: string;
  jobs: number;
  verify?: boolean;
  json?: boolean;
}

function fetchOptionsFrom(ctx: CliContext, flags: FetchFlags, progress: ReturnType<typeof createProgress>) {
  return {
    cacheDir: cacheDirFrom(ctx.env),
    jobs: flags.jobs,
    verify: flags.verify ? ('full' as const) : ('quick' as const),
    signal: ctx.signal,
    onProgress: progress.onProgress,
    ...(flags.baseUrl ? { baseUrl: flags.baseUrl } : {}),
  };
}

function fileJson(result: Pick<FetchParameterSetResult, 'files'>) {
  return result.files.map((f) => ({
    name: f.name,
    path: f.path,
    guestPath: f.guestPath,
    digest: f.digest,
    size: f.size,
    source: f.source,
    verified: f.verified,
  }));
}

/** With --json, a failed fetch still prints the files that made it, plus what failed and why. */
function renderFetchFailure(ctx: CliContext, error: unknown, json: boolean): number {
  if (json && isUniproveError(error) && Array.isArray(error.details.files)) {
    const details = error.details as unknown as FetchParameterSetResult;
    printJson(ctx.out, {
      files: fileJson(details),
      failed: details.failed,
      error: error.summary(),
    });
    return renderError(ctx.out, error, false);
  }
  return renderError(ctx.out, error, json);
}

function addFetchFlags(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--sector-size <size>',
        'with a parameters.json: the sector size to fetch (2KiB, 8MiB, 512MiB, 32GiB, 64GiB, or bytes)',
      ).argParser(parseSector),
    )
    .addOption(
      new Option(
        '--base-url <url>',
        `download from this server instead: a gateway (.../ipfs/, by CID), a mirror or file:// folder (by name), or a template with {cid} / {name} (default for imports: ${DEFAULT_FILECOIN_BASE_URL})`,
      ).argParser(parseBaseUrl),
    )
    .addOption(new Option('-j, --jobs <n>', 'files downloaded at once').argParser(parseJobs).default(4))
    .option('--verify', 're-hash files already in the cache instead of trusting their stamp')
    .option('--json', 'print one JSON object on stdout');
}

/** Register the `volume` command. */
/** The set a fetch or build names, with the importer options its flags give. */
function loadSetFor(ctx: CliContext, ref: string, flags: FetchFlags) {
  return loadParameterSet(ref, {
    setsDir: SETS_DIR,
    cwd: ctx.cwd,
    ...(flags.sectorSize === undefined ? {} : { sectorSize: flags.sectorSize }),
    ...(flags.baseUrl ? { baseUrl: flags.baseUrl } : {}),
  });
}

/** `volume fetch`: download and verify a set's files into the cache. */
function registerFetch(volume: Command, ctx: CliContext): void {
  addFetchFlags(
    volume
      .command('fetch')
      .argument('<set>', 'a set name from volumes/, a set file, or a rust-fil-proofs parameters.json')
      .description(
        'Download the files of a set into the cache, verify each digest, resume what was interrupted.',
      ),
  ).action(async (ref: string, flags: FetchFlags) => {
    const progress = createProgress(ctx.out);
    try {
      const set = await loadSetFor(ctx, ref, flags);
      const result = await fetchParameterSet(set, fetchOptionsFrom(ctx, flags, progress));
      await progress.done();
      if (flags.json) {
        printJson(ctx.out, {
          set: result.set,
          setDigest: result.setDigest,
          files: fileJson(result),
          bytesDownloaded: result.bytesDownloaded,
        });
      } else {
        printLines(
          ctx.out,
          result.files.map(
            (f) =>
              `${f.source === 'cache' ? 'cached ' : 'fetched'}  ${formatBytes(f.size).padStart(10)}  ${f.name}`,
          ),
        );
        printLines(ctx.out, [`${result.files.length} files verified in ${cacheDirFrom(ctx.env)}`]);
      }
    } catch (error) {
      await progress.done();
      process.exitCode = renderFetchFailure(ctx, error, Boolean(flags.json));
    }
  });
}

/** `volume build`: fetch a set and make an Ops volume of it. */
function registerBuild(volume: Command, ctx: CliContext): void {
  addFetchFlags(
    volume
      .command('build')
      .argument('<set>', 'a set name from volumes/, a set file, or a parameters.json')
      .description(
        'Fetch the set, lay it out (hardlinks from the cache) and create an Ops volume; reuse it when built before.',
      ),
  )
    .option('-s, --size <size>', 'volume size for ops, e.g. 40g or 512m (default: the files plus room)')
    .option('-n, --name <name>', 'Ops volume name (default <set>-<digest prefix>)')
    .option('--rebuild', 'create the volume again even when one exists for this set (the old one is deleted)')
    .action(async (ref: string, flags: FetchFlags & { size?: string; name?: string; rebuild?: boolean }) => {
      const progress = createProgress(ctx.out);
      try {
        const set = await loadSetFor(ctx, ref, flags);
        const result = await buildVolume(set, {
          ...fetchOptionsFrom(ctx, flags, progress),
          ...(flags.size ? { size: flags.size } : {}),
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.rebuild ? { rebuild: true } : {}),
        });
        await progress.done();
        if (flags.json) {
          printJson(ctx.out, {
            volume: result.volume,
            reused: result.reused,
            files: fileJson(result.fetch),
            warnings: result.warnings,
          });
        } else {
          printWarnings(ctx.out, result.warnings);
          const v = result.volume;
          printLines(ctx.out, [
            `${result.reused ? 'reused' : 'built'} volume ${v.name}:${v.uuid} (${v.files} files, ${formatBytes(v.bytes)}, size ${v.size})`,
            `mount it at ${v.mountPath}: ops run ... --mounts ${v.name}:${v.mountPath}`,
          ]);
        }
      } catch (error) {
        await progress.done();
        process.exitCode = renderFetchFailure(ctx, error, Boolean(flags.json));
      }
    });
}

/** `volume ls`: the volumes uniprove built, or the parameter sets. */
function registerLs(volume: Command, ctx: CliContext): void {
  volume
    .command('ls')
    .description(
      'List the Ops volumes uniprove built (and whether ops still has them), or with --sets the parameter sets.',
    )
    .option('--sets', 'list the parameter sets in volumes/ instead')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: { sets?: boolean; json?: boolean }) => {
      if (flags.sets) {
        const names = (await readdir(SETS_DIR)).filter(
          (n) => n.endsWith('.json') && !n.endsWith('.schema.json'),
        );
        const sets = [];
        for (const n of names.sort()) {
          const set = await loadParameterSet(n.replace(/\.json$/, ''), { setsDir: SETS_DIR });
          sets.push({
            name: set.name,
            description: set.description,
            files: set.files.length,
            mountPath: set.mountPath,
            setDigest: set.setDigest,
          });
        }
        if (flags.json) printJson(ctx.out, { sets });
        else
          printLines(
            ctx.out,
            sets.map(
              (s) => `${s.name.padEnd(24)} ${String(s.files).padStart(3)} files  ${s.description ?? ''}`,
            ),
          );
        return;
      }
      const { volumes, warnings } = await listVolumes({ cacheDir: cacheDirFrom(ctx.env) });
      if (flags.json) {
        printJson(ctx.out, { volumes, warnings });
        return;
      }
      printWarnings(ctx.out, warnings);
      if (volumes.length === 0) printLines(ctx.out, ['no volumes built yet (uniprove volume build <set>)']);
      printLines(
        ctx.out,
        volumes.map(
          (v) =>
            `${v.name}:${v.uuid}  set ${v.set}  ${v.files} files  ${formatBytes(v.bytes)}  ${v.present === false ? 'MISSING from ops' : v.present ? 'present' : 'unchecked'}`,
        ),
      );
    });
}

/** `volume rm`: delete volumes uniprove built. */
function registerRm(volume: Command, ctx: CliContext): void {
  volume
    .command('rm')
    .argument(
      '<volume>',
      'volume name, UUID, set name, or set file (a path with a slash or ending in .json, or an existing file that names no volume or set): a set file stands for the set it names',
    )
    .description('Delete Ops volumes uniprove built and forget them (the cached files stay).')
    .option('--json', 'print one JSON object on stdout')
    .action(async (ref: string, flags: { json?: boolean }) => {
      const result = await removeVolume(ref, {
        cacheDir: cacheDirFrom(ctx.env),
        cwd: ctx.cwd,
        signal: ctx.signal,
      });
      if (flags.json) printJson(ctx.out, result);
      else
        printLines(
          ctx.out,
          result.removed.map((v) => `removed ${v.name}:${v.uuid}`),
        );
    });
}

/** `volume import`: a parameter set from rust-fil-proofs' parameters.json or a folder of files. */
function registerImport(volume: Command, ctx: CliContext): void {
  volume
    .command('import')
    .argument(
      '<source>',
      "rust-fil-proofs' parameters.json or srs-inner-product.json, or a folder of parameter files",
    )
    .description(
      'Turn a rust-fil-proofs parameters.json into a parameter set, filtered by sector size; or describe a folder of files already on this host (made by paramcache, or copied to an air-gapped host) as a set with file:// URLs.',
    )
    .addOption(
      new Option(
        '--sector-size <size>',
        'keep files for this sector size (2KiB ... 64GiB, or bytes)',
      ).argParser(parseSector),
    )
    .addOption(new Option('--base-url <url>', 'where the URLs point').argParser(parseBaseUrl))
    .option('--name <name>', 'set name (default filecoin-<size>)')
    .option('--mount-path <path>', 'guest folder (default /var/tmp/filecoin-proof-parameters)')
    .option('-o, --out <file>', 'write the set here (atomically) instead of stdout')
    .option('--json', 'print one JSON object on stdout: the set, or with --out { out, files }')
    .action(
      async (
        file: string,
        flags: {
          sectorSize?: number;
          baseUrl?: string;
          name?: string;
          mountPath?: string;
          out?: string;
          json?: boolean;
        },
      ) => {
        // The set is JSON already; with --out, --json reports where it went instead of a line on stderr.
        const wrote = (files: number) => {
          if (flags.json) printJson(ctx.out, { out: resolve(ctx.cwd, flags.out as string), files });
          else ctx.out.stderr.write(`wrote ${files} files to ${flags.out}\n`);
        };
        const path = resolve(ctx.cwd, file);
        if ((await stat(path).catch(() => undefined))?.isDirectory()) {
          const spec = await setFromDirectory(path, {
            name: flags.name ?? basename(path),
            ...(flags.mountPath ? { mountPath: flags.mountPath } : {}),
            signal: ctx.signal,
          });
          if (flags.out) {
            await writeJsonAtomic(resolve(ctx.cwd, flags.out), spec, {
              what: 'the set file',
              elsewhere: 'pass --out FILE in a folder you can write, on a disk with room',
            });
            wrote(spec.files.length);
          } else printJson(ctx.out, spec);
          return;
        }
        const value = parseJsonFile(
          await readInputFile(path, 'parameters file', 'Give the path of parameters.json.'),
          path,
        );
        const set = importFilecoinParameters(value, path, {
          ...(flags.sectorSize === undefined ? {} : { sectorSize: flags.sectorSize }),
          ...(flags.baseUrl ? { baseUrl: flags.baseUrl } : {}),
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.mountPath ? { mountPath: flags.mountPath } : {}),
          sourceFile: file.split('/').pop() ?? file,
        });
        const out = toSetFile(set);
        if (flags.out) {
          await writeJsonAtomic(resolve(ctx.cwd, flags.out), out, {
            what: 'the set file',
            elsewhere: 'pass --out FILE in a folder you can write, on a disk with room',
          });
          wrote(set.files.length);
        } else printJson(ctx.out, out);
      },
    );
}

export function register(program: Command, ctx: CliContext): void {
  const volume = program
    .command('volume')
    .description('Fetch parameter files (verified, resumable, cached) and build Ops volumes from them.')
    .addHelpText(
      'after',
      `
A parameter set (volumes/<name>.json) lists files with their digest, URLs and guest path.
Files are cached by digest in $UNIPROVE_CACHE (default ~/.cache/uniprove).

Examples:
  $ uniprove volume fetch filecoin-2KiB
  $ uniprove volume fetch ./parameters.json --sector-size 32GiB --base-url https://mirror.example/params/
  $ uniprove volume fetch filecoin-2KiB --base-url file:///mnt/usb/filecoin-proof-parameters/
  $ uniprove volume build filecoin-2KiB --size 1g
  $ uniprove volume ls
  $ uniprove volume rm filecoin-2KiB
  $ uniprove volume rm ./my-params.json`,
    );
  registerFetch(volume, ctx);
  registerBuild(volume, ctx);
  registerLs(volume, ctx);
  registerRm(volume, ctx);
  registerImport(volume, ctx);
}

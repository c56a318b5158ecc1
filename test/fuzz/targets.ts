/**
 * What the fuzz suite drives in-process: each target is a reader or loader of untrusted input, an arbitrary of
 * mutated real inputs, and the call. A target passes when every input ends in a result or a UniproveError
 * (never E_INTERNAL); anything else thrown is a bug.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { diagnoseLogs, locateNothing, parseNanosManifest } from '../../src/core/diagnose/index.js';
import { parseElfBuffer } from '../../src/core/elf/parse.js';
import { loadRecipe } from '../../src/core/recipe/load.js';
import { parseStraceLog } from '../../src/core/strace/parse.js';
import { loadParameterSet } from '../../src/core/volume/build.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { buildElf } from '../helpers/elf.js';
import {
  applyByteEdits,
  applyJsonEdits,
  type ByteEdit,
  byteEdit,
  type JsonEdit,
  jsonEdit,
  type Mutated,
  mutatedInput,
} from './mutate.js';
import { REGRESSIONS } from './regressions.js';

export interface FuzzTarget<T> {
  /** Mutated inputs. */
  arbitrary: fc.Arbitrary<T>;
  /** Feed one input; a UniproveError is an answer, anything else thrown a finding. */
  run: (input: T) => Promise<unknown> | unknown;
  /** Reduced inputs of bugs found before, always run first. */
  examples?: T[];
}

const FIXTURES = join(REPO_ROOT, 'test/fixtures');

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && keep(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** A scratch folder for the inputs that must be files; removed when the process ends. */
function scratch(): string {
  // tmpfs where there is one: thousands of small writes cost less there.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'uniprove-fuzz-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const read = (paths: string[]) => paths.map((p) => new Uint8Array(readFileSync(p)));

/** Console logs (Nanos, with and without traces) and strace logs: the logs `uniprove debug` reads. */
function diagnoseTarget(): FuzzTarget<Mutated & { format: 'nanos' | 'strace' | undefined }> {
  const corpus = read([
    ...filesUnder(join(FIXTURES, 'nanos'), (n) => n.endsWith('.log')),
    ...filesUnder(join(FIXTURES, 'strace'), (n) => n.endsWith('.log')),
  ]);
  const dir = scratch();
  let n = 0;
  return {
    arbitrary: fc
      .tuple(mutatedInput(corpus.length), fc.constantFrom(undefined, 'nanos' as const, 'strace' as const))
      .map(([m, format]) => ({ ...m, format })),
    run: async (input) => {
      const log = join(dir, `console-${n++ % 4}.log`);
      writeFileSync(log, applyByteEdits(corpus[input.index] as Uint8Array, input.edits, corpus));
      return diagnoseLogs({
        logs: [log],
        locate: locateNothing,
        ...(input.format ? { format: input.format } : {}),
      });
    },
  };
}

/** Nanos manifests (`uniprove debug --manifest`): the tuple text Ops writes for an image. */
function manifestTarget(): FuzzTarget<Mutated> {
  const corpus = read(filesUnder(join(FIXTURES, 'nanos'), (n) => n === 'image.manifest'));
  return {
    arbitrary: mutatedInput(corpus.length),
    run: (input) =>
      parseNanosManifest(
        Buffer.from(applyByteEdits(corpus[input.index] as Uint8Array, input.edits, corpus)).toString('utf8'),
      ),
  };
}

/** strace logs fed as chunks split at random places (the parser carries partial lines across chunks). */
function straceTarget(): FuzzTarget<Mutated & { cuts: number[]; cwd: string | undefined; pseudo: boolean }> {
  const corpus = read([
    ...filesUnder(join(FIXTURES, 'strace'), (n) => n.endsWith('.log')),
    // Nanos traces are syscall lines too, in another dialect: good material to splice in.
    ...filesUnder(join(FIXTURES, 'nanos'), (n) => n.endsWith('.log')).slice(0, 4),
  ]);
  return {
    arbitrary: fc
      .tuple(
        mutatedInput(corpus.length),
        fc.array(fc.nat({ max: 0x7fffffff }), { maxLength: 6 }),
        fc.constantFrom(undefined, '/', '/work/x', 'relative'),
        fc.boolean(),
      )
      .map(([m, cuts, cwd, pseudo]) => ({ ...m, cuts, cwd, pseudo })),
    run: async (input) => {
      const bytes = applyByteEdits(corpus[input.index] as Uint8Array, input.edits, corpus);
      const at = [...new Set(input.cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const chunks: Uint8Array[] = [];
      let from = 0;
      for (const cut of [...at, bytes.length]) {
        chunks.push(bytes.subarray(from, cut));
        from = cut;
      }
      return parseStraceLog(
        (async function* () {
          yield* chunks;
        })(),
        { ...(input.cwd ? { cwd: input.cwd } : {}), keepPseudo: input.pseudo },
      );
    },
  };
}

/** ELF files: hand-built ones of every class, byte order and type, and real programs of this host. */
function elfTarget(): FuzzTarget<Mutated & { headerOnly: boolean }> {
  const built: Uint8Array[] = [];
  for (const cls of [32, 64] as const) {
    for (const endianness of ['little', 'big'] as const) {
      for (const type of [2, 3]) {
        built.push(
          buildElf({
            class: cls,
            endianness,
            machine: cls === 64 ? 62 : 3,
            type,
            interp: '/lib64/ld-linux-x86-64.so.2',
            needed: ['libc.so.6', 'libm.so.6'],
            soname: 'libfuzz.so.1',
            rpath: '$ORIGIN/../lib',
            runpath: '/opt/lib:$ORIGIN',
          }),
        );
      }
    }
  }
  const corpus = [...built, ...read(['/bin/true', '/usr/bin/env'].filter((p) => existsSync(p)))];
  return {
    arbitrary: fc
      .tuple(mutatedInput(corpus.length, 6), fc.boolean())
      .map(([m, headerOnly]) => ({ ...m, headerOnly })),
    run: (input) => {
      const original = corpus[input.index] as Uint8Array;
      // Half the edits land in the first 512 bytes, where the headers and tables are, of a large program too.
      const edits = input.headerOnly
        ? input.edits.map((e): ByteEdit => ('at' in e ? { ...e, at: e.at % 512 } : e))
        : input.edits;
      return parseElfBuffer(applyByteEdits(original, edits, corpus), 'fuzz.elf');
    },
  };
}

/** JSON inputs: structural edits of a real file (most), or byte edits of its text. */
interface JsonInput {
  index: number;
  json: JsonEdit[];
  bytes: ByteEdit[];
}

function jsonInput(corpusSize: number, keys: readonly string[]): fc.Arbitrary<JsonInput> {
  return fc.record({
    index: fc.nat({ max: corpusSize - 1 }),
    json: fc.array(jsonEdit(keys), { maxLength: 6 }),
    bytes: fc.oneof(
      { weight: 4, arbitrary: fc.constant<ByteEdit[]>([]) },
      { weight: 1, arbitrary: fc.array(byteEdit(corpusSize), { maxLength: 4 }) },
    ),
  });
}

function jsonText(corpus: readonly unknown[], texts: readonly Uint8Array[], input: JsonInput): Uint8Array {
  const value = applyJsonEdits(corpus[input.index], input.json);
  const text = new Uint8Array(Buffer.from(JSON.stringify(value, null, 2) ?? 'null'));
  return input.bytes.length ? applyByteEdits(text, input.bytes, texts) : text;
}

const RECIPE_KEYS = [
  'name',
  'binary',
  'build',
  'argv',
  'program',
  'args',
  'env',
  'files',
  'dirs',
  'host',
  'guest',
  'reason',
  'probe',
  'skip',
  'allowFailure',
  'timeoutSeconds',
  'cpu',
  'libraries',
  'families',
  'volumes',
  'set',
  'mountPath',
  'readOnly',
  'proof',
  'kind',
  'path',
  'begin',
  'end',
  'resources',
  'memory',
  'cpus',
  'klibs',
  'debugFlags',
  'manifestPassthrough',
  'root',
];

/** Recipes: the shipped ones and one that uses every field, loaded from a recipe.json as `package` does. */
function recipeTarget(): FuzzTarget<JsonInput> {
  const dir = scratch();
  writeFileSync(join(dir, 'prover'), readFileSync('/bin/true'));
  writeFileSync(join(dir, 'data.bin'), 'data');
  const full = {
    name: 'full',
    binary: './prover',
    program: '/bin/prover',
    args: ['prove', '--size', '2KiB'],
    env: { RUST_LOG: 'info' },
    files: [{ host: 'data.bin', guest: '/data/data.bin', reason: 'input' }],
    dirs: [{ host: '.', guest: '/srv' }],
    probe: { args: ['--fast'], timeoutSeconds: 30, allowFailure: true, cpu: 0 },
    libraries: ['libm.so.6'],
    families: ['nss', 'gconv'],
    volumes: [{ set: 'filecoin-2KiB', mountPath: '/tmp', readOnly: true }],
    proof: { kind: 'file', path: '/tmp/proof' },
    resources: { memory: '512M', cpus: 2 },
    klibs: ['tls'],
    debugFlags: ['trace'],
    manifestPassthrough: { exec_protection: 't' },
  };
  const corpus: unknown[] = [
    full,
    ...['demo', 'benchy'].map((n) =>
      JSON.parse(readFileSync(join(REPO_ROOT, 'provers', n, 'recipe.json'), 'utf8')),
    ),
  ];
  const texts = corpus.map((v) => new Uint8Array(Buffer.from(JSON.stringify(v))));
  const recipeFile = join(dir, 'recipe.json');
  return {
    arbitrary: jsonInput(corpus.length, RECIPE_KEYS),
    run: async (input) => {
      writeFileSync(recipeFile, jsonText(corpus, texts, input));
      return loadRecipe(recipeFile, { cwd: dir, proversDirs: [], pathEnv: '/usr/bin:/bin' });
    },
  };
}

const SET_KEYS = [
  'name',
  'description',
  'mountPath',
  'files',
  'path',
  'digest',
  'urls',
  'cid',
  'size',
  'source',
  'kind',
  'sectorSize',
  'sector_size',
]; // plus parameters.json's own field names, below

/** Parameter sets and rust-fil-proofs parameters.json files, loaded as `volume fetch FILE` does. */
function parameterSetTarget(): FuzzTarget<JsonInput & { sectorSize: number | undefined }> {
  const paths = [
    ...filesUnder(join(FIXTURES, 'volume/filecoin'), (n) => !n.startsWith('expected')),
    ...filesUnder(join(REPO_ROOT, 'volumes'), (n) => n.endsWith('.json') && !n.endsWith('.schema.json')),
  ];
  const corpus = paths.map((p) => JSON.parse(readFileSync(p, 'utf8')) as unknown);
  const texts = corpus.map((v) => new Uint8Array(Buffer.from(JSON.stringify(v))));
  const dir = scratch();
  const file = join(dir, 'set.json');
  return {
    arbitrary: fc
      .tuple(
        jsonInput(corpus.length, [...SET_KEYS, 'cid', 'digest', 'sector_size']),
        fc.constantFrom(undefined, 0, 2048, 8 << 20, 2 ** 35, 1, -1, Number.MAX_SAFE_INTEGER),
      )
      .map(([j, sectorSize]) => ({ ...j, sectorSize })),
    run: async (input) => {
      writeFileSync(file, jsonText(corpus, texts, input));
      return loadParameterSet(file, {
        setsDir: join(REPO_ROOT, 'volumes'),
        cwd: dir,
        ...(input.sectorSize === undefined ? {} : { sectorSize: input.sectorSize }),
      });
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: each target has its own input type; the runner only passes it back.
type AnyTarget = FuzzTarget<any>;

/** The targets by name, each made on first use (they read their corpus then). */
export const TARGETS: Record<string, () => AnyTarget> = {
  diagnose: diagnoseTarget,
  manifest: manifestTarget,
  strace: straceTarget,
  elf: elfTarget,
  recipe: recipeTarget,
  'parameter-set': parameterSetTarget,
};

/** A target with its recorded regressions as examples. */
export function makeTarget(name: string): AnyTarget {
  const make = TARGETS[name];
  if (!make) throw new Error(`no fuzz target ${name}; there are ${Object.keys(TARGETS).join(', ')}`);
  const target = make();
  return { ...target, examples: [...(target.examples ?? []), ...(REGRESSIONS[name] ?? [])] };
}

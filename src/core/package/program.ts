/**
 * The recipe's program: built when it is missing and the recipe says how, and checked to be an ELF for this
 * machine.
 */
import { stat } from 'node:fs/promises';
import { type ElfInfo, EM_AARCH64, EM_X86_64, parseElf } from '../elf/parse.js';
import { UniproveError } from '../errors.js';
import { run } from '../exec.js';
import type { OnProgress } from '../progress.js';
import type { ResolvedRecipe } from '../recipe/load.js';

export async function ensureBinary(recipe: ResolvedRecipe, onProgress: OnProgress, signal?: AbortSignal) {
  const exists = await stat(recipe.binary).then(
    () => true,
    () => false,
  );
  if (exists) return;
  if (!recipe.build) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `binary: ${recipe.binary} does not exist`,
      hint: 'Build the prover first, or pass --binary PATH.',
    });
  }
  onProgress({ kind: 'step-start', step: 'build', detail: recipe.build.argv.join(' ') });
  await run(recipe.build.argv, {
    cwd: recipe.baseDir,
    env: recipe.build.env,
    signal,
    timeoutMs: 3_600_000,
    timeoutReport: {
      what: `the recipe's build command (${recipe.build.argv.join(' ')})`,
      hint: `Run it by hand in ${recipe.baseDir} to see where it stops, or build the prover first and pass --binary.`,
    },
  });
  const built = await stat(recipe.binary).then(
    () => true,
    () => false,
  );
  if (!built) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `the build step finished but ${recipe.binary} is still missing`,
      hint: 'Make the recipe\'s "binary" point at what "build" produces.',
    });
  }
  onProgress({ kind: 'step-done', step: 'build' });
}

/** The machine each recipe `arch` names, as ELF e_machine. */
export const ARCH_MACHINES = { x86_64: EM_X86_64, aarch64: EM_AARCH64 } as const;

/** Refuse a binary that cannot be the program of a Nanos image for the recipe's machine (exit 2, with what it is). */
export async function checkProgramElf(recipe: ResolvedRecipe): Promise<ElfInfo> {
  const info = await parseElf(recipe.binary);
  const arch = recipe.arch;
  const fits =
    info.class === 64 &&
    info.endianness === 'little' &&
    info.machine === ARCH_MACHINES[arch] &&
    (info.type === 'exec' || info.type === 'dyn');
  if (fits) return info;
  const found = `a ${info.class}-bit ${info.endianness}-endian ELF ${info.type === 'rel' ? 'object file' : info.type === 'core' ? 'core dump' : info.type === 'exec' || info.isPie ? 'executable' : 'shared object'} for ${info.machineName}`;
  throw new UniproveError('E_ELF_UNSUPPORTED', {
    message: `binary: ${recipe.binary} is ${found}; a Nanos image for ${arch} runs a 64-bit little-endian executable for ${arch}`,
    hint:
      info.machine !== ARCH_MACHINES[arch] && info.class === 64
        ? `Build the prover for ${arch} (e.g. cargo build --target ${arch}-unknown-linux-gnu), or set "arch" in the recipe to the machine it is for.`
        : 'Point "binary" at the prover executable (a 64-bit ELF program); the file may be damaged: build or copy it again.',
    details: { path: recipe.binary, class: info.class, machine: info.machineName, type: info.type, arch },
  });
}

/**
 * Recipe files that are ELF objects placed at their own host path (what `debug --fix` adds):
 * discovery treats them as libraries, so what they need comes along.
 */
export async function elfFilesAtHostPath(recipe: ResolvedRecipe): Promise<string[]> {
  if (recipe.root) return [];
  const out: string[] = [];
  for (const f of recipe.files) {
    if (f.hostPath !== f.guestPath) continue;
    const elf = await parseElf(f.hostPath).catch(() => undefined);
    if (elf?.dynamic) out.push(f.hostPath);
  }
  return out;
}

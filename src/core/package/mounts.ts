import { UniproveError } from '../errors.js';
import type { ResolvedRecipe } from '../recipe/load.js';
import { loadParameterSet, volumeNameFor } from '../volume/build.js';
import { BUILTIN_SETS_DIR } from '../volume/spec.js';

/** The Ops volume mounts of the recipe's parameter sets: volume name to guest path (`:ro` when read-only). */
export async function volumeMounts(
  recipe: ResolvedRecipe,
  options: { setsDir?: string; volumeNames?: Record<string, string> },
): Promise<Record<string, string>> {
  const mounts: Record<string, string> = {};
  for (const [i, v] of recipe.volumes.entries()) {
    const set = await loadParameterSet(v.set, {
      setsDir: options.setsDir ?? BUILTIN_SETS_DIR,
      cwd: recipe.baseDir,
    }).catch((error: unknown) => {
      throw new UniproveError('E_CONFIG', {
        message: `volumes[${i}].set: ${(error as Error).message}`,
        hint: 'Name a parameter set from volumes/ (uniprove volume ls --sets) or a set file relative to the recipe.',
        cause: error,
      });
    });
    const guestPath = v.guestPath ?? set.mountPath;
    const name = options.volumeNames?.[v.set] ?? volumeNameFor(set);
    mounts[name] = v.readOnly ? `${guestPath}:ro` : guestPath;
  }
  return mounts;
}

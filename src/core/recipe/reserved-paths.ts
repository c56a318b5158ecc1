/**
 * The guest paths a package folder keeps for itself beside the image tree, which a recipe's files may not use.
 * package/layout.ts reads and writes them; recipe/load.ts refuses a recipe file placed at one.
 */

/** The package's lock: every file with its digest and reasons. */
export const LOCK_FILE = 'uniprove.lock.json';

/**
 * What a package folder holds besides the image tree, by guest path: a recipe file placed there would be
 * overwritten by the package's own (one Ops config per kind, local and gcloud; the lock; the state folder).
 */
export const PACKAGE_OWN_PATHS: Readonly<Record<string, string>> = {
  '/local.json': 'the Ops config for local runs (local.json)',
  '/gcloud.json': 'the Ops config for Google Cloud (gcloud.json)',
  [`/${LOCK_FILE}`]: `the lock file (${LOCK_FILE})`,
  '/.uniprove': 'what it remembers between runs (.uniprove/)',
};

/** What the package itself keeps at `guestPath` (or above it), or undefined when the path is free. */
export function packageOwnPath(guestPath: string): string | undefined {
  for (const [own, what] of Object.entries(PACKAGE_OWN_PATHS)) {
    if (guestPath === own || guestPath.startsWith(`${own}/`)) return what;
  }
  return undefined;
}

/**
 * The image holds what the package holds. `ops build` adds the program's shared libraries itself, found by
 * running the program's loader on the host (LD_TRACE_LOADED_OBJECTS): without a target root it puts the host's
 * /lib64/ld-linux-x86-64.so.2 and /lib/x86_64-linux-gnu/libc.so.6 over the package's own, so a package made on
 * one machine would boot with another machine's libraries. Every build therefore sets Ops's TargetRoot to the
 * package folder (package/target.ts resolveRunConfig), and its manifest is then read back here: a file taken
 * from anywhere but the package, the folders its config maps in, or Ops's own few (the files it writes for /etc/passwd, /etc/resolv.conf and
 * the hostname; its common/ certificates and libnss_dns), refuses the image before anything boots it.
 */
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import { parseNanosManifest } from '../diagnose/image-contents.js';
import { UniproveError } from '../errors.js';
import type { OpsConfig } from '../manifest/schema.js';

export interface ImageSources {
  /** The package folder `ops build` ran in. */
  packageDir: string;
  /** Ops's home (~/.ops): its common/ files and releases. */
  opsHome: string;
  /**
   * The config the image was built with: its TargetRoot (the package, or a root file system the package's
   * own config names) and its MapDirs sources (the console route's proof-out library) are read on purpose.
   */
  config?: Pick<OpsConfig, 'TargetRoot' | 'MapDirs'>;
}

/** Ops writes these three into a fresh `<program>_temp<digits>` folder of the host's temporary folder. */
const OPS_WRITTEN = new Set(['passwd', 'resolv.conf', 'hostname']);

function inside(path: string, root: string): boolean {
  const rel = relative(resolve(root), path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The image's files that came from outside the package and are not Ops's own: guest path and host path. */
export function filesFromOutside(manifest: string, where: ImageSources): { guest: string; host: string }[] {
  const { files } = parseNanosManifest(manifest);
  const root = where.config?.TargetRoot ? resolve(where.packageDir, where.config.TargetRoot) : undefined;
  // A MapDirs source is `folder/pattern`: Ops reads the folder.
  const mapped = Object.keys(where.config?.MapDirs ?? {}).map((source) =>
    dirname(resolve(where.packageDir, source)),
  );
  const outside: { guest: string; host: string }[] = [];
  for (const [guest, host] of files) {
    if (host === undefined) continue; // a symlink: its target is another entry
    const path = resolve(where.packageDir, host);
    if (inside(path, where.packageDir)) continue;
    if (root && inside(path, root)) continue;
    if (inside(path, where.opsHome)) continue;
    if (mapped.some((dir) => inside(path, dir))) continue;
    if (OPS_WRITTEN.has(basename(path)) && /_temp\d+$/.test(dirname(path))) continue;
    outside.push({ guest, host });
  }
  return outside;
}

/** Refuse an image that holds files from outside its package (E_IMAGE_NOT_PACKAGE, naming each). */
export function refuseFilesFromOutside(manifest: string, where: ImageSources): void {
  const outside = filesFromOutside(manifest, where);
  if (outside.length === 0) return;
  const shown = outside.slice(0, 8).map((f) => `${f.guest} (from ${f.host})`);
  throw new UniproveError('E_IMAGE_NOT_PACKAGE', {
    message: `the image ops built holds ${outside.length} file${outside.length === 1 ? '' : 's'} that ${outside.length === 1 ? 'is' : 'are'} not the package's: ${shown.join(', ')}${outside.length > 8 ? ', …' : ''}`,
    hint: `Ops took ${outside.length === 1 ? 'it' : 'them'} from this host, so the image would not boot what was packaged. Add ${outside.length === 1 ? 'it' : 'them'} to the recipe's files and package again, or remove the TargetRoot or Files entry in the package's config that points outside ${where.packageDir}.`,
    details: { files: outside },
  });
}

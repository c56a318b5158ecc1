/**
 * Library families: configuration files that make a program load libraries
 * by name at run time. When discovery sees a family's trigger (or the recipe
 * asks for it), the family adds its config files and every library they name,
 * so inputs the probe did not exercise still work in the image.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';

export type FamilyName = 'nss' | 'gconv' | 'opencl' | 'openssl' | 'cuda' | 'ld-cache';

/** A file a family adds, as a host path (inside the resolution root). */
export interface FamilyFile {
  path: string;
  family: FamilyName;
  /** The config file that named it, when there is one. */
  parent?: string;
  /** true for shared objects, whose own ELF closure must be pulled in. */
  isLibrary: boolean;
}

export interface FamilyContext {
  /** Prefix for host reads (a sysroot); '' for the host itself. */
  root: string;
  /** Resolve a library name the way the loader would; undefined when absent. */
  resolveLibrary: (name: string) => Promise<string | undefined>;
  /** Multiarch triplet of the program (x86_64-linux-gnu). */
  triplet: string;
}

export interface FamilyResult {
  files: FamilyFile[];
  warnings: { code: string; message: string; path?: string }[];
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function listDir(path: string): Promise<string[]> {
  return (await readdir(path).catch(() => [])).sort();
}

/** Which families a set of opened paths triggers. */
export function triggeredFamilies(paths: Iterable<string>): Set<FamilyName> {
  const found = new Set<FamilyName>();
  for (const p of paths) {
    const b = basename(p);
    if (p === '/etc/nsswitch.conf' || /^libnss_[\w-]+\.so/.test(b)) found.add('nss');
    // Loading a converter module means the program converts charsets at run time; reading the cache alone does not.
    else if (p.includes('/gconv/') && b.endsWith('.so')) found.add('gconv');
    else if (p.startsWith('/etc/OpenCL/vendors/') || /^libOpenCL\.so/.test(b)) found.add('opencl');
    else if (b === 'openssl.cnf' || p.includes('/ossl-modules/') || p.includes('/engines-'))
      found.add('openssl');
    else if (/^libcuda\.so/.test(b)) found.add('cuda');
    else if (p === '/etc/ld.so.cache') found.add('ld-cache');
  }
  return found;
}

async function nssFamily(ctx: FamilyContext, out: FamilyResult): Promise<void> {
  const conf = '/etc/nsswitch.conf';
  const text = await readFile(join(ctx.root, conf), 'utf8').catch(() => undefined);
  if (text === undefined) {
    out.warnings.push({ code: 'family-config-missing', message: `nss: ${conf} not found`, path: conf });
    return;
  }
  out.files.push({ path: conf, family: 'nss', isLibrary: false });
  const services = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^[\w]+:\s*(.*)$/.exec(line);
    if (!m?.[1]) continue;
    for (const word of m[1].replace(/\[[^\]]*\]/g, ' ').split(/\s+/))
      if (/^[\w-]+$/.test(word)) services.add(word);
  }
  for (const service of [...services].sort()) {
    const name = `libnss_${service}.so.2`;
    const path = await ctx.resolveLibrary(name);
    if (path) out.files.push({ path, family: 'nss', parent: conf, isLibrary: true });
    else if (service !== 'systemd' && service !== 'sss' && service !== 'mymachines') {
      out.warnings.push({
        code: 'family-library-missing',
        message: `nss: ${conf} names ${name}, not installed`,
        path: conf,
      });
    }
  }
}

async function gconvFamily(ctx: FamilyContext, out: FamilyResult): Promise<void> {
  const dir = `/usr/lib/${ctx.triplet}/gconv`;
  const modulesFile = `${dir}/gconv-modules`;
  const configs = [modulesFile, `${dir}/gconv-modules.cache`];
  for (const f of await listDir(join(ctx.root, dir, 'gconv-modules.d'))) {
    if (f.endsWith('.conf')) configs.push(`${dir}/gconv-modules.d/${f}`);
  }
  const modules = new Set<string>();
  for (const conf of configs) {
    if (!(await isFile(join(ctx.root, conf)))) continue;
    out.files.push({ path: conf, family: 'gconv', isLibrary: false });
    if (conf.endsWith('.cache')) continue;
    const text = await readFile(join(ctx.root, conf), 'utf8');
    for (const line of text.split('\n')) {
      const m = /^\s*module\s+\S+\s+\S+\s+(\S+)/.exec(line);
      if (m?.[1] && m[1] !== 'INTERNAL') modules.add(m[1]);
    }
  }
  if (!configs.some((c) => out.files.some((f) => f.path === c))) {
    out.warnings.push({
      code: 'family-config-missing',
      message: `gconv: ${modulesFile} not found`,
      path: modulesFile,
    });
    return;
  }
  for (const module of [...modules].sort()) {
    const path = isAbsolute(module) ? module : `${dir}/${module}.so`;
    if (await isFile(join(ctx.root, path)))
      out.files.push({ path, family: 'gconv', parent: modulesFile, isLibrary: true });
  }
}

async function openclFamily(ctx: FamilyContext, out: FamilyResult): Promise<void> {
  const dir = '/etc/OpenCL/vendors';
  const icds = (await listDir(join(ctx.root, dir))).filter((f) => f.endsWith('.icd'));
  if (icds.length === 0) {
    out.warnings.push({
      code: 'family-config-missing',
      message: `opencl: no ICD files in ${dir}`,
      path: dir,
    });
  }
  for (const icd of icds) {
    const conf = `${dir}/${icd}`;
    out.files.push({ path: conf, family: 'opencl', isLibrary: false });
    const lib = (await readFile(join(ctx.root, conf), 'utf8')).trim();
    if (!lib) continue;
    const path = isAbsolute(lib) ? lib : await ctx.resolveLibrary(lib);
    if (path && (await isFile(join(ctx.root, path))))
      out.files.push({ path, family: 'opencl', parent: conf, isLibrary: true });
    else
      out.warnings.push({
        code: 'family-library-missing',
        message: `opencl: ${conf} names ${lib}, not found`,
        path: conf,
      });
  }
  const loader = await ctx.resolveLibrary('libOpenCL.so.1');
  if (loader) out.files.push({ path: loader, family: 'opencl', isLibrary: true });
}

async function opensslFamily(ctx: FamilyContext, out: FamilyResult): Promise<void> {
  for (const conf of ['/usr/lib/ssl/openssl.cnf', '/etc/ssl/openssl.cnf']) {
    if (await isFile(join(ctx.root, conf)))
      out.files.push({ path: conf, family: 'openssl', isLibrary: false });
  }
  for (const sub of ['ossl-modules', 'engines-3']) {
    const dir = `/usr/lib/${ctx.triplet}/${sub}`;
    for (const f of await listDir(join(ctx.root, dir))) {
      if (f.endsWith('.so'))
        out.files.push({ path: `${dir}/${f}`, family: 'openssl', parent: dir, isLibrary: true });
    }
  }
}

const CUDA_LIBRARIES = [
  'libcuda.so.1',
  'libnvidia-ptxjitcompiler.so.1',
  'libnvidia-ml.so.1',
  'libnvidia-nvvm.so.4',
];

async function cudaFamily(ctx: FamilyContext, out: FamilyResult): Promise<void> {
  for (const name of CUDA_LIBRARIES) {
    const path = await ctx.resolveLibrary(name);
    if (path) out.files.push({ path, family: 'cuda', isLibrary: true });
    else
      out.warnings.push({
        code: 'family-library-missing',
        message: `cuda: ${name} is not installed on this host`,
      });
  }
}

async function ldCacheFamily(ctx: FamilyContext, out: FamilyResult): Promise<void> {
  if (await isFile(join(ctx.root, '/etc/ld.so.cache'))) {
    out.files.push({ path: '/etc/ld.so.cache', family: 'ld-cache', isLibrary: false });
  }
}

const FAMILIES: Record<FamilyName, (ctx: FamilyContext, out: FamilyResult) => Promise<void>> = {
  nss: nssFamily,
  gconv: gconvFamily,
  opencl: openclFamily,
  openssl: opensslFamily,
  cuda: cudaFamily,
  'ld-cache': ldCacheFamily,
};

/** Expand the given families into the files they need. */
export async function expandFamilies(names: Iterable<FamilyName>, ctx: FamilyContext): Promise<FamilyResult> {
  const out: FamilyResult = { files: [], warnings: [] };
  for (const name of [...new Set(names)].sort()) await FAMILIES[name](ctx, out);
  return out;
}

/**
 * A real program that needs a library only at run time: `main` dlopens
 * `libplug.so` (found through main's RUNPATH $ORIGIN/plugins), which needs
 * `libdep.so.1` (a versioned SONAME chain, found through the plugin's own
 * RUNPATH $ORIGIN). ldd on main shows neither.
 */
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { compileC } from './gcc.js';

export interface PluginFixture {
  dir: string;
  main: string;
  plugin: string;
  dep: string;
}

/** Build the fixture under `dir` (bin/main, bin/plugins/libplug.so, bin/plugins/libdep.so.1 -> libdep.so.1.0.0). */
export async function buildPluginFixture(dir: string): Promise<PluginFixture> {
  const bin = join(dir, 'bin');
  const plugins = join(bin, 'plugins');
  await mkdir(plugins, { recursive: true });
  const dep = await compileC(plugins, 'libdep.so.1.0.0', 'int dep_value(void) { return 42; }\n', [
    '-shared',
    '-fPIC',
    '-Wl,-soname,libdep.so.1',
  ]);
  await symlink('libdep.so.1.0.0', join(plugins, 'libdep.so.1'));
  await symlink('libdep.so.1', join(plugins, 'libdep.so'));
  const plugin = await compileC(
    plugins,
    'libplug.so',
    'int dep_value(void);\nint plugin_run(void) { return dep_value(); }\n',
    ['-shared', '-fPIC', `-L${plugins}`, '-ldep', '-Wl,-rpath,$ORIGIN', '-Wl,--enable-new-dtags'],
  );
  const main = await compileC(
    bin,
    'main',
    `#include <dlfcn.h>
#include <stdio.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
  void *h = dlopen("libplug.so", RTLD_NOW);
  if (!h) { fprintf(stderr, "main: %s\\n", dlerror()); return 3; }
  int (*run)(void) = (int (*)(void))dlsym(h, "plugin_run");
  int v = run();
  printf("plugin says %d\\n", v);
  mkdir("/tmp/out", 0755);
  FILE *f = fopen("/tmp/out/proof.txt", "w");
  if (!f) { perror("/tmp/out/proof.txt"); return 4; }
  fprintf(f, "proof %d\\n", v);
  fclose(f);
  return v == 42 ? 0 : 5;
}
`,
    ['-ldl', '-Wl,-rpath,$ORIGIN/plugins', '-Wl,--enable-new-dtags'],
  );
  return { dir, main, plugin, dep };
}

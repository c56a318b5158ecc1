/** The image holds what the package holds: manifests `ops build --show-debug` really printed, read back. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { filesFromOutside, refuseFilesFromOutside } from '../../src/core/image/contents.js';
import { resolveRunConfig } from '../../src/core/package/target.js';

const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../fixtures/ops-manifest/${name}`, import.meta.url)), 'utf8');
const WHERE = { packageDir: '/tmp/fresh/main/build/demo', opsHome: '/tmp/fresh/home/.ops' };

test("an image Ops built without a target root holds the host's loader and libc, and is refused naming them", () => {
  const manifest = fixture('demo-host-libs.txt');
  assert.deepEqual(
    filesFromOutside(manifest, WHERE).map((f) => f.guest),
    [
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib/x86_64-linux-gnu/libgcc_s.so.1',
      '/lib/x86_64-linux-gnu/libm.so.6',
      '/lib64/ld-linux-x86-64.so.2',
    ],
  );
  assert.throws(
    () => refuseFilesFromOutside(manifest, WHERE),
    (error: Error & { code?: string; hint?: string }) => {
      assert.equal(error.code, 'E_IMAGE_NOT_PACKAGE');
      assert.match(
        error.message,
        /holds 4 files .*\/lib64\/ld-linux-x86-64\.so\.2 \(from \/lib64\/ld-linux-x86-64\.so\.2\)/,
      );
      assert.match(error.hint ?? '', /recipe's files/);
      return true;
    },
  );
});

test('with the package as its target root every file is the package’s or Ops’s own', () => {
  const manifest = fixture('demo-target-root.txt');
  assert.deepEqual(filesFromOutside(manifest, WHERE), []);
  assert.doesNotThrow(() => refuseFilesFromOutside(manifest, WHERE));
  // Ops's common/ files are its own only where they are under its home.
  assert.deepEqual(
    filesFromOutside(manifest, { ...WHERE, opsHome: '/root/.ops' }).map((f) => f.guest),
    ['/etc/ssl/certs/ca-certificates.crt', '/lib/x86_64-linux-gnu/libnss_dns.so.2'],
  );
  // A root file system the package's config names is the package's too.
  assert.deepEqual(
    filesFromOutside(fixture('demo-host-libs.txt'), { ...WHERE, config: { TargetRoot: '/' } }),
    [],
  );
});

test('every build looks libraries up in the package (TargetRoot), unless the package names its own root', () => {
  const { config } = resolveRunConfig({ Program: 'p' }, { packageDir: 'build/demo' });
  assert.equal(config.TargetRoot, `${process.cwd()}/build/demo`);
  const own = resolveRunConfig({ Program: 'p', TargetRoot: '/srv/rootfs' }, { packageDir: 'build/demo' });
  assert.equal(own.config.TargetRoot, '/srv/rootfs');
});

/**
 * Errors raised where a host lacks what was asked for by name: KVM under `--accel kvm`, and an Ops volume that
 * `ops volume create` did not make (a stand-in `ops`, a real program, plays the failing Ops).
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isUniproveError, type UniproveError } from '../../src/core/errors.js';
import { detectAccel } from '../../src/core/machine/accel.js';
import { opsVolumeCreate } from '../../src/core/ops/volume.js';
import { tempDir } from '../helpers/tmp.js';

async function failure(promise: Promise<unknown>): Promise<UniproveError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isUniproveError(error), String(error));
    return error;
  }
  assert.fail('expected an error');
}

test('--accel kvm on a host without /dev/kvm is E_KVM (exit 3); auto falls back to TCG', async () => {
  const dir = await tempDir();
  const devKvm = join(dir, 'no-kvm');
  const error = await failure(detectAccel({ choice: 'kvm', cacheDir: dir, devKvm }));
  assert.equal(error.code, 'E_KVM');
  assert.equal(error.exitCode, 3);
  assert.match(error.message, /--accel kvm: .*no-kvm does not exist/);
  assert.match(error.hint ?? '', /leave --accel out/);
  const auto = await detectAccel({ choice: 'auto', cacheDir: dir, devKvm });
  assert.equal(auto.accel, 'tcg');
  assert.equal(auto.kvmUsable, false);
});

/** A stand-in `ops`: `volume list` prints an empty table, `volume create` does what `create` says. */
async function fakeOps(dir: string, name: string, create: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(
    path,
    `#!/bin/sh
if [ "$2" = list ]; then
  echo '+------+------+'
  echo '| UUID | NAME |'
  echo '+------+------+'
  exit 0
fi
${create}
`,
  );
  await chmod(path, 0o755);
  return path;
}

test('a volume ops could not build is E_VOLUME with what ops said; one that never appears too', async () => {
  const dir = await tempDir();
  const broken = await fakeOps(dir, 'ops-broken', 'echo "mkfs: no space left on device" >&2; exit 1');
  const error = await failure(opsVolumeCreate({ name: 'params', dataDir: dir, size: '8m' }, { ops: broken }));
  assert.equal(error.code, 'E_VOLUME');
  assert.equal(error.exitCode, 1);
  assert.match(error.message, /the volume params could not be built: .*exited with status 1/);
  assert.match(String(error.details.stderrTail), /no space left on device/);
  assert.equal((error.cause as UniproveError).code, 'E_COMMAND_FAILED');

  const silent = await fakeOps(dir, 'ops-silent', 'exit 0');
  const vanished = await failure(opsVolumeCreate({ name: 'params', dataDir: dir }, { ops: silent }));
  assert.equal(vanished.code, 'E_VOLUME');
  assert.match(vanished.message, /no new volume named params appeared/);
});

/** Building an Ops volume from a parameter set, with the real ops; skipped (with the reason) without it. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { opsVolumeDelete, opsVolumeList } from '../../src/core/ops/volume.js';
import { prepareTarget } from '../../src/core/package/target.js';
import {
  buildVolume,
  listVolumes,
  loadParameterSet,
  removeVolume,
  volumeNameFor,
} from '../../src/core/volume/build.js';
import { digestOfFile } from '../../src/core/volume/digest.js';
import { resolveParameterSet } from '../../src/core/volume/spec.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { startParamServer } from '../helpers/param-server.js';
import { tempDir } from '../helpers/tmp.js';
import { findTool, needGcc, needOps } from '../helpers/tools.js';

/** ops as installed: on PATH, or in ~/.ops/bin. */
const OPS = findTool('ops') ?? 'ops';

test('volume build makes an Ops volume holding the verified files, reuses it, and rm deletes it', {
  skip: needOps(),
  timeout: 180_000,
}, async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  const bytes = { 'p.params': randomBytes(1024 * 1024 + 5), 'p.vk': randomBytes(777) };
  for (const [name, data] of Object.entries(bytes)) await writeFile(join(src, name), data);
  const server = await startParamServer(src);
  const name = `uniprove-test-${randomBytes(4).toString('hex')}`;
  const created: string[] = [];
  try {
    const files = [];
    for (const fileName of Object.keys(bytes)) {
      files.push({
        name: fileName,
        path: fileName.endsWith('.vk') ? `keys/${fileName}` : fileName,
        digest: await digestOfFile(join(src, fileName), 'sha256'),
        urls: [`${server.url}${fileName}`],
      });
    }
    const set = resolveParameterSet({ name: 'ops-test', mountPath: '/params', files }, 'test');
    const cacheDir = join(dir, 'cache');
    const first = await buildVolume(set, { cacheDir, name, size: '8m' });
    created.push(first.volume.uuid);
    assert.equal(first.reused, false);
    assert.equal(first.volume.name, name);
    assert.match(first.volume.uuid, /^[0-9a-f-]{36}$/);

    const ls = await execa(OPS, ['volume', 'ls', name, '/keys'], { reject: false });
    assert.match(ls.stdout, /p\.vk/, ls.stdout + ls.stderr);
    const out = join(dir, 'out');
    await mkdir(out);
    await execa(OPS, ['volume', 'cp', name, '/p.params', out]);
    assert.ok((await readFile(join(out, 'p.params'))).equals(bytes['p.params']));

    const requests = server.requests.length;
    const second = await buildVolume(set, { cacheDir, name });
    assert.equal(second.reused, true);
    assert.equal(second.volume.uuid, first.volume.uuid);
    assert.equal(server.requests.length, requests, 'nothing downloaded again');

    const listed = await listVolumes({ cacheDir });
    assert.deepEqual(
      listed.volumes.map((v) => [v.name, v.uuid, v.present, v.setDigest]),
      [[name, first.volume.uuid, true, set.setDigest]],
    );
    const registry = JSON.parse(await readFile(join(cacheDir, 'volumes/registry.json'), 'utf8'));
    assert.equal(registry.volumes[0].uuid, first.volume.uuid);

    const removed = await removeVolume(name, { cacheDir });
    assert.equal(removed.removed.length, 1);
    assert.ok(!(await opsVolumeList()).some((v) => v.uuid === first.volume.uuid));
    assert.deepEqual((await listVolumes({ cacheDir })).volumes, []);
  } finally {
    const left = (await opsVolumeList().catch(() => [])).filter((v) => created.includes(v.uuid));
    for (const v of left) await opsVolumeDelete(v.uuid).catch(() => {});
    await server.close();
  }
});

test('a volume left under the same name by another cache is replaced, never doubled; a name the user chose is not touched', {
  skip: needOps(),
  timeout: 180_000,
}, async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'q.params'), randomBytes(4096));
  const server = await startParamServer(src);
  const created: string[] = [];
  try {
    const set = resolveParameterSet(
      {
        name: 'clash-test',
        mountPath: '/params',
        files: [
          {
            name: 'q.params',
            digest: await digestOfFile(join(src, 'q.params'), 'sha256'),
            urls: [`${server.url}q.params`],
          },
        ],
      },
      'test',
    );
    // The first cache builds it under the name uniprove derives from the set.
    const first = await buildVolume(set, { cacheDir: join(dir, 'cache-a'), size: '4m' });
    created.push(first.volume.uuid);
    // A second cache (a cleared ~/.cache/uniprove) knows nothing of it, and builds again.
    const second = await buildVolume(set, { cacheDir: join(dir, 'cache-b'), size: '4m' });
    created.push(second.volume.uuid);
    assert.equal(second.reused, false);
    assert.equal(second.volume.name, first.volume.name);
    const named = (await opsVolumeList()).filter((v) => v.name === first.volume.name);
    assert.deepEqual(
      named.map((v) => v.uuid),
      [second.volume.uuid],
      'one volume under the name, so a package can mount it',
    );

    // A name the user picked that another volume already has: refused, and that volume stays.
    await assert.rejects(
      buildVolume(set, { cacheDir: join(dir, 'cache-c'), name: first.volume.name }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'E_VOLUME_EXISTS');
        assert.match(error.message, new RegExp(second.volume.uuid));
        return true;
      },
    );
    assert.ok((await opsVolumeList()).some((v) => v.uuid === second.volume.uuid));

    // --rebuild in the cache that built it: a new volume replaces the old, under the same name.
    const rebuilt = await buildVolume(set, { cacheDir: join(dir, 'cache-b'), size: '4m', rebuild: true });
    created.push(rebuilt.volume.uuid);
    assert.notEqual(rebuilt.volume.uuid, second.volume.uuid);
    assert.deepEqual(
      (await opsVolumeList()).filter((v) => v.name === first.volume.name).map((v) => v.uuid),
      [rebuilt.volume.uuid],
    );
    assert.deepEqual(
      (await listVolumes({ cacheDir: join(dir, 'cache-b') })).volumes.map((v) => [v.uuid, v.present]),
      [[rebuilt.volume.uuid, true]],
      'the registry forgets the volume it deleted',
    );

    // The volume deleted outside uniprove (`ops volume delete`): the next build makes a new one, and the
    // registry lists only that, not also the deleted one as missing.
    await opsVolumeDelete(rebuilt.volume.uuid);
    const again = await buildVolume(set, { cacheDir: join(dir, 'cache-b'), size: '4m' });
    created.push(again.volume.uuid);
    assert.equal(again.reused, false);
    assert.deepEqual(
      (await listVolumes({ cacheDir: join(dir, 'cache-b') })).volumes.map((v) => [v.uuid, v.present]),
      [[again.volume.uuid, true]],
      'no row for the volume deleted outside uniprove',
    );
  } finally {
    const left = (await opsVolumeList().catch(() => [])).filter((v) => created.includes(v.uuid));
    for (const v of left) await opsVolumeDelete(v.uuid).catch(() => {});
    await server.close();
  }
});

/** A set file in `dir` named `name` that lists `files`; returns its path. */
async function writeSetFile(dir: string, name: string, files: unknown[]): Promise<string> {
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify({ name, mountPath: '/params', files }));
  return path;
}

/** Delete the Ops volumes whose name starts with `prefix` (what a test made under its own random prefix). */
async function deleteVolumesNamed(prefix: string): Promise<void> {
  const left = (await opsVolumeList().catch(() => [])).filter((v) => v.name.startsWith(prefix));
  for (const v of left) await opsVolumeDelete(v.uuid).catch(() => {});
}

test('two volume build of one set into one cache at once: both succeed with one Ops volume under the name', {
  skip: needOps(),
  timeout: 180_000,
}, async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'r.params'), randomBytes(1024 * 1024 + 5));
  const server = await startParamServer(src);
  const name = `uniprove-test-${randomBytes(4).toString('hex')}`;
  try {
    const setFile = join(dir, 'race.json');
    await writeFile(
      setFile,
      JSON.stringify({
        name: 'race-test',
        mountPath: '/params',
        files: [
          {
            name: 'r.params',
            digest: await digestOfFile(join(src, 'r.params'), 'sha256'),
            urls: [`${server.url}r.params`],
          },
        ],
      }),
    );
    const cache = join(dir, 'cache');
    const runs = await Promise.all(
      [1, 2].map(() =>
        uniprove(['volume', 'build', setFile, '--name', name, '--size', '8m', '--json'], {
          env: { UNIPROVE_CACHE: cache },
          timeoutMs: 120_000,
        }),
      ),
    );
    for (const run of runs) assert.equal(run.exitCode, 0, run.stderr);
    const uuids = runs.map((r) => parseJson<{ volume: { uuid: string } }>(r).volume.uuid);
    const named = (await opsVolumeList()).filter((v) => v.name === name);
    assert.deepEqual(
      named.map((v) => v.uuid),
      [uuids[0]],
      `one volume under ${name}: ${JSON.stringify(named)}`,
    );
    assert.equal(uuids[1], uuids[0], 'the second build reused the first one');
  } finally {
    for (const v of (await opsVolumeList()).filter((x) => x.name === name)) {
      await opsVolumeDelete(v.uuid).catch(() => {});
    }
    await server.close();
  }
});

test('two sets with equal contents but other names each get the volume a run of their recipe mounts', {
  skip: needOps() ?? needGcc(),
  timeout: 300_000,
}, async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'r.params'), randomBytes(2048));
  const server = await startParamServer(src);
  const prefix = `uniprove-test-${randomBytes(4).toString('hex')}`;
  try {
    const files = [
      {
        name: 'r.params',
        digest: await digestOfFile(join(src, 'r.params'), 'sha256'),
        urls: [`${server.url}r.params`],
      },
    ];
    const recipeDir = join(dir, 'recipe');
    await mkdir(recipeDir);
    const first = await loadParameterSet(await writeSetFile(recipeDir, `${prefix}-a`, files), {
      setsDir: dir,
    });
    const second = await loadParameterSet(await writeSetFile(recipeDir, `${prefix}-b`, files), {
      setsDir: dir,
    });
    assert.equal(first.setDigest, second.setDigest, 'the same files make the same set digest');
    const cacheDir = join(dir, 'cache');
    const built = await buildVolume(first, { cacheDir, size: '4m' });
    assert.equal(built.volume.name, volumeNameFor(first));

    // `uniprove run` of a recipe that names the second set: it builds (or reuses) the set's volume, then looks
    // it up by the name the package mounts.
    await compileC(recipeDir, 'noop', 'int main(void) { return 0; }', ['-static']);
    await writeFile(
      join(recipeDir, 'recipe.json'),
      JSON.stringify({
        name: 'noop',
        binary: './noop',
        probe: { skip: true },
        volumes: [{ set: `./${prefix}-b.json` }],
        resources: { memory: '256M', cpus: 1 },
      }),
    );
    const prepared = await prepareTarget({
      target: recipeDir,
      cwd: dir,
      cacheDir,
      packageOut: join(dir, 'pkg'),
      setsDir: dir,
    });
    assert.deepEqual(
      prepared.volumes.map((v) => [v.label, v.guestPath]),
      [[volumeNameFor(second), '/params']],
    );
    // The first set's volume is still there for its own recipes, and each set has its own volume.
    const named = (await opsVolumeList()).filter((v) => v.name.startsWith(prefix));
    assert.deepEqual(named.map((v) => v.name).sort(), [volumeNameFor(first), volumeNameFor(second)].sort());
    assert.deepEqual(
      (await listVolumes({ cacheDir })).volumes.map((v) => [v.set, v.name, v.present]).sort(),
      [
        [first.name, volumeNameFor(first), true],
        [second.name, volumeNameFor(second), true],
      ],
    );
    // Built again, each set reuses its own volume.
    assert.equal((await buildVolume(second, { cacheDir })).reused, true);
    const again = await buildVolume(first, { cacheDir });
    assert.equal(again.reused, true);
    assert.equal(again.volume.uuid, built.volume.uuid);
  } finally {
    await deleteVolumesNamed(prefix);
    await server.close();
  }
});

test('volume rm takes the set file a volume was built from; a file that is no set is refused with exit 2', {
  skip: needOps(),
  timeout: 300_000,
}, async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 's.params'), randomBytes(2048));
  const server = await startParamServer(src);
  const prefix = `uniprove-test-${randomBytes(4).toString('hex')}`;
  const env = { UNIPROVE_CACHE: join(dir, 'cache') };
  try {
    const setFile = await writeSetFile(dir, `${prefix}-set`, [
      {
        name: 's.params',
        digest: await digestOfFile(join(src, 's.params'), 'sha256'),
        urls: [`${server.url}s.params`],
      },
    ]);
    const build = await uniprove(['volume', 'build', setFile, '--size', '4m', '--json'], { cwd: dir, env });
    assert.equal(build.exitCode, 0, build.stdout + build.stderr);
    const { volume } = parseJson<{ volume: { name: string; uuid: string } }>(build);

    // As bench/zkwasm-native-vs-nanos.ts calls it: the set file's path, absolute or relative.
    const rm = await uniprove(['volume', 'rm', `./${prefix}-set.json`, '--json'], { cwd: dir, env });
    assert.equal(rm.exitCode, 0, rm.stdout + rm.stderr);
    assert.deepEqual(
      parseJson<{ removed: { uuid: string }[] }>(rm).removed.map((v) => v.uuid),
      [volume.uuid],
    );
    assert.ok(!(await opsVolumeList()).some((v) => v.uuid === volume.uuid), 'ops no longer has it');
    const ls = await uniprove(['volume', 'ls', '--json'], { cwd: dir, env });
    assert.deepEqual(parseJson<{ volumes: unknown[] }>(ls).volumes, []);

    // The set name, with a file of that very name in the folder: the name is meant, and the file is not read.
    const again = await uniprove(['volume', 'build', setFile, '--size', '4m', '--json'], { cwd: dir, env });
    assert.equal(again.exitCode, 0, again.stdout + again.stderr);
    const second = parseJson<{ volume: { uuid: string } }>(again).volume;
    await writeFile(join(dir, `${prefix}-set`), 'notes, not a set\n');
    const byName = await uniprove(['volume', 'rm', `${prefix}-set`, '--json'], { cwd: dir, env });
    assert.equal(byName.exitCode, 0, byName.stdout + byName.stderr);
    assert.deepEqual(
      parseJson<{ removed: { uuid: string }[] }>(byName).removed.map((v) => v.uuid),
      [second.uuid],
    );

    // A file that is no parameter set, and one that does not exist: the input named, the fix said, exit 2.
    await writeFile(join(dir, 'recipe.json'), JSON.stringify({ name: 'x', binary: './x' }));
    for (const [input, why] of [
      ['recipe.json', /recipe\.json.*(is not a parameter set|invalid)/],
      ['./missing.json', /missing\.json.*does not exist/],
    ] as const) {
      const bad = await uniprove(['volume', 'rm', input], { cwd: dir, env });
      assert.equal(bad.exitCode, 2, bad.stdout + bad.stderr);
      assert.match(bad.stderr, why);
      assert.match(bad.stderr, /hint: .*set name/);
      assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
    }
  } finally {
    await deleteVolumesNamed(prefix);
    await server.close();
  }
});

test('a damaged volume registry (truncated, an entry without fields, a FIFO) is moved aside with a warning and the volume built again, one under its name', {
  skip: needOps(),
  timeout: 300_000,
}, async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'd.params'), randomBytes(4096));
  const server = await startParamServer(src);
  const prefix = `uniprove-test-${randomBytes(4).toString('hex')}`;
  const cache = join(dir, 'cache');
  const env = { UNIPROVE_CACHE: cache, CI: '1' };
  const registry = join(cache, 'volumes', 'registry.json');
  try {
    const setFile = await writeSetFile(dir, `${prefix}-set`, [
      {
        name: 'd.params',
        digest: await digestOfFile(join(src, 'd.params'), 'sha256'),
        urls: [`${server.url}d.params`],
      },
    ]);
    const build = await uniprove(['volume', 'build', setFile, '--size', '4m', '--json'], { cwd: dir, env });
    assert.equal(build.exitCode, 0, build.stdout + build.stderr);
    let volume = parseJson<{ volume: { name: string; uuid: string } }>(build).volume;
    const whole = await readFile(registry, 'utf8');
    const damages: [string, () => Promise<void>][] = [
      ['truncated', () => writeFile(registry, whole.slice(0, whole.length >> 1))],
      ['an entry without fields', () => writeFile(registry, JSON.stringify({ version: 1, volumes: [{}] }))],
      [
        'a FIFO',
        async () => {
          await rm(registry, { force: true });
          await execa('mkfifo', [registry]);
        },
      ],
    ];
    for (const [what, damage] of damages) {
      await damage();
      // Listing says so and lists nothing, rather than crashing or waiting on the FIFO.
      const ls = await uniprove(['volume', 'ls', '--json'], { cwd: dir, env, timeoutMs: 30_000 });
      assert.equal(ls.exitCode, 0, `${what}: ${ls.stdout}${ls.stderr}`);
      const listed = parseJson<{ volumes: unknown[]; warnings: { code: string; message: string }[] }>(ls);
      assert.deepEqual(listed.volumes, [], what);
      assert.match(
        listed.warnings[0]?.message ?? '',
        /volume registry .* was damaged.*moved it to .*registry\.json\.damaged/,
        what,
      );
      await damage();
      const again = await uniprove(['volume', 'build', setFile, '--size', '4m', '--json'], {
        cwd: dir,
        env,
        timeoutMs: 60_000,
      });
      assert.equal(again.exitCode, 0, `${what}: ${again.stdout}${again.stderr}`);
      const result = parseJson<{
        volume: { name: string; uuid: string };
        reused: boolean;
        warnings: { code: string }[];
      }>(again);
      assert.deepEqual(
        result.warnings.map((w) => w.code),
        ['volume-registry-damaged'],
        what,
      );
      assert.equal(result.reused, false, what);
      assert.equal(result.volume.name, volume.name, what);
      // Packages mount by name: the old volume under it is gone, the new one is the only one.
      assert.deepEqual(
        (await opsVolumeList()).filter((v) => v.name === volume.name).map((v) => v.uuid),
        [result.volume.uuid],
        what,
      );
      volume = result.volume;
      // The mended registry knows it again: the next build reuses it without a warning.
      const reuse = await uniprove(['volume', 'build', setFile, '--json'], { cwd: dir, env });
      const reused = parseJson<{ volume: { uuid: string }; reused: boolean; warnings: unknown[] }>(reuse);
      assert.deepEqual([reused.reused, reused.volume.uuid, reused.warnings], [true, volume.uuid, []], what);
    }
  } finally {
    await deleteVolumesNamed(prefix);
    await server.close();
  }
});

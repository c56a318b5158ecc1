import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseOpsVolumeTable } from '../../src/core/ops/volume.js';
import { defaultVolumeSize } from '../../src/core/volume/build.js';
import { parseDigest } from '../../src/core/volume/digest.js';
import {
  importFilecoinParameters,
  parseSectorSize,
  toSetFile,
  urlFor,
} from '../../src/core/volume/filecoin.js';
import { parameterSetJsonSchema, resolveParameterSet } from '../../src/core/volume/spec.js';
import { REPO_ROOT } from '../helpers/cli.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/volume');
const params = JSON.parse(readFileSync(join(FIXTURES, 'filecoin/parameters.json'), 'utf8'));

test('the importer picks exactly the files of one sector size from the real parameters.json', () => {
  for (const label of ['2KiB', '32GiB']) {
    const expected = JSON.parse(readFileSync(join(FIXTURES, `filecoin/expected-${label}.json`), 'utf8'));
    const set = importFilecoinParameters(params, 'parameters.json', { sectorSize: parseSectorSize(label) });
    assert.deepEqual(
      set.files.map((f) => f.name),
      expected,
    );
    assert.equal(set.name, `filecoin-${label}`);
    // every .params comes with its .vk
    const stems = (ext: string) =>
      set.files
        .filter((f) => f.name.endsWith(ext))
        .map((f) => f.name.slice(0, -ext.length))
        .sort();
    assert.deepEqual(stems('.params'), stems('.vk'));
  }
  const bytes = importFilecoinParameters(params, 'p', { sectorSize: 2048 });
  const named = importFilecoinParameters(params, 'p', { sectorSize: parseSectorSize('2KiB') });
  assert.equal(bytes.setDigest, named.setDigest);
  const file = bytes.files.find((f) => f.name.startsWith('v28-proof-of-spacetime-fallback'))!;
  const entry = params[file.name];
  assert.equal(file.digest, `blake2b512-trunc128:${entry.digest}`);
  assert.deepEqual(file.urls, [`https://proofs.filecoin.io/ipfs/${entry.cid}`]);
  assert.equal(file.guestPath, `/var/tmp/filecoin-proof-parameters/${file.name}`);
});

test('the importer refuses to guess a sector size and names the sizes it has', () => {
  assert.throws(
    () => importFilecoinParameters(params, 'parameters.json'),
    (e: Error & { code?: string }) =>
      e.code === 'E_USAGE' && /5 sector sizes \(2KiB, 8MiB, 512MiB, 32GiB, 64GiB\)/.test(e.message),
  );
  assert.throws(
    () => importFilecoinParameters(params, 'parameters.json', { sectorSize: 4096 }),
    /no files for sector size 4KiB/,
  );
  assert.throws(() => parseSectorSize('2 kilobytes'), /not a size/);
  assert.equal(parseSectorSize('64GiB'), 68719476736);
  assert.equal(parseSectorSize('536870912'), 512 * 1024 * 1024);
});

test('the shipped sets are what the importer makes from the real files', () => {
  const twoKiB = JSON.parse(readFileSync(join(REPO_ROOT, 'volumes/filecoin-2KiB.json'), 'utf8'));
  const made = toSetFile(
    importFilecoinParameters(params, 'x', { sectorSize: 2048, sourceFile: 'parameters.json' }),
  );
  assert.deepEqual(twoKiB, made);
  const srs = JSON.parse(readFileSync(join(FIXTURES, 'filecoin/srs-inner-product.json'), 'utf8'));
  const shipped = JSON.parse(readFileSync(join(REPO_ROOT, 'volumes/filecoin-srs.json'), 'utf8'));
  assert.deepEqual(
    shipped,
    toSetFile(importFilecoinParameters(srs, 'x', { sourceFile: 'srs-inner-product.json' })),
  );
});

test('volumes/parameter-set.schema.json is generated from the schema (npm run schemas)', () => {
  const schema = JSON.parse(readFileSync(join(REPO_ROOT, 'volumes/parameter-set.schema.json'), 'utf8'));
  assert.deepEqual(schema, JSON.parse(JSON.stringify(parameterSetJsonSchema())));
});

test('base URLs: gateways by CID, mirrors and file:// folders by name, or a template', () => {
  const f = { name: 'a.params', cid: 'QmX' };
  assert.equal(urlFor('https://proofs.filecoin.io/ipfs/', f), 'https://proofs.filecoin.io/ipfs/QmX');
  assert.equal(urlFor('https://mirror.example/params', f), 'https://mirror.example/params/a.params');
  assert.equal(urlFor('file:///mnt/usb/', f), 'file:///mnt/usb/a.params');
  assert.equal(
    urlFor('https://gw.example/{cid}?filename={name}', f),
    'https://gw.example/QmX?filename=a.params',
  );
});

const good = {
  name: 't',
  mountPath: '/params',
  files: [{ name: 'a', digest: `sha256:${'0'.repeat(64)}`, urls: ['http://127.0.0.1/a'] }],
};

test('set validation names the field and rejects guest paths that escape', () => {
  const bad =
    (patch: Record<string, unknown>, file: Record<string, unknown> = {}) =>
    () =>
      resolveParameterSet({ ...good, ...patch, files: [{ ...good.files[0], ...file }] }, 'set.json');
  assert.throws(bad({}, { path: '../etc/passwd' }), /files\[0\]\.path: must be relative/);
  assert.throws(bad({}, { path: '/etc/passwd' }), /files\[0\]\.path/);
  assert.throws(bad({}, { path: 'a/./b' }), /files\[0\]\.path/);
  assert.throws(bad({ mountPath: '/a/../..' }), /mountPath: must be an absolute/);
  assert.throws(bad({ mountPath: 'rel' }), /mountPath/);
  assert.throws(bad({}, { digest: 'md5:abc' }), /files\[0\]\.digest/);
  assert.throws(bad({}, { urls: ['ftp://x/a'] }), /files\[0\]\.urls\[0\]/);
  assert.throws(bad({}, { extra: 1 }), /files\[0\]/);
  assert.throws(
    () => resolveParameterSet({ ...good, files: [good.files[0], { ...good.files[0] }] }, 's'),
    /files\[1\]\.name: a repeats files\[0\]/,
  );
  const ok = resolveParameterSet({ ...good, files: [{ ...good.files[0], path: 'sub/a' }] }, 's');
  assert.equal(ok.files[0]!.guestPath, '/params/sub/a');
  assert.match(ok.setDigest, /^sha256:[0-9a-f]{64}$/);
  assert.throws(() => parseDigest('blake2b512-trunc128:abc'), /not <algorithm>:<lowercase hex>/);
});

test('the set digest changes with content and guest path, not with URLs', () => {
  const a = resolveParameterSet(good, 'a');
  const mirror = resolveParameterSet({ ...good, files: [{ ...good.files[0], urls: ['file:///m/a'] }] }, 'b');
  const moved = resolveParameterSet({ ...good, mountPath: '/other' }, 'c');
  assert.equal(a.setDigest, mirror.setDigest);
  assert.notEqual(a.setDigest, moved.setDigest);
  assert.equal(defaultVolumeSize(0), '32m');
  assert.equal(defaultVolumeSize(1024 ** 3), '1108m');
});

for (const name of readdirSync(join(FIXTURES, 'ops-volume-list'))) {
  test(`ops volume list table: ${name}`, () => {
    const dir = join(FIXTURES, 'ops-volume-list', name);
    const input = readFileSync(join(dir, 'input.txt'), 'utf8');
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    assert.deepEqual(parseOpsVolumeTable(input), expected);
  });
}

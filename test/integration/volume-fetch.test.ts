/**
 * Fetching parameter files from a real HTTP server on 127.0.0.1 that
 * misbehaves on demand. Every case must end with correct files in the cache or
 * a clear error, never a corrupt file taken as good, and no temp files left.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { UniproveError } from '../../src/core/errors.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { fetchParameterSet } from '../../src/core/volume/fetch.js';
import { type ResolvedParameterSet, resolveParameterSet } from '../../src/core/volume/spec.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { type ParamServer, startParamServer } from '../helpers/param-server.js';
import { tempDir } from '../helpers/tmp.js';

interface Source {
  name: string;
  bytes: Buffer;
  digest: string;
}

let root: string;
let server: ParamServer;
const sources: Source[] = [];

/** BLAKE2b-512 by coreutils' b2sum, so the expected digests do not come from the code under test. */
function b2sumPrefix(path: string): string {
  return execFileSync('b2sum', [path], { encoding: 'utf8' }).slice(0, 32);
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'uniprove-params-src-'));
  const sizes: [string, number][] = [
    ['a.params', 3 * 1024 * 1024 + 17],
    ['a.vk', 4099],
    ['b.params', 2 * 1024 * 1024],
    ['empty.vk', 0],
  ];
  for (const [name, size] of sizes) {
    const bytes = randomBytes(size);
    await writeFile(join(root, name), bytes);
    sources.push({ name, bytes, digest: `blake2b512-trunc128:${b2sumPrefix(join(root, name))}` });
  }
  server = await startParamServer(root);
});
after(async () => {
  await server?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

function makeSet(options: { only?: string[]; sizes?: boolean; base?: string } = {}): ResolvedParameterSet {
  const files = sources
    .filter((s) => !options.only || options.only.includes(s.name))
    .map((s) => ({
      name: s.name,
      digest: s.digest,
      ...(options.sizes ? { size: s.bytes.length } : {}),
      urls: [`${options.base ?? server.url}${s.name}`],
    }));
  return resolveParameterSet({ name: 'test-set', mountPath: '/params', files }, 'test');
}

const fast = { retryDelayMs: 20, stallTimeoutMs: 400, retries: 3 };

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

/** The cache holds exactly the verified files (+ stamps) and nothing temporary. */
async function assertCacheHolds(cache: string, names: string[], extra: string[] = []): Promise<void> {
  const expected = names.flatMap((n) => {
    const hex = sources.find((s) => s.name === n)!.digest.split(':')[1];
    return [`params/blake2b512-trunc128/${hex}`, `params/blake2b512-trunc128/${hex}.verified`];
  });
  assert.deepEqual(await listTree(cache), [...expected, ...extra].sort());
  for (const n of names) {
    const s = sources.find((x) => x.name === n)!;
    const data = await readFile(join(cache, 'params/blake2b512-trunc128', s.digest.split(':')[1]!));
    assert.ok(data.equals(s.bytes), `${n} in the cache has the served bytes`);
  }
}

function requestsFor(name: string) {
  return server.requests.filter((r) => r.path.endsWith(`/${name}`));
}

test('a clean fetch fills the cache; a second fetch downloads nothing', async () => {
  const cache = await tempDir();
  const events: ProgressEvent[] = [];
  const result = await fetchParameterSet(makeSet(), {
    cacheDir: cache,
    ...fast,
    onProgress: (e) => events.push(e),
  });
  assert.equal(result.files.length, 4);
  assert.ok(result.files.every((f) => f.source === 'download' && f.verified));
  await assertCacheHolds(
    cache,
    sources.map((s) => s.name),
  );
  const last = events.filter((e) => e.kind === 'update').at(-1);
  assert.equal(last?.kind === 'update' && last.done, result.bytesDownloaded);
  assert.match(String(last?.detail), /MiB .*\/s, ETA .*4\/4 files/);
  const before = server.requests.length;
  const again = await fetchParameterSet(makeSet(), { cacheDir: cache, ...fast });
  assert.equal(server.requests.length, before);
  assert.ok(again.files.every((f) => f.source === 'cache'));
  assert.equal(again.bytesDownloaded, 0);
});

test('a connection dropped midway is resumed with Range', async () => {
  const cache = await tempDir();
  server.fault('a.params', 'drop-midway', 'drop-midway');
  const result = await fetchParameterSet(makeSet({ only: ['a.params'] }), { cacheDir: cache, ...fast });
  assert.equal(result.files[0]!.source, 'download');
  const reqs = requestsFor('a.params').slice(-3);
  assert.deepEqual(
    reqs.map((r) => [r.status, r.fault ?? null, Boolean(r.range)]),
    [
      [200, 'drop-midway', false],
      [206, 'drop-midway', true],
      [206, null, true],
    ],
  );
  assert.ok(reqs[2]!.ifRange, 'resume asks for the same version of the file (If-Range)');
  await assertCacheHolds(cache, ['a.params']);
});

test('500 then 200 is retried', async () => {
  const cache = await tempDir();
  server.fault('a.vk', 'status-500', 'status-500');
  await fetchParameterSet(makeSet({ only: ['a.vk'] }), { cacheDir: cache, ...fast });
  assert.deepEqual(
    requestsFor('a.vk')
      .slice(-3)
      .map((r) => r.status),
    [500, 500, 200],
  );
  await assertCacheHolds(cache, ['a.vk']);
});

test('one wrong byte: the bad copy is kept aside as *-invalid-digest and the file fetched again', async () => {
  const cache = await tempDir();
  server.fault('b.params', 'wrong-byte');
  const notes: string[] = [];
  await fetchParameterSet(makeSet({ only: ['b.params'] }), {
    cacheDir: cache,
    ...fast,
    onProgress: (e) => e.kind === 'note' && notes.push(String(e.detail)),
  });
  await assertCacheHolds(cache, ['b.params'], ['params/invalid/b.params-invalid-digest']);
  const bad = await readFile(join(cache, 'params/invalid/b.params-invalid-digest'));
  assert.equal(bad.length, sources.find((s) => s.name === 'b.params')!.bytes.length);
  assert.match(notes.join('\n'), /b\.params from .* has digest .* expected .* kept aside/);
});

test('a server that always sends a wrong byte ends in E_DIGEST_MISMATCH with nothing taken as good', async () => {
  const cache = await tempDir();
  server.always('b.params', 'wrong-byte');
  try {
    await assert.rejects(
      fetchParameterSet(makeSet({ only: ['b.params', 'a.vk'] }), { cacheDir: cache, ...fast }),
      (error: UniproveError) => {
        assert.equal(error.code, 'E_DIGEST_MISMATCH');
        assert.equal(error.exitCode, 4);
        assert.match(error.message, /b\.params from http:\/\/127\.0\.0\.1:\d+\/b\.params has digest/);
        const details = error.details as { files: { name: string }[]; failed: { name: string }[] };
        assert.deepEqual(
          details.files.map((f) => f.name),
          ['a.vk'],
        );
        assert.deepEqual(
          details.failed.map((f) => f.name),
          ['b.params'],
        );
        return true;
      },
    );
  } finally {
    server.always('b.params', undefined);
  }
  await assertCacheHolds(cache, ['a.vk'], ['params/invalid/b.params-invalid-digest']);
});

test('a server that ignores Range on resume: the file is restarted from byte 0', async () => {
  const cache = await tempDir();
  server.fault('a.params', 'drop-midway', 'ignore-range');
  await fetchParameterSet(makeSet({ only: ['a.params'] }), { cacheDir: cache, ...fast });
  const reqs = requestsFor('a.params').slice(-2);
  assert.ok(reqs[1]!.range, 'asked for a range');
  assert.equal(reqs[1]!.status, 200, 'got the whole file');
  await assertCacheHolds(cache, ['a.params']);
});

test('a stalled response is dropped after the stall timeout and resumed', async () => {
  const cache = await tempDir();
  server.fault('a.params', 'stall');
  const started = Date.now();
  await fetchParameterSet(makeSet({ only: ['a.params'] }), { cacheDir: cache, ...fast });
  assert.ok(Date.now() - started >= 400);
  const reqs = requestsFor('a.params').slice(-2);
  assert.deepEqual(
    reqs.map((r) => [r.fault ?? null, r.status]),
    [
      ['stall', 200],
      [null, 206],
    ],
  );
  await assertCacheHolds(cache, ['a.params']);
});

test('a server that keeps stalling fails clearly, keeps a resumable partial, and the next run resumes it', async () => {
  const cache = await tempDir();
  server.always('a.params', 'stall');
  try {
    await assert.rejects(
      fetchParameterSet(makeSet({ only: ['a.params'] }), { cacheDir: cache, ...fast, retries: 1 }),
      (error: UniproveError) =>
        error.code === 'E_DOWNLOAD' &&
        /a\.params.*without progress/s.test(error.message) &&
        error.exitCode === 4,
    );
  } finally {
    server.always('a.params', undefined);
  }
  const hex = sources[0]!.digest.split(':')[1];
  assert.deepEqual(await listTree(cache), [
    `params/partial/blake2b512-trunc128-${hex}`,
    `params/partial/blake2b512-trunc128-${hex}.json`,
  ]);
  await fetchParameterSet(makeSet({ only: ['a.params'] }), { cacheDir: cache, ...fast });
  const last = requestsFor('a.params').at(-1)!;
  assert.equal(last.status, 206);
  assert.match(String(last.range), /^bytes=[1-9]\d*-$/);
  await assertCacheHolds(cache, ['a.params']);
});

test('aborting leaves only a resumable partial, never a file in the cache', async () => {
  const cache = await tempDir();
  server.always('a.params', 'stall');
  const controller = new AbortController();
  try {
    const pending = fetchParameterSet(makeSet({ only: ['a.params'] }), {
      cacheDir: cache,
      ...fast,
      stallTimeoutMs: 10_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 300);
    await assert.rejects(pending, (error: UniproveError) => error.code === 'E_INTERRUPTED');
  } finally {
    server.always('a.params', undefined);
  }
  const tree = await listTree(cache);
  assert.ok(
    tree.every((p) => p.startsWith('params/partial/')),
    tree.join(', '),
  );
});

test('404 and a wrong size are clear errors that leave no temp files', async () => {
  const cache = await tempDir();
  server.fault('a.vk', 'status-404');
  await assert.rejects(
    fetchParameterSet(makeSet({ only: ['a.vk'] }), { cacheDir: cache, ...fast }),
    (error: UniproveError) =>
      error.code === 'E_DOWNLOAD' && /HTTP 404 for http:\/\/127\.0\.0\.1:\d+\/a\.vk/.test(error.message),
  );
  const set = makeSet({ only: ['a.vk'], sizes: true });
  set.files[0]!.size = 4098;
  await assert.rejects(
    fetchParameterSet(set, { cacheDir: cache, ...fast }),
    /a\.vk is 4099 bytes but the parameter set says 4098/,
  );
  assert.deepEqual(await listTree(cache), []);
});

test('a server that sends no Content-Length and never ends is cut off at the declared size + 1 (E_DOWNLOAD naming set, file and size), partial removed', async () => {
  const cache = await tempDir();
  server.always('a.vk', 'endless');
  try {
    const started = performance.now();
    await assert.rejects(
      // The signal bounds what a broken fetch would write (unbounded, it fills the disk).
      fetchParameterSet(makeSet({ only: ['a.vk'], sizes: true }), {
        cacheDir: cache,
        ...fast,
        signal: AbortSignal.timeout(5000),
      }),
      (error: UniproveError) =>
        error.code === 'E_DOWNLOAD' &&
        /a\.vk of set test-set is declared as 4099 bytes/.test(error.message) &&
        /stopped at 4100 bytes/.test(error.message),
    );
    assert.ok(performance.now() - started < 5000, 'stopped promptly, not after the disk filled');
    assert.deepEqual(await listTree(cache), [], 'no partial left');
    assert.equal(requestsFor('a.vk').filter((r) => r.fault === 'endless').length, 1, 'not retried');
  } finally {
    server.always('a.vk', undefined);
  }
});

test('a cached file changed on disk is re-hashed, kept aside and fetched again', async () => {
  const cache = await tempDir();
  await fetchParameterSet(makeSet({ only: ['a.vk'] }), { cacheDir: cache, ...fast });
  const blob = join(cache, 'params/blake2b512-trunc128', sources[1]!.digest.split(':')[1]!);
  await chmod(blob, 0o644);
  const data = await readFile(blob);
  data[0] = (data[0] ?? 0) ^ 0xff;
  await writeFile(blob, data);
  const result = await fetchParameterSet(makeSet({ only: ['a.vk'] }), { cacheDir: cache, ...fast });
  assert.equal(result.files[0]!.source, 'download');
  await assertCacheHolds(cache, ['a.vk'], ['params/invalid/a.vk-invalid-digest']);
});

test('file:// base URL for air-gapped hosts, with sizes checked', async () => {
  const cache = await tempDir();
  const result = await fetchParameterSet(makeSet({ sizes: true }), {
    cacheDir: cache,
    ...fast,
    baseUrl: `${pathToFileURL(root).href}/`,
  });
  assert.ok(result.files.every((f) => f.source === 'download'));
  await assertCacheHolds(
    cache,
    sources.map((s) => s.name),
  );
});

test('three volume fetch of one set into one cache at once all succeed: a local race is no download error', async () => {
  const dir = await tempDir();
  const cache = join(dir, 'cache');
  const setFile = join(dir, 'set.json');
  const set = makeSet({ only: ['a.params', 'a.vk'], sizes: true });
  await writeFile(
    setFile,
    JSON.stringify({
      name: set.name,
      mountPath: set.mountPath,
      files: set.files.map(({ guestPath: _, path: __, ...f }) => f),
    }),
  );
  // Slow enough (about 1.5 s for a.params) that the three downloads overlap.
  server.always('a.params', 'slow');
  try {
    const runs = await Promise.all(
      [1, 2, 3].map(() =>
        uniprove(['volume', 'fetch', setFile, '--json'], {
          env: { UNIPROVE_CACHE: cache },
          timeoutMs: 90_000,
        }),
      ),
    );
    for (const run of runs) {
      assert.equal(run.exitCode, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /E_DOWNLOAD/);
    }
    await assertCacheHolds(cache, ['a.params', 'a.vk']);
    // One of them downloaded a.params; the others waited for it and found it in the cache.
    const sourcesOf = runs.map(
      (r) =>
        parseJson<{ files: { name: string; source: string }[] }>(r).files.find((f) => f.name === 'a.params')!
          .source,
    );
    assert.equal(sourcesOf.filter((s) => s === 'download').length, 1, sourcesOf.join(', '));
  } finally {
    server.always('a.params', undefined);
  }
});

test('CLI: volume fetch --json prints the files and exits 0; a failure exits 4 with what failed', async () => {
  const dir = await tempDir();
  const cache = join(dir, 'cache');
  await mkdir(cache);
  const setFile = join(dir, 'set.json');
  const set = makeSet({ only: ['a.vk', 'b.params'] });
  await writeFile(
    setFile,
    JSON.stringify({
      name: set.name,
      mountPath: set.mountPath,
      files: set.files.map(({ guestPath: _, path: __, ...f }) => f),
    }),
  );
  const ok = await uniprove(['volume', 'fetch', setFile, '--json'], { env: { UNIPROVE_CACHE: cache } });
  assert.equal(ok.exitCode, 0, ok.stderr);
  const out = parseJson<{ files: { name: string; path: string; digest: string; verified: boolean }[] }>(ok);
  assert.deepEqual(
    out.files.map((f) => [f.name, f.verified, f.path.startsWith(cache), f.digest]),
    [
      ['a.vk', true, true, sources[1]!.digest],
      ['b.params', true, true, sources[2]!.digest],
    ],
  );
  const cold = join(dir, 'cold');
  server.always('b.params', 'wrong-byte');
  try {
    const bad = await uniprove(['volume', 'fetch', setFile, '--json'], { env: { UNIPROVE_CACHE: cold } });
    assert.equal(bad.exitCode, 4);
    const body = parseJson<{ files: unknown[]; failed: { name: string }[]; error: { code: string } }>(bad);
    assert.equal(body.error.code, 'E_DIGEST_MISMATCH');
    assert.deepEqual(
      body.failed.map((f) => f.name),
      ['b.params'],
    );
    assert.match(bad.stderr, /error\[E_DIGEST_MISMATCH\]/);
  } finally {
    server.always('b.params', undefined);
  }
  const usage = await uniprove(['volume', 'fetch', 'filecoin-2KiB', '--sector-size', '3 parsecs'], {
    env: { UNIPROVE_CACHE: cold },
  });
  assert.equal(usage.exitCode, 2);
  assert.match(usage.stderr, /sector size/);
});

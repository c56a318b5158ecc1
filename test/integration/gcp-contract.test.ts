/**
 * Contract tests: the official @google-cloud/compute and @google-cloud/storage
 * clients against a local server that checks each request against the REST
 * reference. Every flow, a failure at each step (nothing left behind), Ctrl-C,
 * dry runs that send nothing, and no token in any output.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type GcpRunOptions, runInstance } from '../../src/core/cloud/instance.js';
import { gcpGc, gcpList } from '../../src/core/cloud/inventory.js';
import { isUniproveError, type UniproveError } from '../../src/core/errors.js';
import { gcpImage } from '../../src/core/image/gce.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { type Fault, GceServer } from '../helpers/gce-server.js';
import { against, sparseDisk, TARGET } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';

const CONSOLE = [
  'Nanos booting',
  'en1: assigned 10.240.0.2',
  'loading parameters from /params',
  'proof: 8f0a1c2d3e4f',
  'a line split across several serial reads, long enough to be cut more than once',
  'exit status 0',
  '',
].join('\n');

const endMarker = (line: string) => /^exit status (\d+)$/.exec(line)?.[1];

const dir = await tempDir('uniprove-gcp-');
const raw = await sparseDisk(dir, 'benchy.raw', 64 << 20, 1);
const vol = await sparseDisk(dir, 'params.raw', 32 << 20, 9);

async function fresh(options: ConstructorParameters<typeof Object>[0] = {}) {
  const server = await GceServer.start({ console: () => CONSOLE, ...(options as object) });
  after(() => server.close());
  return server;
}

function runOptions(server: GceServer, extra: Partial<GcpRunOptions> = {}, events: ProgressEvent[] = []) {
  return {
    ...against(server, events),
    image: { rawPath: raw, name: 'benchy' },
    volume: { rawPath: vol, name: 'params', diskType: 'pd-ssd' as const, sizeGb: 20 },
    machine: { machineType: 'n2-standard-8', spot: false },
    watch: { intervalMs: 1, statusEvery: 2 },
    isEnd: endMarker,
    ...extra,
  } satisfies GcpRunOptions;
}

describe('gcp image', () => {
  test('uploads a tarball, imports it, deletes the tarball; a second run reuses the image by digest', async () => {
    const server = await fresh();
    const first = await gcpImage({ ...against(server), disk: { rawPath: raw, name: 'benchy' } });
    assert.equal(first.dryRun, false);
    if (first.dryRun) return;
    assert.equal(first.reused, false);
    assert.match(first.image, /^uniprove-img-benchy-[0-9a-f]{12}$/);
    const image = server.images.get(first.image)!;
    assert.equal(image.status, 'READY');
    assert.equal(image.labels.uniprove, '1');
    assert.equal(image.labels['uniprove-digest'], first.sha256.slice(0, 40));
    assert.deepEqual(server.leftovers(), [`image ${first.image}`], 'the tarball is deleted once imported');
    const uploaded = server.calls().filter((c) => c.startsWith('storage.objects.insert'));
    assert.ok(uploaded.length >= 2, 'a resumable session, then its data');

    const before = server.requests.length;
    const second = await gcpImage({ ...against(server), disk: { rawPath: raw, name: 'benchy' } });
    assert.ok(!second.dryRun && second.reused);
    assert.deepEqual(
      server.requests.slice(before).map((r) => r.api),
      ['images.get'],
      'reuse costs one look-up and no upload',
    );
    assert.deepEqual(server.violations, []);
  });

  test('the image is labelled with its digest; a same-named image with another digest is refused', async () => {
    const server = await fresh();
    const r = await gcpImage({ ...against(server), disk: { rawPath: raw, name: 'benchy' } });
    assert.ok(!r.dryRun);
    server.images.get(r.image)!.labels['uniprove-digest'] = 'deadbeef';
    await assert.rejects(
      gcpImage({ ...against(server), disk: { rawPath: raw, name: 'benchy' } }),
      (e: UniproveError) => e.code === 'E_GCP' && /label uniprove-digest is deadbeef/.test(e.message),
    );
  });
});

describe('gcp run', () => {
  test('imports, makes the volume disk, starts the instance with it attached, streams the console, deletes what it made', async () => {
    const server = await fresh();
    const consolePath = join(dir, 'run1.console.log');
    const lines: string[] = [];
    const result = await runInstance(
      runOptions(server, { consolePath, onConsoleLine: (l) => lines.push(l), keep: false }),
    );
    assert.ok(!result.dryRun);
    assert.equal(result.ended, 'marker');
    assert.equal(result.endMatch, '0');
    // No line lost or repeated, although the server cut them across reads.
    assert.equal(await readFile(consolePath, 'utf8'), CONSOLE);
    assert.deepEqual(lines, CONSOLE.split('\n').slice(0, -1));
    assert.equal(result.consoleLostBytes, 0);
    // The instance got the volume at creation (no attachDisk, no reset) and was deleted, with its disks.
    const insert = server.requests.find((r) => r.api === 'instances.insert')!;
    const body = insert.body as { disks: { source?: string }[]; scheduling: Record<string, unknown> };
    assert.equal(body.disks[1]!.source, `zones/${TARGET.zone}/disks/${result.volumeDisk}`);
    assert.equal(body.scheduling.provisioningModel, 'STANDARD');
    assert.ok(!server.calls().includes('instances.attachDisk'));
    assert.deepEqual(
      server.leftovers().sort(),
      [
        `image ${result.image}`,
        `image uniprove-vol-params-${server.images.get([...server.images.keys()][1]!)!.labels['uniprove-digest']!.slice(0, 12)}`,
      ].sort(),
      'only the images stay, as a cache',
    );
    assert.deepEqual(result.deleted.map((d) => d.kind).sort(), ['disk', 'instance']);
    assert.deepEqual(server.violations, []);
  });

  test('Spot with GPUs keeps SPOT and sets onHostMaintenance TERMINATE; custom machine types', async () => {
    const server = await fresh();
    const r = await runInstance(
      runOptions(server, {
        volume: undefined,
        machine: { cpus: 8, memoryGb: 32, spot: true, gpu: { type: 'nvidia-l4', count: 1 }, family: 'g2' },
      }),
    );
    assert.ok(!r.dryRun);
    const body = server.requests.find((q) => q.api === 'instances.insert')!.body as Record<string, unknown>;
    assert.equal(body.machineType, `zones/${TARGET.zone}/machineTypes/g2-custom-8-32768`);
    assert.deepEqual(body.guestAccelerators, [
      { acceleratorType: `zones/${TARGET.zone}/acceleratorTypes/nvidia-l4`, acceleratorCount: 1 },
    ]);
    const scheduling = body.scheduling as Record<string, unknown>;
    assert.equal(scheduling.provisioningModel, 'SPOT');
    assert.equal(scheduling.onHostMaintenance, 'TERMINATE');
    assert.equal(scheduling.automaticRestart, false);
    assert.deepEqual(server.violations, []);
  });

  test('--keep keeps the instance and the volume disk, and says so', async () => {
    const server = await fresh();
    const r = await runInstance(runOptions(server, { keep: true }));
    assert.ok(!r.dryRun);
    assert.deepEqual(r.deleted, []);
    assert.ok(r.kept.some((k) => k.kind === 'instance' && k.name === r.instance));
    assert.ok(server.instances.has(r.instance));
    assert.ok(server.disks.has(r.volumeDisk!));
    // A kept volume disk with the same digest, type and size is reused by the next run (after the instance is gone).
    await gcpGc({ ...against(server), runId: r.runId, dryRun: false }).catch(() => {});
  });

  test('dry run: the calls a real run makes, in the same order, and no request at all', async () => {
    const server = await fresh();
    const dry = await runInstance({
      ...runOptions(server, { runId: 'r1' }),
      dryRun: true,
      endpoints: undefined,
      accessToken: undefined,
    });
    assert.ok(dry.dryRun);
    assert.equal(server.requests.length, 0);
    const real = await runInstance(runOptions(server, { runId: 'r1' }));
    assert.ok(!real.dryRun);
    // What the real run did, once per call (waits and watch polls repeat), equals the dry run's list.
    const watch = (m: string) => m !== 'instances.getSerialPortOutput' && m !== 'instances.get';
    const dedupe = (m: string[]) => m.filter((x, i) => x !== m[i - 1]);
    const performed = dedupe(
      real.calls
        .filter((c) => c.outcome !== 'skipped')
        .map((c) => c.method)
        .filter(watch),
    );
    const planned = dry.calls.filter((c) => watch(c.method));
    // The real calls are the planned ones, in order; only conditional calls ("only if ...") may be left out.
    let at = 0;
    for (const call of planned) {
      if (performed[at] === call.method) at++;
      else
        assert.match(call.when ?? '', /only if/, `${call.method} was planned unconditionally but not made`);
    }
    assert.equal(at, performed.length, `made but not planned: ${performed.slice(at).join(', ')}`);
    // And the bodies the server received are the bodies the dry run printed (the digest aside).
    const sent = server.requests.find((r) => r.api === 'instances.insert')!.body as Record<string, unknown>;
    const shown = dry.calls.find((c) => c.method === 'instances.insert')!.body as Record<string, unknown>;
    // Same JSON, keys sorted and empty maps dropped (the client's serializer adds some), digests masked.
    const canonical = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(canonical)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .filter(
                  ([, x]) =>
                    !(x && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length === 0),
                )
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([k, x]) => [k, canonical(x)]),
            )
          : typeof v === 'string'
            ? v.replace(/[0-9a-f]{12}|<digest>/g, 'DIGEST')
            : v;
    assert.deepEqual(canonical(sent), canonical(shown));
  });
});

/** Faults at every step of a run; after each, the server must hold nothing uniprove made. */
const FAULTS: (Fault & { expect: string })[] = [
  { method: 'storage.buckets.insert', at: 'request', code: 'forbidden', status: 403, expect: 'E_GCP' },
  { method: 'storage.objects.insert', at: 'request', code: 'backendError', status: 400, expect: 'E_GCP' },
  { method: 'images.insert', at: 'request', code: 'quotaExceeded', status: 403, expect: 'E_GCP' },
  { method: 'images.insert', at: 'operation', code: 'QUOTA_EXCEEDED', expect: 'E_GCP' },
  { method: 'globalOperations.get', at: 'request', code: 'backendError', status: 400, expect: 'E_GCP' },
  { method: 'disks.insert', at: 'operation', code: 'QUOTA_EXCEEDED', expect: 'E_GCP' },
  { method: 'disks.insert', at: 'request', code: 'quotaExceeded', status: 403, expect: 'E_GCP' },
  { method: 'instances.insert', at: 'request', code: 'quotaExceeded', status: 403, expect: 'E_GCP' },
  { method: 'instances.insert', at: 'operation', code: 'ZONE_RESOURCE_POOL_EXHAUSTED', expect: 'E_GCP' },
  { method: 'zoneOperations.get', at: 'request', code: 'backendError', status: 400, expect: 'E_GCP' },
  {
    method: 'instances.getSerialPortOutput',
    at: 'request',
    code: 'backendError',
    status: 400,
    expect: 'E_GCP',
  },
];

describe('failures leave nothing behind', () => {
  for (const fault of FAULTS) {
    test(`${fault.method} failing on the ${fault.at} (${fault.code})`, async () => {
      const server = await fresh();
      server.fail(fault);
      const events: ProgressEvent[] = [];
      await assert.rejects(runInstance(runOptions(server, {}, events)), (e: UniproveError) => {
        assert.ok(isUniproveError(e), String(e));
        assert.equal(e.code, fault.expect, e.message);
        assert.match(e.message, new RegExp(fault.code));
        return true;
      });
      assert.deepEqual(server.leftovers(), []);
      assert.equal(server.faults.length, 0, 'the fault was hit');
      assert.deepEqual(
        server.violations.filter((v) => !v.includes('(injected)')),
        [],
      );
    });
  }

  test('a preempted Spot instance: E_GCP_PREEMPTED with the console tail, everything deleted', async () => {
    const server = await fresh();
    server.preemptAfterSerialReads = 2;
    await assert.rejects(
      runInstance(runOptions(server, { machine: { machineType: 'n2-standard-8', spot: true } })),
      (e: UniproveError) => {
        assert.equal(e.code, 'E_GCP_PREEMPTED');
        assert.match(e.message, /Spot/);
        assert.match(String(e.details.consoleTail), /Nanos booting/);
        return true;
      },
    );
    assert.deepEqual(server.leftovers(), []);
  });

  test('the run limit: E_GCP_TIMEOUT, everything deleted', async () => {
    const server = await fresh({ console: () => 'Nanos booting\nproving forever\n' });
    server.preemptAfterSerialReads = undefined;
    // The console never ends, and the instance never stops: keep it RUNNING by giving a huge console.
    const endless = `${'x'.repeat(10_000)}\n`;
    const s2 = await fresh({ console: () => endless, serialChunk: 1 });
    await assert.rejects(
      runInstance(runOptions(s2, { timeoutMs: 30 })),
      (e: UniproveError) => e.code === 'E_GCP_TIMEOUT',
    );
    assert.deepEqual(s2.leftovers(), []);
    assert.deepEqual(server.leftovers(), []);
  });

  test('Ctrl-C in the middle of the run deletes what was created', async () => {
    const server = await fresh({ console: () => CONSOLE, serialChunk: 3 });
    const controller = new AbortController();
    await assert.rejects(
      runInstance({
        ...runOptions(server, {
          onConsoleLine: () => controller.abort(),
        }),
        signal: controller.signal,
      }),
      (e: UniproveError) => e.code === 'E_INTERRUPTED',
    );
    assert.ok(server.calls().includes('instances.delete'));
    assert.deepEqual(server.leftovers(), []);
  });

  test('Ctrl-C during an operation wait deletes what was created', async () => {
    const server = await fresh();
    const controller = new AbortController();
    const events: ProgressEvent[] = [];
    await assert.rejects(
      runInstance({
        ...runOptions(server, {}, events),
        signal: controller.signal,
        onProgress: (e) => {
          if (e.kind === 'update' && /disks\.insert/.test(e.step)) controller.abort();
        },
      }),
      (e: UniproveError) => e.code === 'E_INTERRUPTED',
    );
    assert.deepEqual(server.leftovers(), []);
  });
});

describe('gcp ls and gc', () => {
  test('ls finds what uniprove made in every zone; gc deletes instances, disks, images, objects in that order', async () => {
    const server = await fresh();
    const r = await runInstance(runOptions(server, { keep: true }));
    assert.ok(!r.dryRun);
    // A leftover tarball, as a crash between upload and import would leave.
    server.objects.set('uniprove-test-uniprove/uniprove/stale.tar.gz', {
      bucket: 'uniprove-test-uniprove',
      name: 'uniprove/stale.tar.gz',
      bytes: Buffer.from('x'),
      contentType: 'application/gzip',
      metadata: {},
      timeCreated: new Date(Date.now() - 3 * 86400_000).toISOString(),
    });
    const listed = await gcpList(against(server));
    const kinds = listed.resources.map((x) => `${x.kind} ${x.name}`);
    assert.ok(kinds.includes(`instance ${r.instance}`));
    assert.ok(kinds.includes(`disk ${r.volumeDisk}`));
    assert.ok(kinds.includes(`image ${r.image}`));
    assert.ok(kinds.includes('object uniprove/stale.tar.gz'));
    assert.equal(listed.resources.find((x) => x.kind === 'instance')!.zone, TARGET.zone);

    const old = await gcpGc({ ...against(server), olderThanMs: 86400_000, dryRun: true });
    assert.deepEqual(
      old.deleted.map((x) => x.name),
      ['uniprove/stale.tar.gz'],
      '--older-than 1d picks only the stale tarball',
    );
    const dry = await gcpGc({ ...against(server), dryRun: true });
    assert.deepEqual([...new Set(dry.deleted.map((x) => x.kind))], ['instance', 'disk', 'image', 'object']);
    assert.ok(server.leftovers().length > 0, 'a dry run deletes nothing');

    const mark = server.requests.length;
    const gc = await gcpGc(against(server));
    assert.deepEqual(gc.failed, []);
    assert.deepEqual(server.leftovers(), []);
    const deletes = server
      .calls()
      .slice(mark)
      .filter((c) => /\.delete$/.test(c));
    assert.equal(deletes[0], 'instances.delete');
    assert.equal(deletes.at(-1), 'storage.objects.delete');
    assert.deepEqual(server.violations, []);
  });
});

describe('credentials', () => {
  test('the token never reaches results, errors, progress or the console record', async () => {
    const server = await fresh();
    const events: ProgressEvent[] = [];
    const consolePath = join(dir, 'token.console.log');
    const ok = await runInstance(runOptions(server, { consolePath }, events));
    server.fail({ method: 'instances.insert', at: 'request', code: 'quotaExceeded', status: 403 });
    const failed = await runInstance(runOptions(server, {}, events)).catch((e: unknown) => e);
    const fail401 = await gcpImage({
      ...against(server),
      accessToken: 'wrong-token-value-123',
      disk: { rawPath: raw, name: 'other' },
    }).catch((e: unknown) => e as UniproveError);
    assert.equal((fail401 as UniproveError).code, 'E_GCP_AUTH');
    const everything = [
      JSON.stringify(ok),
      JSON.stringify(events),
      await readFile(consolePath, 'utf8'),
      ...[failed, fail401].flatMap((e) => {
        const u = e as UniproveError & { cause?: Error };
        return [
          u.message,
          u.hint ?? '',
          JSON.stringify(u.details),
          JSON.stringify(u.toJSON()),
          String(u.cause?.message),
          String(u.stack),
        ];
      }),
    ].join('\n');
    assert.ok(
      server.requests.some((r) => r.authorization === `Bearer ${server.token}`),
      'the token was used',
    );
    assert.ok(!everything.includes(server.token), 'token leaked');
    assert.ok(!everything.includes('wrong-token-value-123'), 'token leaked');
  });
});

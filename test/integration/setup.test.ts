/**
 * `uniprove setup` on a machine as new users have it: an empty HOME, no ops on PATH. From a toolchain folder
 * (the project's ../shared/toolchain, or UNIPROVE_TOOLCHAIN), online from a local HTTP server standing in
 * for Ops's release bucket, and with no source at all. Then a unikernel run with ops only in ~/.ops/bin.
 */
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { gate, needGcc, needQemu, needStockNanos } from '../helpers/tools.js';

const toolchain = process.env.UNIPROVE_TOOLCHAIN ?? join(REPO_ROOT, '..', 'shared', 'toolchain');
const skip = gate(
  'toolchain',
  existsSync(join(toolchain, 'SHA256SUMS'))
    ? undefined
    : `no toolchain folder at ${toolchain} (set UNIPROVE_TOOLCHAIN to a folder laid out as ../shared/toolchain)`,
);

/** A PATH for a new user: the system's folders, none of them holding ops. */
const BARE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Run the CLI as a user with this HOME and no ops on PATH; no toolchain unless given. */
function asNewUser(home: string, args: string[], env: Record<string, string> = {}, timeoutMs = 300_000) {
  return uniprove(args, {
    env: { HOME: home, PATH: BARE_PATH, UNIPROVE_TOOLCHAIN: '', OPS_HOME: '', ...env },
    timeoutMs,
  });
}

interface SetupJson {
  changed: boolean;
  ops: string;
  opsOnPath: boolean;
  steps: { part: string; action: string; source: string; version?: string; path: string }[];
}

test('from a toolchain folder: Ops, the Nanos release and common.tar.gz land in ~/.ops; a second run changes nothing', {
  skip,
  timeout: 300_000,
}, async () => {
  const home = await tempDir();
  const first = await asNewUser(home, ['setup', '--no-qemu', '--json'], { UNIPROVE_TOOLCHAIN: toolchain });
  assert.equal(first.exitCode, 0, first.stderr);
  const installed = parseJson<SetupJson>(first);
  assert.equal(installed.changed, true);
  assert.deepEqual(
    installed.steps.map((s) => [s.part, s.action, s.source]),
    [
      ['ops', 'installed', 'toolchain'],
      ['nanos', 'installed', 'toolchain'],
      ['common', 'installed', 'host'],
    ],
  );
  const opsHome = join(home, '.ops');
  assert.equal(installed.ops, join(opsHome, 'bin', 'ops'));
  assert.equal(installed.opsOnPath, false, 'ops is in ~/.ops/bin, which this PATH lacks');
  const version = (await readFile(join(opsHome, 'latest.txt'), 'utf8')).trim();
  // Ops takes any number of dotted parts (the toolchain's 0.1.55.1 is 0.1.55 with the vmap-lock fix).
  assert.match(version, /^\d+(\.\d+){2,}$/);
  for (const part of ['kernel.img', 'boot.img']) assert.ok(existsSync(join(opsHome, version, part)), part);
  assert.deepEqual((await execa('tar', ['-tzf', join(opsHome, 'common.tar.gz')])).stdout.split('\n').sort(), [
    'ca-certificates.crt',
    'libnss_dns.so.2',
  ]);
  // No staging leftovers beside what was installed.
  assert.deepEqual(
    (await readdir(opsHome)).filter((n) => /staging|\.old-/.test(n)),
    [],
  );
  const ops = await execa(join(opsHome, 'bin', 'ops'), ['version'], { env: { HOME: home }, reject: false });
  assert.match(ops.stdout, new RegExp(`Nanos version: ${version.replaceAll('.', '\\.')}`));

  const human = await asNewUser(home, ['setup', '--no-qemu'], { UNIPROVE_TOOLCHAIN: toolchain });
  assert.equal(human.exitCode, 0, human.stderr);
  assert.match(human.stdout, /nothing changed/);
  assert.match(human.stdout, /export PATH="\$HOME\/\.ops\/bin:\$PATH"/, 'it says how to put ops on PATH');
  const again = parseJson<SetupJson>(
    await asNewUser(home, ['setup', '--no-qemu', '--json'], { UNIPROVE_TOOLCHAIN: toolchain }),
  );
  assert.equal(again.changed, false);
  assert.deepEqual(
    again.steps.map((s) => s.action),
    ['kept', 'kept', 'kept'],
  );

  // doctor finds ops in ~/.ops/bin and says where both came from.
  const doctor = await asNewUser(home, ['doctor', '--no-probe', '--json']);
  const checks = parseJson<{ checks: { name: string; ok: boolean; detail: string }[] }>(doctor).checks;
  const ops1 = checks.find((c) => c.name === 'ops');
  const nanos = checks.find((c) => c.name === 'nanos');
  assert.equal(ops1?.ok, true, ops1?.detail);
  assert.match(ops1?.detail ?? '', /not on PATH/);
  assert.match(ops1?.detail ?? '', new RegExp(`the toolchain folder ${toolchain}`));
  assert.match(nanos?.detail ?? '', new RegExp(`Nanos ${version.replaceAll('.', '\\.')} .*toolchain folder`));

  // --force puts the toolchain's files over what is there.
  const forced = parseJson<SetupJson>(
    await asNewUser(home, ['setup', '--no-qemu', '--force', '--json'], { UNIPROVE_TOOLCHAIN: toolchain }),
  );
  assert.deepEqual(
    forced.steps.map((s) => s.action),
    ['replaced', 'replaced', 'replaced'],
  );
  assert.equal((await readFile(join(opsHome, 'latest.txt'), 'utf8')).trim(), version);
});

test('a machine set up with an older Nanos gets the newer release the toolchain offers, the old one kept beside it', {
  skip: skip ?? needStockNanos(),
  timeout: 300_000,
}, async () => {
  const home = await tempDir();
  const opsHome = join(home, '.ops');
  assert.equal(
    (await asNewUser(home, ['setup', '--no-qemu', '--json'], { UNIPROVE_TOOLCHAIN: toolchain })).exitCode,
    0,
  );
  const newest = (await readFile(join(opsHome, 'latest.txt'), 'utf8')).trim();
  // As a machine set up before the fixed kernel came: the stock 0.1.55 only.
  await rm(join(opsHome, newest), { recursive: true });
  await execa('tar', ['-xJf', join(toolchain, 'nanos-0.1.55.tar.xz'), '-C', opsHome]);
  await writeFile(join(opsHome, 'latest.txt'), '0.1.55\n');

  const before = parseJson<{ checks: { name: string; ok: boolean; detail: string; fix: string }[] }>(
    await asNewUser(home, ['doctor', '--no-probe', '--json']),
  ).checks.find((c) => c.name === 'nanos-update');
  assert.equal(before?.ok, false, JSON.stringify(before));
  assert.match(
    before?.detail ?? '',
    new RegExp(`Nanos 0\\.1\\.55 is installed.*offers ${newest.replaceAll('.', '\\.')}`),
  );
  assert.match(before?.fix ?? '', /uniprove setup/);

  const r = await asNewUser(home, ['setup', '--no-qemu', '--json'], { UNIPROVE_TOOLCHAIN: toolchain });
  assert.equal(r.exitCode, 0, r.stderr);
  const nanos = parseJson<SetupJson>(r).steps.find((s) => s.part === 'nanos');
  assert.equal(nanos?.action, 'updated', JSON.stringify(nanos));
  assert.equal(nanos?.version, newest);
  assert.equal((await readFile(join(opsHome, 'latest.txt'), 'utf8')).trim(), newest);
  assert.ok(existsSync(join(opsHome, '0.1.55', 'kernel.img')), 'the old release stays beside the new one');
  const human = await asNewUser(home, ['setup', '--no-qemu'], { UNIPROVE_TOOLCHAIN: toolchain });
  assert.match(human.stdout, /nothing changed/, 'a second run keeps the newer release');

  const after = parseJson<{ checks: { name: string; ok: boolean; detail: string }[] }>(
    await asNewUser(home, ['doctor', '--no-probe', '--json']),
  ).checks.find((c) => c.name === 'nanos-update');
  assert.equal(after?.ok, true, JSON.stringify(after));
});

test('no toolchain folder and no network: exit 3 within a minute naming Ops and the Nanos release, no ~/.ops', {
  skip,
  timeout: 120_000,
}, async () => {
  const home = await tempDir();
  const started = Date.now();
  // A port nothing listens on stands in for the internet this machine cannot reach.
  const r = await asNewUser(home, ['setup', '--no-qemu', '--json'], {
    UNIPROVE_OPS_URL: 'http://127.0.0.1:9/ops',
  });
  assert.ok(Date.now() - started < 60_000);
  assert.equal(r.exitCode, 3, r.stderr);
  const error = parseJson<{ error: { code: string; message: string; hint: string } }>(r).error;
  assert.equal(error.code, 'E_TOOL_MISSING');
  assert.match(error.message, /Ops: could not download http:\/\/127\.0\.0\.1:9\/ops/);
  assert.match(error.message, /the Nanos release/);
  assert.match(error.hint, /UNIPROVE_TOOLCHAIN=DIR uniprove setup/);
  assert.equal(existsSync(join(home, '.ops')), false, 'nothing half-installed');
});

test('online: ops comes from the release URL as Ops installs it; without `ops update` no latest.txt is written', {
  skip,
  timeout: 120_000,
}, async () => {
  const home = await tempDir();
  const served = join(await tempDir(), 'ops');
  await copyFile(join(toolchain, 'ops-linux-amd64.xz'), `${served}.xz`);
  await execa('xz', ['-d', `${served}.xz`]);
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    createReadStream(served).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cli/linux/ops`;
    const r = await asNewUser(home, ['setup', '--no-qemu', '--json'], { UNIPROVE_OPS_URL: url });
    assert.deepEqual(requests, ['/cli/linux/ops']);
    // ops is whole and runs; `ops update` cannot reach Nanos's bucket from here, so the release is missing.
    assert.equal(r.exitCode, 3, r.stderr);
    const error = parseJson<{ error: { message: string } }>(r).error;
    assert.match(error.message, /the Nanos release: `ops update` could not download a Nanos release/);
    const ops = join(home, '.ops', 'bin', 'ops');
    assert.equal(
      (await execa(ops, ['help'], { env: { HOME: home }, reject: false })).stdout.length > 0,
      true,
    );
    assert.equal(existsSync(join(home, '.ops', 'latest.txt')), false, 'latest.txt names no missing release');
    assert.equal(existsSync(join(home, '.ops', 'common.tar.gz')), false);
  } finally {
    server.close();
  }
});

test('a toolchain file whose sha256 differs from SHA256SUMS is refused (exit 4) and nothing is installed', {
  skip,
  timeout: 120_000,
}, async () => {
  const home = await tempDir();
  const bad = await tempDir();
  for (const name of ['ops-linux-amd64.xz', 'nanos-0.1.55.tar.xz', 'SHA256SUMS']) {
    if (existsSync(join(toolchain, name))) await symlink(join(toolchain, name), join(bad, name));
  }
  const sums = await readFile(join(toolchain, 'SHA256SUMS'), 'utf8');
  await writeFile(
    join(bad, 'SHA256SUMS.new'),
    sums.replace(/^[0-9a-f]{64}(?=\s+ops-linux-amd64\.xz)/m, '0'.repeat(64)),
  );
  await execa('mv', ['-f', join(bad, 'SHA256SUMS.new'), join(bad, 'SHA256SUMS')]);
  const r = await asNewUser(home, ['setup', '--no-qemu', '--json'], { UNIPROVE_TOOLCHAIN: bad });
  assert.equal(r.exitCode, 4, r.stderr);
  const error = parseJson<{ error: { code: string; message: string } }>(r).error;
  assert.equal(error.code, 'E_DIGEST_MISMATCH');
  assert.match(error.message, /ops-linux-amd64\.xz has sha256 [0-9a-f]{64}, but SHA256SUMS says 0{64}/);
  assert.equal(existsSync(join(home, '.ops')), false);
});

test('a new user proves inside Nanos with ops only in ~/.ops/bin (not on PATH)', {
  skip: skip ?? needGcc() ?? needQemu(),
  timeout: 600_000,
}, async () => {
  const home = await tempDir();
  const setup = await asNewUser(home, ['setup', '--no-qemu'], { UNIPROVE_TOOLCHAIN: toolchain });
  assert.equal(setup.exitCode, 0, setup.stderr);
  const dir = await tempDir();
  await compileC(
    dir,
    'prover',
    '#include <stdio.h>\nint main(void){puts("BEGIN\\nproof-42\\nEND");return 0;}',
  );
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'newuser',
      binary: './prover',
      probe: { skip: true },
      proof: { kind: 'console', begin: 'BEGIN', end: 'END' },
    }),
  );
  await mkdir(join(dir, 'runs'));
  await chmod(dir, 0o755);
  const r = await asNewUser(
    home,
    [
      'run',
      join(dir, 'recipe.json'),
      '--package-out',
      join(dir, 'pkg'),
      '--runs-dir',
      join(dir, 'runs'),
      '--json',
    ],
    {},
    540_000,
  );
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; dir: string }>(r);
  assert.equal(run.outcome, 'succeeded');
  assert.match(await readFile(join(run.dir, 'console.log'), 'utf8'), /proof-42/);
});

/**
 * Real evidence for `uniprove report`, made the way a user makes it, in one runs folder: a demo proof under QEMU
 * (`uniprove run demo`), a run that fails inside Nanos with a finding (test/fixtures/c/fork-child.c: fork and
 * execve fail with ENOSYS), verify's figures of the demo package, and a fleet (`uniprove gcp run <recipe>
 * --inputs`) against the local Compute Engine server with injected preemptions and an exhausted zone.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseJson, REPO_ROOT, uniprove } from './cli.js';
import { GceServer } from './gce-server.js';
import { fleetCliEnv, trueRecipe } from './gcp.js';
import { argsTable, fleetServerConsole } from './gcp-fleet.js';

/** Where each piece of evidence is. */
export interface ReportEvidence {
  runsDir: string;
  demo: { id: string; dir: string; packageDir: string };
  failed: { id: string; dir: string };
  fleet: { id: string; record: string };
}

function must(run: { exitCode: number; stdout: string; stderr: string }, ok: number[], what: string) {
  if (!ok.includes(run.exitCode)) {
    throw new Error(
      `${what} exited ${run.exitCode}:\n${run.stdout.slice(-4000)}\n${run.stderr.slice(-4000)}`,
    );
  }
}

/** A real demo run (the prover built by cargo), then verify of its package: a proof, its timings, its usage. */
export async function demoRun(dir: string, runsDir: string, prover: string) {
  const packageDir = join(dir, 'demo-pkg');
  const r = await uniprove(
    [
      'run',
      'demo',
      '--binary',
      prover,
      '--package-out',
      packageDir,
      '--runs-dir',
      runsDir,
      '--timeout',
      '600',
      '--json',
      '-q',
    ],
    { cwd: dir, timeoutMs: 12 * 60_000 },
  );
  must(r, [0], 'uniprove run demo');
  const run = parseJson<{ id: string; dir: string }>(r);
  const v = await uniprove(['verify', packageDir, '--json'], { cwd: dir, timeoutMs: 5 * 60_000 });
  must(v, [0], 'uniprove verify demo-pkg');
  return { id: run.id, dir: run.dir, packageDir };
}

/** A real run that fails inside Nanos (fork + execve: ENOSYS) and whose record holds the finding and its fix. */
export async function failedRun(dir: string, runsDir: string) {
  const recipe = join(dir, 'fork-child');
  await mkdir(recipe, { recursive: true });
  await execa('gcc', [
    '-O1',
    '-o',
    join(recipe, 'fork-child'),
    join(REPO_ROOT, 'test/fixtures/c/fork-child.c'),
  ]);
  await writeFile(
    join(recipe, 'recipe.json'),
    JSON.stringify({
      name: 'fork-child',
      binary: './fork-child',
      probe: { skip: true },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  const r = await uniprove(
    [
      'run',
      recipe,
      '--accel',
      'tcg',
      '--timeout',
      '90s',
      '--package-out',
      join(recipe, 'pkg'),
      '--runs-dir',
      runsDir,
      '--json',
      '-q',
    ],
    { cwd: dir, timeoutMs: 3 * 60_000 },
  );
  must(r, [1], 'uniprove run fork-child');
  const run = parseJson<{ id: string; dir: string }>(r);
  return { id: run.id, dir: run.dir };
}

/** A fleet of `n` inputs over 3 zones against the local server: `preempt` preemptions, the first zone exhausted. */
export async function fleetRun(dir: string, runsDir: string, n = 6, preempt = 2) {
  const table = argsTable(Array.from({ length: n }, (_, i) => ['prove', String(i)]));
  const server = await GceServer.start({ console: fleetServerConsole(table) });
  try {
    const recipe = await trueRecipe(dir, 'fleetprover', [], { memory: '2G', cpus: 2 });
    const inputs = join(dir, 'inputs.txt');
    await writeFile(inputs, `${Array.from({ length: n }, (_, i) => `prove ${i}`).join('\n')}\n`);
    const cwd = join(dir, 'fleet-cwd');
    await mkdir(cwd, { recursive: true });
    server.exhaustedZones.add('us-central1-a');
    server.preemptNext(preempt, { afterSerialReads: 2 });
    const env = fleetCliEnv(server, cwd);
    const r = await uniprove(
      [
        'gcp',
        'run',
        recipe,
        '--inputs',
        inputs,
        '--parallel',
        '3',
        '--zones',
        'us-central1-a,us-central1-b,us-central1-c',
        '--runs-dir',
        runsDir,
        '--json',
      ],
      { env, cwd, timeoutMs: 240_000 },
    );
    must(r, [0], 'uniprove gcp run --inputs');
    const out = parseJson<{ fleetId: string; record: string }>(r);
    return { id: out.fleetId, record: out.record };
  } finally {
    await server.close();
  }
}

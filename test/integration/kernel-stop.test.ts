/**
 * A Nanos kernel that stops (an assertion, a fault in the kernel) ends the run at once, as failed, with a finding
 * that quotes it; before, the guest spun on both vCPUs until --timeout and `debug` said "No problem found". The
 * real kernel's words are in the golden case test/fixtures/nanos/zkwasm-prove-2vcpu-kernel-assert.tcg (a zkWasm
 * prove); here test/fixtures/c/kernel-stop-words.c prints the same lines inside Nanos and spins, since no program
 * can make the kernel assert on purpose: what the run does on reading them is what is tested.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# kernel-stop tests skipped: ${skip}`);

test('the kernel assertion on the console ends the run at once: failed, exit 1, a kernel-stop finding quoting it', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  const source = await readFile(join(REPO_ROOT, 'test/fixtures/c/kernel-stop-words.c'), 'utf8');
  await compileC(dir, 'ksw', source, ['-pthread']);
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'kernel-stop-words',
      binary: './ksw',
      probe: { skip: true },
      resources: { memory: '256M', cpus: 2 },
    }),
  );
  const started = Date.now();
  const r = await uniprove(
    [
      'run',
      dir,
      '--accel',
      'tcg',
      '--timeout',
      '240s',
      '--package-out',
      join(dir, 'pkg'),
      '--runs-dir',
      join(dir, 'runs'),
      '--json',
      '-q',
    ],
    { cwd: dir, timeoutMs: 5 * 60_000 },
  );
  const seconds = (Date.now() - started) / 1000;
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const run = parseJson<{
    outcome: string;
    exitCode: number | null;
    dir: string;
    findings?: { kind: string; severity: string; message: string; fix: string; evidence: string[] }[];
  }>(r);
  assert.equal(run.outcome, 'failed');
  assert.equal(run.exitCode, null, 'a kernel that stopped gives no prover exit status');
  // The program spins on both vCPUs for ever: without the watch the run ends at the 240 s timeout.
  assert.ok(seconds < 120, `the run took ${seconds} s`);
  const stop = run.findings?.find((f) => f.kind === 'kernel-stop');
  assert.ok(stop, JSON.stringify(run.findings));
  assert.equal(stop.severity, 'error');
  assert.match(
    stop.message,
    /assertion ctx->refcount\.c > 1 failed at \/usr\/src\/nanos\/src\/unix\/syscall\.c:2556/,
  );
  assert.match(stop.fix, /--memory 16G/);
  const record = JSON.parse(await readFile(join(run.dir, 'record.json'), 'utf8')) as {
    exitReason: string;
    outcome: string;
  };
  assert.match(record.exitReason, /the Nanos kernel stopped \(assertion ctx->refcount/);
  assert.match(record.exitReason, /instead of waiting for the timeout/);

  // debug on the saved console names the same.
  const debug = await uniprove(['debug', join(run.dir, 'console.log'), '--json']);
  const found = parseJson<{ findings: { kind: string }[] }>(debug).findings;
  assert.ok(
    found.some((f) => f.kind === 'kernel-stop'),
    JSON.stringify(found),
  );
});

/**
 * Nanos runs one program: fork and execve fail inside the unikernel with ENOSYS (errno 38). A real run of
 * test/fixtures/c/fork-child.c (fork, then execve of /bin/true) under `uniprove run`, whose record's findings must
 * name it (fork-exec-unsupported), from the program's own words on a plain console and from the trace with --trace;
 * `uniprove debug` of the same console says the same.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# nanos-fork-exec tests skipped: ${skip}`);

interface Finding {
  kind: string;
  severity: string;
  name: string;
  message: string;
  fix: string;
  evidence: string[];
}

interface RunJson {
  outcome: string;
  exitCode: number | null;
  dir: string;
  findings?: Finding[];
}

/** A recipe folder with the fixture, probed by nobody (discovery would warn, and that is tested elsewhere). */
async function recipe(): Promise<string> {
  const dir = await tempDir();
  await execa('gcc', ['-O1', '-o', join(dir, 'fork-child'), join(REPO_ROOT, 'test/fixtures/c/fork-child.c')]);
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'fork-child',
      binary: './fork-child',
      probe: { skip: true },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  return dir;
}

async function run(dir: string, extra: string[] = []): Promise<{ run: RunJson; console: string }> {
  const r = await uniprove(
    [
      'run',
      dir,
      ...extra,
      '--accel',
      'tcg',
      '--timeout',
      '90s',
      '--package-out',
      join(dir, 'pkg'),
      '--runs-dir',
      join(dir, 'runs'),
      '--json',
      '-q',
    ],
    { cwd: dir, timeoutMs: 3 * 60_000 },
  );
  const parsed = parseJson<RunJson>(r);
  return { run: parsed, console: await readFile(join(parsed.dir, 'console.log'), 'utf8') };
}

function forkExec(r: RunJson): Finding {
  const found = r.findings?.find((f) => f.kind === 'fork-exec-unsupported');
  assert.ok(found, JSON.stringify(r.findings));
  return found;
}

test('inside Nanos fork and execve fail with ENOSYS, and the run record names it with the program and the fix', {
  skip,
  timeout: 4 * 60_000,
}, async () => {
  const dir = await recipe();
  const { run: r, console: out } = await run(dir);
  assert.equal(r.outcome, 'failed', out);
  assert.equal(r.exitCode, 3);
  assert.match(out, /FORK-CHILD fork failed: errno 38 \(Function not implemented\)/);
  assert.match(out, /FORK-CHILD execve \/bin\/true failed: errno 38/);
  const f = forkExec(r);
  assert.equal(f.severity, 'error');
  assert.equal(f.name, '/bin/true');
  assert.match(f.message, /fork and execve failed with ENOSYS/);
  assert.match(f.fix, /own process/);
  assert.match(f.fix, /before the image is built/);
  assert.ok(
    f.evidence.some((e) => /console\.log:\d+: FORK-CHILD fork failed/.test(e)),
    f.evidence.join('\n'),
  );
  // `uniprove debug` of the record's console says the same.
  const debug = await uniprove(['debug', join(r.dir, 'console.log'), '--json'], { cwd: dir });
  const d = parseJson<{ findings: Finding[] }>(debug);
  assert.deepEqual(
    d.findings.filter((x) => x.kind === 'fork-exec-unsupported').map((x) => [x.severity, x.name]),
    [['error', '/bin/true']],
  );
});

test('with --trace the finding quotes the calls Nanos refused (clone and execve = -ENOSYS)', {
  skip,
  timeout: 4 * 60_000,
}, async () => {
  const dir = await recipe();
  const { run: r, console: out } = await run(dir, ['--trace']);
  assert.equal(r.exitCode, 3, out);
  const f = forkExec(r);
  assert.equal(f.severity, 'error');
  assert.ok(
    f.evidence.some((e) => /\] clone\(.*= -ENOSYS$/.test(e)),
    f.evidence.join('\n'),
  );
  assert.ok(
    f.evidence.some((e) => /\] execve\(.*= -ENOSYS$/.test(e)),
    f.evidence.join('\n'),
  );
});

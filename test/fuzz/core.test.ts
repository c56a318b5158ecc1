/**
 * The in-process fuzz targets (log readers, strace parser, ELF parser, recipe loader, parameter-set
 * importer), each in a child process of its own so that a hang is caught and named: the child prints the
 * number of each input before feeding it, and is killed when it outlives its time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../helpers/cli.js';
import { REPLAY, RUNS, SEED } from './settings.js';
import { TARGETS } from './targets.js';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

/** A child that takes longer than this is hung (10 000 inputs take 2 to 20 s on a loaded 2-core machine). */
const LIMIT_MS = Math.max(100_000, (RUNS / 10_000) * 100_000);

interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  last: number;
  done: string;
  stderr: string;
  timedOut: boolean;
}

async function fuzzInChild(name: string): Promise<ChildEnd> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, name, String(SEED), String(RUNS)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let last = -1;
  let done = '';
  let partial = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('@')) last = Number(line.slice(1));
      else if (line) done = line;
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, LIMIT_MS);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, last, done, stderr, timedOut };
}

describe(`fuzz in-process targets (seed ${SEED}, ${RUNS} inputs each)`, { concurrency: 2 }, () => {
  for (const name of Object.keys(TARGETS)) {
    it(name, { timeout: LIMIT_MS + 30_000 }, async (t) => {
      t.diagnostic(`seed ${SEED}; replay: ${REPLAY}`);
      const end = await fuzzInChild(name);
      if (end.timedOut) {
        assert.fail(
          `${name}: input ${end.last} never returned (killed after ${LIMIT_MS / 1000} s); replay it with\n` +
            `  node --import tsx test/fuzz/child.ts ${name} ${SEED} ${RUNS} ${end.last}\n${end.stderr}`,
        );
      }
      assert.equal(end.code, 0, `${name} (seed ${SEED}): a finding\n${end.stderr}`);
      assert.match(end.done, new RegExp(`^done ${name}: ${RUNS} inputs`), end.stderr);
      t.diagnostic(end.done);
    });
  }
});

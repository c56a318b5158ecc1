/**
 * The "state" target: what uniprove left on disk, mutated between two commands. A real package (its staged
 * files, lock, Ops configs and .uniprove/state.json) and uniprove's cache (the KVM and unmap-probe verdicts, the
 * compiled helpers and their seals, the volume registry) get flipped bytes, truncations, deletions, mode changes
 * and JSON edits; then `verify`, `package`, `why` and `volume ls` run on them. Each must end within its time with
 * a result or a uniprove error (never exit 70, a stack trace or a hang), as cli.test.ts requires of mangled
 * command lines.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { chmod, rm, truncate } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { type Case, problem, toolsOnly } from './cli-outcome.js';
import { applyByteEdits, applyJsonEdits, byteEdit, jsonEdit } from './mutate.js';
import { CLI_RUNS, SEED } from './settings.js';

const RUN_TIMEOUT_MS = 30_000;
const CONCURRENCY = 4;
/** State cases: a tenth of the CLI runs, 20 at least. */
const STATE_RUNS = Math.max(20, Math.round(CLI_RUNS / 10));

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) return filesUnder(dir, path);
    return e.isFile() ? [path] : [];
  });
}

const mutation = fc.record({
  /** Which file of the package or the cache (modulo their count). */
  file: fc.nat(),
  how: fc.constantFrom('bytes', 'truncate', 'delete', 'chmod', 'json'),
  edits: fc.array(byteEdit(1), { minLength: 1, maxLength: 4 }),
  jsonEdits: fc.array(
    jsonEdit(['files', 'path', 'sha256', 'size', 'mode', 'tree', 'usable', 'affected', 'volumes']),
    {
      minLength: 1,
      maxLength: 3,
    },
  ),
  at: fc.nat({ max: 4096 }),
  mode: fc.constantFrom(0o000, 0o200, 0o444, 0o777),
  command: fc.constantFrom('verify', 'package', 'why', 'volume ls'),
});

test(`fuzz the state uniprove leaves on disk (seed ${SEED}, ${STATE_RUNS} runs)`, {
  timeout: 10 * 60_000,
}, async (t) => {
  const dir = await tempDir('uniprove-fuzz-state-');
  const home = join(dir, 'home');
  mkdirSync(home);
  const env = {
    PATH: toolsOnly(join(dir, 'bin')),
    HOME: home,
    UNIPROVE_CACHE: join(dir, 'cache'),
  };
  // The state to mutate: a recipe packaged once, and a cache with what runs keep there.
  const recipe = join(dir, 'recipe');
  mkdirSync(recipe);
  cpSync('/bin/true', join(recipe, 'prover'));
  writeFileSync(join(recipe, 'data.bin'), 'data');
  writeFileSync(
    join(recipe, 'recipe.json'),
    JSON.stringify({
      name: 'state',
      binary: './prover',
      files: [{ host: 'data.bin', guest: '/data/data.bin' }],
      probe: { skip: true },
      resources: { memory: '512M', cpus: 1 },
    }),
  );
  const base = join(dir, 'pkg');
  const packaged = await uniprove(['package', recipe, '-o', base, '--json', '-q'], { cwd: dir, env });
  assert.equal(packaged.exitCode, 0, packaged.stderr);
  const cache = join(dir, 'cache');
  mkdirSync(join(cache, 'unmap-probe'), { recursive: true });
  mkdirSync(join(cache, 'volumes'), { recursive: true });
  writeFileSync(
    join(cache, 'kvm-probe.json'),
    JSON.stringify({
      key: { kernel: 'k', cpuModel: 'c', qemuVersion: 'q', hvFlag: true },
      usable: false,
      detail: 'd',
      probedAt: 'now',
    }),
  );
  writeFileSync(
    join(cache, 'unmap-probe', `${'a'.repeat(32)}.json`),
    JSON.stringify({
      kernel: { version: '0.1.55', sha256: 'a'.repeat(64) },
      affected: true,
      detail: 'd',
      probedAt: 'now',
    }),
  );
  writeFileSync(join(cache, 'volumes', 'registry.json'), JSON.stringify({ version: 1, volumes: [] }));
  const cacheBase = join(dir, 'cache-base');
  cpSync(cache, cacheBase, { recursive: true });

  const all: (Case & { setup: () => Promise<void> })[] = [];
  for (const [i, m] of fc.sample(mutation, { seed: SEED + 11, numRuns: STATE_RUNS }).entries()) {
    const pkg = join(dir, `pkg-${i}`);
    const caseCache = join(dir, `cache-${i}`);
    const setup = async () => {
      cpSync(base, pkg, { recursive: true });
      cpSync(cacheBase, caseCache, { recursive: true });
      const candidates = [
        ...filesUnder(pkg).map((f) => join(pkg, f)),
        ...filesUnder(caseCache).map((f) => join(caseCache, f)),
      ];
      const target = candidates[m.file % candidates.length] as string;
      if (m.how === 'delete') await rm(target, { force: true });
      else if (m.how === 'truncate') await truncate(target, Math.min(m.at, statSync(target).size));
      else if (m.how === 'chmod') await chmod(target, m.mode);
      else if (m.how === 'json' && target.endsWith('.json')) {
        let value: unknown;
        try {
          value = JSON.parse(readFileSync(target, 'utf8'));
        } catch {
          value = {};
        }
        writeFileSync(target, JSON.stringify(applyJsonEdits(value, m.jsonEdits)));
      } else {
        const bytes = new Uint8Array(readFileSync(target));
        writeFileSync(target, applyByteEdits(bytes, m.edits, [bytes]));
      }
      t.diagnostic(`case ${i}: ${m.how} ${relative(dir, target)}`);
    };
    const argv =
      m.command === 'verify'
        ? ['verify', pkg, '--json']
        : m.command === 'package'
          ? ['package', recipe, '-o', pkg, '--json', '-q']
          : m.command === 'why'
            ? ['why', '/prover', '--from', pkg, '--json']
            : ['volume', 'ls', '--json'];
    all.push({ what: `state ${m.command} after ${m.how}`, argv, setup });
    void caseCache;
  }
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < all.length) {
      const c = all[next++] as (typeof all)[number];
      await c.setup();
      const index = all.indexOf(c);
      const run = await uniprove(c.argv, {
        cwd: dir,
        env: { ...env, UNIPROVE_CACHE: join(dir, `cache-${index}`) },
        timeoutMs: RUN_TIMEOUT_MS,
      });
      const wrong = problem(c, run);
      if (wrong) {
        failures.push(
          `${c.what}: uniprove ${c.argv.join(' ')}\n  ${wrong}\n  exit ${run.exitCode}\n  stdout: ${run.stdout.slice(0, 1500)}\n  stderr: ${run.stderr.slice(-2000)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  assert.ok(existsSync(base));
  assert.deepEqual(
    failures,
    [],
    `${failures.length} findings (seed ${SEED}; inputs kept with UNIPROVE_KEEP_TMP=1)`,
  );
});

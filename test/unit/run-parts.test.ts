/** The pure parts of `uniprove run`: QEMU argv, exit decoding, console proofs, inputs, CSV, config. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { formatDuration, parseDuration } from '../../src/core/duration.js';
import { buildQemuArgs, decodeQemuExit } from '../../src/core/machine/qemu-process.js';
import { csvField, isRunId, newRunId } from '../../src/core/record/record.js';
import { extractConsoleBlocks, isTraceLine, resolveRunConfig } from '../../src/core/run/index.js';
import { parseInputs } from '../../src/core/run/parallel.js';

// Console logs of real Nanos runs, committed under test/fixtures/nanos, one folder per case.
const FIXTURES = new URL('../fixtures/nanos/', import.meta.url).pathname;

test('QEMU exit statuses decode as the fixtures show', () => {
  assert.deepEqual(decodeQemuExit(1, true), { exitCode: 0 });
  assert.deepEqual(decodeQemuExit(7, true), { exitCode: 3 });
  assert.deepEqual(decodeQemuExit(255, true), { exitCode: 127 });
  assert.equal(decodeQemuExit(0, true).exitCode, undefined);
  assert.match(decodeQemuExit(0, false).reason ?? '', /does not reach the host/);
});

test('the QEMU argv follows Ops and adds -no-reboot and isa-debug-exit', () => {
  const argv = buildQemuArgs({
    name: 'x',
    image: '/img',
    disks: [{ path: '/v/zk:1.raw', readOnly: true }],
    memory: '1G',
    cpus: 2,
    accel: 'tcg',
    debugExit: true,
    stateDir: '/s',
  });
  const line = argv.join(' ');
  for (const part of [
    '-machine q35',
    'virtio-scsi-pci,bus=pci.2',
    'scsi-hd,bus=scsi0.0,drive=hd0',
    '-device isa-debug-exit',
    '-no-reboot',
    '-accel tcg -cpu max',
    '-serial stdio',
    '-m 1G',
    '-smp 2',
  ]) {
    assert.ok(line.includes(part), part);
  }
  assert.ok(line.includes('file=/v/zk:1.raw,format=raw,if=none,id=hd1,readonly=on'));
  assert.ok(line.includes('scsi-hd,bus=scsi0.0,drive=hd1'));
  const kvm = buildQemuArgs({
    name: 'x',
    image: '/i',
    disks: [],
    memory: '1G',
    cpus: 1,
    accel: 'kvm',
    debugExit: false,
    stateDir: '/s',
  });
  assert.ok(kvm.includes('-enable-kvm') && !kvm.includes('isa-debug-exit'));
});

test('console proofs are the lines between the markers', () => {
  const text = 'boot\nUNIPROVE-PROOF-BEGIN\nab\ncd\nUNIPROVE-PROOF-END\nafter\n';
  assert.deepEqual(extractConsoleBlocks(text, 'UNIPROVE-PROOF-BEGIN', 'UNIPROVE-PROOF-END'), ['ab\ncd\n']);
  assert.deepEqual(
    extractConsoleBlocks('UNIPROVE-PROOF-BEGIN\ncut off', 'UNIPROVE-PROOF-BEGIN', 'UNIPROVE-PROOF-END'),
    [],
  );
});

test('trace lines are told apart from program output on a real trace console', async (t) => {
  const text = await readFile(`${FIXTURES}dlopen-missing.ops-trace-equivalent.tcg/console.log`, 'utf8').catch(
    () => undefined,
  );
  if (!text) return t.skip('fixtures not present');
  const lines = text.split('\n');
  assert.ok(lines.filter(isTraceLine).some((l) => /openat\(/.test(l)));
  assert.equal(isTraceLine('hello from nanos'), false);
});

test('inputs files: JSON arrays or words, comments skipped, bad lines named', () => {
  assert.deepEqual(parseInputs('# c\nprove --seed 1\n\n["prove", "a b"]\n'), [
    ['prove', '--seed', '1'],
    ['prove', 'a b'],
  ]);
  assert.throws(() => parseInputs('[1, 2]\n', 'in.txt'), /in.txt line 1/);
  assert.throws(() => parseInputs('\n# only\n'), /no runs/);
});

test('CSV fields are quoted when needed and run ids sort by time', () => {
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('plain'), 'plain');
  const a = newRunId(new Date('2026-01-01T00:00:00Z'));
  const b = newRunId(new Date('2026-01-01T00:00:01Z'));
  assert.ok(a < b);
  // One format for every machine: a Compute Engine label value and (after a prefix, or alone) a resource name.
  assert.match(a, /^r20260101t000000000-[0-9a-f]{6}$/);
  assert.match(`uniprove-run-${a}`, /^[a-z]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(isRunId(a));
  assert.ok(newRunId(new Date('2026-01-01T00:00:00.999Z')) < newRunId(new Date('2026-01-01T00:00:01.000Z')));
});

test('the run config wires the exit status out and turns reboot loops off', () => {
  const { config, warnings } = resolveRunConfig(
    { Program: 'p', RebootOnExit: true, Args: ['a'] },
    { args: ['b'], trace: true, imageSize: '128m' },
  );
  assert.equal(config.RebootOnExit, false);
  assert.equal(config.ManifestPassthrough?.debug_exit, 't');
  assert.deepEqual(config.Args, ['b']);
  assert.equal(config.BaseVolumeSz, '128m');
  assert.ok(config.Debugflags?.includes('debugsyscalls') && config.Klibs?.includes('strace'));
  assert.equal(warnings[0]?.code, 'reboot-on-exit');
  assert.throws(() => resolveRunConfig({ Program: 'p' }, { imageSize: 'huge' }), /not a size/);
});

test('every --timeout takes seconds or a number with a unit, and says what it wants otherwise', () => {
  assert.equal(parseDuration('90'), 90_000);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('15m'), 900_000);
  assert.equal(parseDuration('6h'), 21_600_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.throws(() => parseDuration('soon', '--timeout'), /--timeout must be .*"soon"/);
  assert.throws(() => parseDuration('-5', '--timeout'), /--timeout must be/);
  assert.throws(() => parseDuration('0', '--timeout'), /--timeout must be/);
  assert.equal(formatDuration(3600_000), '1 h');
  assert.equal(formatDuration(900_000), '15 min');
  assert.equal(formatDuration(4000), '4 s');
});

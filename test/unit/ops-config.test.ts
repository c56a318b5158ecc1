import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isUniproveError } from '../../src/core/errors.js';
import { loadBase, OPS_CONFIG_KINDS } from '../../src/core/manifest/build.js';
import { parseOpsConfig } from '../../src/core/manifest/schema.js';

function configError(value: unknown): { message: string; issues: { path: string; message: string }[] } {
  try {
    parseOpsConfig(value, 'test.json');
  } catch (error) {
    assert.ok(isUniproveError(error));
    assert.equal(error.code, 'E_CONFIG');
    return { message: error.message, issues: error.details.issues as { path: string; message: string }[] };
  }
  assert.fail('expected the config to be rejected');
}

test('the Gevulot guide configs are valid Ops configs', () => {
  const local = parseOpsConfig({
    RebootOnExit: true,
    Files: ['rust-fil-proofs.config.toml'],
    Env: { BELLMAN_NO_GPU: '1', RUST_BACKTRACE: '1', RUST_LOG: 'trace' },
    Args: ['winning-post', '--size', '2KiB', '--fake'],
    Program: 'benchy',
  });
  assert.equal(local.Program, 'benchy');
  const gcloud = parseOpsConfig({
    CloudConfig: { ProjectID: 'p', Zone: 'europe-west1-b', BucketName: 'b', Flavor: 'n1-standard-8' },
    Klibs: ['gcp', 'tls'],
    RunConfig: { CPUs: 8 },
    Program: 'benchy',
  });
  assert.equal(gcloud.CloudConfig?.Flavor, 'n1-standard-8');
});

test('keys match case-insensitively, as Go decodes them, and come out canonical', () => {
  const config = parseOpsConfig({
    program: 'x',
    runconfig: { cpus: 2, memory: '1G' },
    env: { lower_case: 'kept' },
  });
  assert.deepEqual(config, {
    Program: 'x',
    RunConfig: { CPUs: 2, Memory: '1G' },
    Env: { lower_case: 'kept' },
  });
});

test('unknown keys are rejected with their dot-path, as Ops rejects them', () => {
  const { issues } = configError({ Program: 'x', RunConfig: { CPUz: 2 }, Bogus: 1 });
  const paths = issues.map((i) => `${i.path}: ${i.message}`).sort();
  assert.deepEqual(paths, ['(root): unknown key Bogus', 'RunConfig: unknown key CPUz']);
});

test('wrong types name the field', () => {
  const { issues } = configError({ Args: 'not-a-list', RunConfig: { CPUs: '2' } });
  assert.deepEqual(issues.map((i) => i.path).sort(), ['Args', 'RunConfig.CPUs']);
});

test('the shipped bases are valid', async () => {
  for (const t of OPS_CONFIG_KINDS) {
    const base = await loadBase(t);
    assert.equal(
      base.RebootOnExit,
      false,
      `${t}: RebootOnExit must be off, or a failing prover reboots forever`,
    );
  }
});

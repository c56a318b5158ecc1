import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { newRunId } from '../../src/core/record/record.js';
import { RunRecordSchema, runRecordJsonSchema } from '../../src/core/record/schema.js';
import { assertRunRecord } from '../helpers/record.js';

test('docs/run-record.schema.json is the one generated from the zod schema (scripts/schemas.ts)', async () => {
  const file = JSON.parse(
    await readFile(new URL('../../docs/run-record.schema.json', import.meta.url), 'utf8'),
  );
  assert.deepEqual(file, runRecordJsonSchema());
});

test('the record schema takes a fresh id, and refuses a field it does not know (drift between the type and the schema)', () => {
  const record = {
    id: newRunId(),
    dir: '/tmp/r',
    prover: 'demo',
    args: [],
    via: 'qemu',
    outcome: 'running',
    exitCode: null,
    startedAt: new Date().toISOString(),
    timings: {},
    volumes: [],
    proofs: [],
    files: {},
    warnings: [],
  };
  assertRunRecord(record);
  assert.equal(RunRecordSchema.safeParse({ ...record, surprise: 1 }).success, false);
  assert.equal(RunRecordSchema.safeParse({ ...record, id: '20250101T120000123Z-a1b2c3' }).success, false);
});

/** The one record schema every driver's record.json must pass (docs/run-record.schema.json is made from it). */
import assert from 'node:assert/strict';
import { RunRecordSchema } from '../../src/core/record/schema.js';

/** Assert a record.json (parsed) passes the run record schema; the message names each offending field. */
export function assertRunRecord(record: unknown, what = 'record.json'): void {
  const parsed = RunRecordSchema.safeParse(record);
  assert.ok(
    parsed.success,
    `${what} does not pass the run record schema: ${parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
  );
}

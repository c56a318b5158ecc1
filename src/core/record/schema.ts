/**
 * The run record's schema, the same for every machine driver (qemu, ops, gce): runs/<id>/record.json. The JSON
 * Schema in docs/run-record.schema.json is generated from it (scripts/schemas.ts; a test keeps them equal),
 * and tests check real records of a local run and of a Compute Engine run against it.
 */
import { z } from 'zod';
import type { RunRecord } from './record.js';

const outcome = z.enum(['succeeded', 'failed', 'timeout', 'unknown', 'error', 'interrupted']);
const ms = z.number().nonnegative();
const resource = z.strictObject({ kind: z.string(), name: z.string() });

/** One run's record.json. */
export const RunRecordSchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^r\d{8}t\d{9}-[0-9a-f]{6}$/)
      .describe('r<UTC time to the ms>-<6 hex>: sortable, a GCE name'),
    dir: z.string().describe('the record folder'),
    prover: z.string().describe('the recipe or package name'),
    package: z.string().optional().describe('the package folder the image was built from'),
    args: z.array(z.string()),
    via: z.enum(['qemu', 'ops', 'gce']).describe('the machine driver'),
    outcome: z
      .union([outcome, z.literal('running'), z.literal('abandoned')])
      .describe(
        'running while uniprove runs it; abandoned: uniprove was killed first (a later command swept it)',
      ),
    owner: z
      .strictObject({ pid: z.number().int().positive(), host: z.string() })
      .optional()
      .describe(
        'the uniprove process that runs it, for telling a live run from one whose uniprove was killed',
      ),
    exitCode: z
      .number()
      .int()
      .nullable()
      .describe("the prover's exit status; null when the platform does not carry it"),
    exitReason: z.string().optional(),
    accel: z.enum(['kvm', 'tcg', 'gce']).optional(),
    accelReason: z.string().optional(),
    nanosVersion: z.string().optional(),
    startedAt: z.iso.datetime(),
    endedAt: z.iso.datetime().optional(),
    timings: z.strictObject({
      imageBuildMs: ms.optional(),
      bootMs: ms.optional(),
      proverMs: ms.optional(),
      firstConsoleLineMs: ms.optional(),
      totalMs: ms.optional(),
    }),
    timeoutSeconds: z.number().positive().optional(),
    image: z.string().optional(),
    imageCache: z
      .union([
        z.strictObject({ state: z.literal('hit'), key: z.string(), boot: z.enum(['snapshot', 'copy']) }),
        z.strictObject({ state: z.literal('stored'), key: z.string() }),
        z.strictObject({ state: z.literal('off'), reason: z.string() }),
      ])
      .optional(),
    qemu: z
      .strictObject({
        argv: z.array(z.string()),
        exitCode: z.number().int().optional(),
        signal: z.string().optional(),
        stderrTail: z.string().optional(),
      })
      .optional(),
    volumes: z.array(
      z.strictObject({ label: z.string(), path: z.string(), guestPath: z.string(), readOnly: z.boolean() }),
    ),
    proofs: z.array(
      z.strictObject({
        path: z.string(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        bytes: z.number().int().nonnegative(),
        source: z.string().describe('a guest path, or console'),
      }),
    ),
    files: z.record(z.string(), z.string()).describe('what the folder holds: config, manifest, console, ...'),
    findings: z
      .array(
        z.looseObject({
          kind: z.string(),
          severity: z.string(),
          name: z.string(),
          message: z.string(),
          fix: z.string(),
        }),
      )
      .optional(),
    warnings: z.array(z.strictObject({ code: z.string(), message: z.string() })),
    error: z.strictObject({ code: z.string(), message: z.string(), hint: z.string().optional() }).optional(),
    gce: z
      .strictObject({
        project: z.string(),
        zone: z.string(),
        instance: z.string(),
        image: z.string(),
        machineType: z.string(),
        volumeDisk: z.string().optional(),
        ended: z.enum(['marker', 'stopped']).optional(),
        consoleLostBytes: z.number().int().nonnegative().optional(),
        retries: z
          .number()
          .int()
          .nonnegative()
          .optional()
          .describe('Compute Engine calls tried again after a transient error (HTTP 5xx, 429, a rate limit)'),
        durationMs: z.strictObject({ setup: ms, run: ms, cleanup: ms }).optional(),
        deleted: z.array(resource).optional(),
        kept: z.array(resource).optional(),
      })
      .optional(),
    vcpus: z
      .strictObject({
        asked: z.number().int().positive().describe('vCPUs the recipe or --cpus asked for'),
        used: z.number().int().positive().describe('vCPUs the guest got'),
        reason: z.string().optional().describe('why used differs from asked'),
        threadVars: z
          .array(z.string())
          .optional()
          .describe('thread-count variables set to the vCPUs used (resources.threadVars)'),
        kernel: z
          .strictObject({
            version: z.string(),
            unmapDeadlock: z.union([z.boolean(), z.literal('unknown')]),
            detail: z.string(),
          })
          .optional()
          .describe("the kernel's unmap-deadlock verdict, for runs of more than one vCPU"),
      })
      .optional()
      .describe('the vCPUs asked for and used'),
    fleet: z
      .strictObject({
        id: z.string().describe('the fleet id (f…): runs/<id>/fleet.json'),
        input: z.number().int().nonnegative().describe("the input's index in fleet.json's inputs (0-based)"),
        attempt: z
          .number()
          .int()
          .positive()
          .describe("1 for the input's first attempt, 2 for its first retry"),
      })
      .optional()
      .describe('the fleet this run is an attempt of (gcp run --inputs)'),
  })
  .describe('A uniprove run record (runs/<id>/record.json), the same for every machine driver');

/** The JSON Schema of record.json (docs/run-record.schema.json). */
export function runRecordJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(RunRecordSchema, { io: 'output' }) as Record<string, unknown>;
}

// The schema and the RunRecord type must not drift apart: every record the code can write passes the schema's
// types, and both name the same fields (a field added to one only fails typecheck here).
type SchemaRecord = z.output<typeof RunRecordSchema>;
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never]
  ? true
  : false;
// (findings: the schema takes any finding that has the fields every finding has; diagnose/findings.ts types them.)
const recordFitsSchema = (record: Omit<RunRecord, 'findings'>): Omit<SchemaRecord, 'findings'> => record;
const sameFields: SameKeys<RunRecord, SchemaRecord> = true;
void recordFitsSchema;
void sameFields;

/**
 * Every cloud resource a command creates, recorded the moment its insert is
 * accepted and released at the end: always for temporary things (instances,
 * staging objects), on failure for things kept for reuse (images), never for
 * what the user asked to keep.
 */
import type { GcpTarget } from './config.js';
import { type GcpCall, type GcpResourceRef, RELEASE_ORDER, releaseCalls } from './plan.js';

export interface LedgerReleaseResult {
  deleted: GcpResourceRef[];
  kept: GcpResourceRef[];
  /** Deletes that failed: the user must clean these up (`uniprove gcp gc`). */
  failed: { resource: GcpResourceRef; message: string }[];
}

/** The resources of one command run. Not shared between runs. */
export class ResourceLedger {
  readonly #entries: GcpResourceRef[] = [];

  /** Record a resource; call this as soon as the API accepted its creation. */
  record(resource: GcpResourceRef): void {
    if (!this.#entries.some((e) => sameResource(e, resource))) this.#entries.push({ ...resource });
  }

  /** Forget a resource that is gone already (deleted in the main flow). */
  forget(resource: Pick<GcpResourceRef, 'kind' | 'name'>): void {
    const i = this.#entries.findIndex((e) => e.kind === resource.kind && e.name === resource.name);
    if (i >= 0) this.#entries.splice(i, 1);
  }

  /** What is recorded now. */
  list(): GcpResourceRef[] {
    return this.#entries.map((e) => ({ ...e }));
  }

  /**
   * Delete what must go, given how the run ended; each delete is tried even if
   * an earlier one failed. `perform` makes the calls (and waits their operations).
   */
  async release(
    target: GcpTarget,
    outcome: 'success' | 'failure',
    perform: (call: GcpCall) => Promise<void>,
  ): Promise<LedgerReleaseResult> {
    const result: LedgerReleaseResult = { deleted: [], kept: [], failed: [] };
    const ordered = this.#entries
      .map((r, i) => ({ r, i }))
      .sort((a, b) => RELEASE_ORDER.indexOf(a.r.kind) - RELEASE_ORDER.indexOf(b.r.kind) || b.i - a.i)
      .map(({ r }) => r);
    for (const resource of ordered) {
      const goes =
        resource.release === 'always' || (resource.release === 'on-failure' && outcome === 'failure');
      if (!goes) {
        result.kept.push(resource);
        continue;
      }
      try {
        for (const call of releaseCalls(target, resource)) await perform(call);
        result.deleted.push(resource);
        this.forget(resource);
      } catch (error) {
        result.failed.push({ resource, message: error instanceof Error ? error.message : String(error) });
      }
    }
    return result;
  }
}

function sameResource(a: GcpResourceRef, b: GcpResourceRef): boolean {
  return a.kind === b.kind && a.name === b.name && a.zone === b.zone && a.bucket === b.bucket;
}

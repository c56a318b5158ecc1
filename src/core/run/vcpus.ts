/**
 * How many vCPUs a run gets, and the prover's thread pools sized to match. A run that asks for more than one
 * vCPU on a kernel with Nanos's unmap deadlock (machine/unmap-probe.ts) gets one, with a warning naming the
 * deadlock and its fix, unless the user insists (--allow-unmap-deadlock, or the recipe's
 * resources.allowUnmapDeadlock); the record says what was asked, what was used and why.
 */
import { UniproveError } from '../errors.js';
import { withVcpus } from '../manifest/build.js';
import type { PreparedTarget } from '../package/target.js';
import type { RunRecord, RunVcpus, RunWarning } from '../record/record.js';

/** The kernel's verdict, as the vCPU decision needs it (machine/unmap-probe.ts UnmapVerdict). */
export interface KernelVerdict {
  affected: boolean | undefined;
  kernel: { version: string };
  detail: string;
}

/** What a front end gives the lifecycle to decide the vCPUs with. */
export interface VcpuPolicy {
  /** The installed kernel's verdict; asked only for a run of more than one vCPU. */
  verdict: () => Promise<KernelVerdict>;
  /** Run with the vCPUs asked even on an affected kernel. */
  allowUnmapDeadlock?: boolean;
  /** What to do about an affected kernel (the warning's last sentence). */
  fix: string;
}

/**
 * The target as it should run on this kernel: its vCPUs kept, or one vCPU on an affected kernel (the thread
 * variables following), the decision written into record.vcpus and a warning where it changed the run.
 */
export async function fitVcpus(
  target: PreparedTarget,
  record: RunRecord,
  policy: VcpuPolicy | undefined,
): Promise<PreparedTarget> {
  const asked = Math.max(1, target.config.RunConfig?.CPUs ?? 1);
  const vcpus: RunVcpus = {
    asked,
    used: asked,
    ...(target.threadVars.length ? { threadVars: target.threadVars } : {}),
  };
  record.vcpus = vcpus;
  if (asked <= 1 || !policy) return target;
  const verdict = await policy.verdict();
  vcpus.kernel = {
    version: verdict.kernel.version,
    unmapDeadlock: verdict.affected ?? 'unknown',
    detail: verdict.detail,
  };
  if (verdict.affected !== true) return target;
  const threads = target.threadVars.length ? ` and ${target.threadVars.map((v) => `${v}=1`).join(', ')}` : '';
  if (policy.allowUnmapDeadlock || target.recipe?.resources.allowUnmapDeadlock) {
    vcpus.reason = `${asked} vCPUs as asked, on a kernel with the unmap deadlock (allowed)`;
    record.warnings.push({
      code: 'unmap-deadlock-allowed',
      message: `Nanos ${verdict.kernel.version} has the unmap deadlock (${verdict.detail}); running with ${asked} vCPUs as asked: a prover that unmaps file mappings while another thread takes a page fault stops the whole guest. ${policy.fix}`,
    });
    return target;
  }
  vcpus.used = 1;
  vcpus.reason = `1 vCPU instead of ${asked}: Nanos ${verdict.kernel.version} has the unmap deadlock with more than one vCPU`;
  record.warnings.push({
    code: 'unmap-deadlock',
    message: `Nanos ${verdict.kernel.version} has the unmap deadlock with more than one vCPU (${verdict.detail}): this run uses 1 vCPU instead of ${asked}${threads}. To run with ${asked} anyway, pass --allow-unmap-deadlock. ${policy.fix}`,
  });
  return { ...target, config: withVcpus(target.config, 1, target.threadVars) };
}

/**
 * A cloud machine of `vcpus` vCPUs on this kernel: a guest there gets every vCPU of its machine type, so on a
 * kernel with the unmap deadlock uniprove cannot give it fewer. It refuses before anything is made
 * (E_UNMAP_DEADLOCK: an instance that deadlocks spins, billed, until its timeout), unless allowed; returns the
 * warning the record gets (allowed, or a verdict that could not be had), if any.
 */
export async function requireUnmapSafeKernel(
  vcpus: number,
  machine: string,
  policy: VcpuPolicy,
): Promise<RunWarning | undefined> {
  if (vcpus <= 1) return undefined;
  const verdict = await policy.verdict();
  if (verdict.affected === undefined) {
    return {
      code: 'unmap-deadlock-unknown',
      message: `whether Nanos ${verdict.kernel.version} has the unmap deadlock is not known (${verdict.detail}); ${machine} has ${vcpus} vCPUs`,
    };
  }
  if (!verdict.affected) return undefined;
  if (policy.allowUnmapDeadlock) {
    return {
      code: 'unmap-deadlock-allowed',
      message: `Nanos ${verdict.kernel.version} has the unmap deadlock (${verdict.detail}); running on ${machine} with ${vcpus} vCPUs as asked. ${policy.fix}`,
    };
  }
  throw new UniproveError('E_UNMAP_DEADLOCK', {
    message: `Nanos ${verdict.kernel.version} has the unmap deadlock with more than one vCPU (${verdict.detail}), and ${machine} has ${vcpus}: a prover that unmaps file mappings while another thread takes a page fault would stop the whole instance, which then runs (and is billed) until the timeout`,
    hint: `${policy.fix} Or run on a machine of one vCPU (--machine-type n1-standard-1, or --cpus 1 --family n1), or pass --allow-unmap-deadlock to run as asked.`,
    details: { vcpus, machine, nanosVersion: verdict.kernel.version },
  });
}

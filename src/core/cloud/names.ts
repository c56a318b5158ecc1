/**
 * Names and labels of what uniprove creates on Google Cloud. Every resource
 * carries `uniprove: "1"`, so `gcp ls` and `gcp gc` can find it, and the
 * content digest of what it holds, so an identical upload is reused.
 */
import { UniproveError } from '../errors.js';

/** Label keys uniprove sets. */
export const LABEL = {
  owner: 'uniprove',
  digest: 'uniprove-digest',
  run: 'uniprove-run',
  /** Every resource of a fleet: `gcp gc --fleet ID` and the fleet's own sweep find them by it. */
  fleet: 'uniprove-fleet',
  /** A fleet's boot image: the short digest of the program arguments baked into it (fleet-plan.ts argsDigest). */
  args: 'uniprove-args',
} as const;

/** How many hex digits of the sha256 go into the digest label (label values hold at most 63 characters). */
export const DIGEST_LABEL_LENGTH = 40;

const LABEL_KEY_RE = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE_RE = /^[a-z0-9_-]{0,63}$/;
const NAME_RE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The digest as it appears in labels and names: the first 40 hex digits of the sha256. */
export function digestLabel(sha256Hex: string): string {
  return sha256Hex.startsWith('<') ? sha256Hex : sha256Hex.slice(0, DIGEST_LABEL_LENGTH).toLowerCase();
}

/** Turn any text into something a label value or resource name may hold. */
export function slug(text: string, max = 63): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  return s.slice(0, max).replace(/-$/, '');
}

/** A resource name `uniprove-<kind>-<what>-<digest12>`, within GCE's 63 characters. */
export function resourceName(kind: string, what: string, digest: string): string {
  const tail = digest.startsWith('<') ? '<digest>' : digest.slice(0, 12);
  const head = `uniprove-${kind}-`;
  const middle = slug(what, 63 - head.length - tail.length - 1) || 'x';
  return `${head}${middle}-${tail}`;
}

/** Labels for a resource: owner, and the digest and run id when known. */
export function uniproveLabels(
  parts: { digest?: string; runId?: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  const labels: Record<string, string> = { ...extra, [LABEL.owner]: '1' };
  if (parts.digest) labels[LABEL.digest] = digestLabel(parts.digest);
  if (parts.runId) labels[LABEL.run] = parts.runId;
  return labels;
}

/** Check user-given labels against GCE's rules; throws E_USAGE naming the bad one. */
export function checkLabels(labels: Record<string, string>): void {
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY_RE.test(key) || !LABEL_VALUE_RE.test(value)) {
      throw new UniproveError('E_USAGE', {
        message: `label ${key}=${value} is not a valid Compute Engine label`,
        hint: 'Label keys start with a lowercase letter; keys and values hold at most 63 lowercase letters, digits, _ and -.',
      });
    }
  }
}

/** Check a resource name given by the user (image name, bucket-less names). */
export function checkResourceName(name: string, what: string): void {
  if (!NAME_RE.test(name)) {
    throw new UniproveError('E_USAGE', {
      message: `${what} ${JSON.stringify(name)} is not a valid Compute Engine name`,
      hint: 'Names are 1 to 63 lowercase letters, digits and hyphens, start with a letter and do not end with a hyphen.',
    });
  }
}

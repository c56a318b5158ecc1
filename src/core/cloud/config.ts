/**
 * Which Google Cloud project and zone a command talks to.
 *
 * The CLI gathers the sources (flags, environment, gcloud's active
 * configuration file) and core picks, in that order, the first that names a
 * value, remembering where it came from so errors and --json can say so.
 */
import { UniproveError } from '../errors.js';

/** Where a value came from. */
export type GcpValueSource = 'flag' | `env:${string}` | `gcloud:${string}` | 'none';

/** The raw sources, as the CLI found them. */
export interface GcpTargetSources {
  flags: { project?: string | undefined; zone?: string | undefined };
  env: Record<string, string | undefined>;
  /** Properties read from gcloud's active configuration (parseGcloudProperties), with its name. */
  gcloud?: { configuration: string; project?: string | undefined; zone?: string | undefined } | undefined;
}

/** Project and zone, resolved. */
export interface GcpTarget {
  project: string;
  zone: string;
  /** The zone's region (`us-central1-a` -> `us-central1`), where the staging bucket lives. */
  region: string;
  sources: { project: GcpValueSource; zone: GcpValueSource };
}

const PROJECT_ENV = ['CLOUDSDK_CORE_PROJECT', 'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT'];
const ZONE_ENV = ['CLOUDSDK_COMPUTE_ZONE'];

// Project ids: 6-30 chars of [a-z0-9-], starting with a letter; legacy domain-scoped ids carry `domain:`.
const PROJECT_RE = /^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const ZONE_RE = /^[a-z]+-[a-z]+[0-9]+-[a-z]$/;

/** Read `[core] project` and `[compute] zone` from the text of a gcloud configuration file (INI). */
export function parseGcloudProperties(text: string): { project?: string; zone?: string; account?: string } {
  const out: { project?: string; zone?: string; account?: string } = {};
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      continue;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(line);
    if (!kv) continue;
    const key = kv[1]!.trim();
    const value = kv[2]!.trim();
    if (!value) continue;
    if (section === 'core' && key === 'project') out.project = value;
    else if (section === 'core' && key === 'account') out.account = value;
    else if (section === 'compute' && key === 'zone') out.zone = value;
  }
  return out;
}

/** Where gcloud keeps its configuration, given the environment and the home folder. */
export function gcloudConfigDir(env: Record<string, string | undefined>, home: string): string {
  return env.CLOUDSDK_CONFIG || `${home}/.config/gcloud`;
}

/** The name of gcloud's active configuration: CLOUDSDK_ACTIVE_CONFIG_NAME, else the `active_config` file's text. */
export function gcloudActiveConfiguration(
  env: Record<string, string | undefined>,
  activeConfigFileText: string | undefined,
): string {
  return env.CLOUDSDK_ACTIVE_CONFIG_NAME || activeConfigFileText?.trim() || 'default';
}

/** Pick project and zone: flags, then environment, then gcloud's configuration. */
export function resolveGcpTarget(sources: GcpTargetSources): GcpTarget {
  const pick = (flag: string | undefined, envNames: string[], fromGcloud: string | undefined) => {
    if (flag) return { value: flag, source: 'flag' as GcpValueSource };
    for (const name of envNames) {
      const value = sources.env[name];
      if (value) return { value, source: `env:${name}` as GcpValueSource };
    }
    if (fromGcloud && sources.gcloud) {
      return { value: fromGcloud, source: `gcloud:${sources.gcloud.configuration}` as GcpValueSource };
    }
    return { value: '', source: 'none' as GcpValueSource };
  };
  const project = pick(sources.flags.project, PROJECT_ENV, sources.gcloud?.project);
  const zone = pick(sources.flags.zone, ZONE_ENV, sources.gcloud?.zone);
  if (!project.value) {
    throw new UniproveError('E_GCP_AUTH', {
      message: 'no Google Cloud project: none given with --project, CLOUDSDK_CORE_PROJECT or gcloud',
      hint: 'Pass --project PROJECT_ID, or run `gcloud config set project PROJECT_ID`.',
    });
  }
  if (!PROJECT_RE.test(project.value)) {
    throw new UniproveError('E_USAGE', {
      message: `project id ${JSON.stringify(project.value)} (from ${project.source}) is not a valid project id`,
      hint: 'A project id is 6 to 30 lowercase letters, digits and hyphens, starting with a letter (`gcloud projects list` shows yours).',
    });
  }
  if (!zone.value) {
    throw new UniproveError('E_USAGE', {
      message: 'no Compute Engine zone: none given with --zone, CLOUDSDK_COMPUTE_ZONE or gcloud',
      hint: 'Pass --zone ZONE (for example us-central1-a), or run `gcloud config set compute/zone ZONE`.',
    });
  }
  if (!ZONE_RE.test(zone.value)) {
    throw new UniproveError('E_USAGE', {
      message: `zone ${JSON.stringify(zone.value)} (from ${zone.source}) is not a zone name`,
      hint: 'A zone looks like us-central1-a (`gcloud compute zones list` shows them).',
    });
  }
  return {
    project: project.value,
    zone: zone.value,
    region: zone.value.replace(/-[a-z]$/, ''),
    sources: { project: project.source, zone: zone.source },
  };
}

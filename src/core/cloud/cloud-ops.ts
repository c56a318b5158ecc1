/**
 * Cloud-side logs and metrics (`gcp run --cloud-logging / --cloud-metrics`): Nanos's `gcp` klib sends the
 * console to Cloud Logging and memory metrics to Cloud Monitoring from inside the instance.
 *
 * The klib (nanos klib/gcp.c) is configured by a `gcp` tuple in the image's root tuple, which Ops writes from
 * ManifestPassthrough: `gcp.logging` (optional `log_id`; default the instance's hostname) turns on its console
 * driver (POST logging.googleapis.com/v2/entries:write), `gcp.metrics` (optional `interval` in seconds, 60 at
 * least) its memory metrics (POST monitoring.googleapis.com/v3/projects/P/timeSeries). Without the tuple the
 * klib loads and does nothing. It needs the `tls` klib, and an access token from the metadata server, which an
 * instance has only when it runs as a service account with scopes that allow the writes.
 */
import type { OpsConfig } from '../manifest/schema.js';

/** What `--cloud-logging`, `--cloud-metrics` and `--service-account` ask. */
export interface CloudOpsSpec {
  logging: boolean;
  metrics: boolean;
  /** The service account the instance runs as: an email, or `default` (the project's Compute Engine default). */
  serviceAccount: string;
  /** Cloud Logging's log id (default the instance's hostname, i.e. its name). */
  logId?: string;
  /** Seconds between memory metrics (60 at least; default 60). */
  metricsIntervalSeconds?: number;
}

/** OAuth scopes an instance needs for what the klib writes. */
export const CLOUD_OPS_SCOPES = {
  logging: 'https://www.googleapis.com/auth/logging.write',
  metrics: 'https://www.googleapis.com/auth/monitoring.write',
} as const;

/** IAM roles the service account needs, for the docs and the dry run. */
export const CLOUD_OPS_ROLES = {
  logging: 'roles/logging.logWriter',
  metrics: 'roles/monitoring.metricWriter',
} as const;

/** The klibs the gcp klib needs loaded (it uses TLS to reach the Google APIs). */
export const CLOUD_OPS_KLIBS = ['gcp', 'tls'];

/** The `gcp` tuple of the manifest for a spec (ManifestPassthrough.gcp). */
export function cloudOpsTuple(spec: CloudOpsSpec): Record<string, unknown> {
  return {
    ...(spec.logging ? { logging: spec.logId ? { log_id: spec.logId } : {} } : {}),
    ...(spec.metrics ? { metrics: { interval: String(spec.metricsIntervalSeconds ?? 60) } } : {}),
  };
}

/** An Ops config with the gcp klib (and tls) loaded and configured; unchanged when neither is asked. */
export function withCloudOps(config: OpsConfig, spec: CloudOpsSpec | undefined): OpsConfig {
  if (!spec || (!spec.logging && !spec.metrics)) return config;
  const klibs = [...(config.Klibs ?? [])];
  for (const k of CLOUD_OPS_KLIBS) if (!klibs.includes(k)) klibs.push(k);
  return {
    ...config,
    Klibs: klibs,
    ManifestPassthrough: { ...config.ManifestPassthrough, gcp: cloudOpsTuple(spec) },
  };
}

/** The instance's serviceAccounts (instances.insert), or undefined when nothing needs one. */
export function cloudOpsServiceAccounts(
  spec: CloudOpsSpec | undefined,
): { email: string; scopes: string[] }[] | undefined {
  if (!spec || (!spec.logging && !spec.metrics)) return undefined;
  return [
    {
      email: spec.serviceAccount,
      scopes: [
        ...(spec.logging ? [CLOUD_OPS_SCOPES.logging] : []),
        ...(spec.metrics ? [CLOUD_OPS_SCOPES.metrics] : []),
      ],
    },
  ];
}

/** What a dry run shows of it: the klibs and manifest tuple the image gets, the account and what it needs. */
export function cloudOpsPlan(spec: CloudOpsSpec) {
  return {
    klibs: CLOUD_OPS_KLIBS,
    manifestPassthrough: { gcp: cloudOpsTuple(spec) },
    serviceAccounts: cloudOpsServiceAccounts(spec) ?? [],
    roles: [
      ...(spec.logging ? [CLOUD_OPS_ROLES.logging] : []),
      ...(spec.metrics ? [CLOUD_OPS_ROLES.metrics] : []),
    ],
  };
}

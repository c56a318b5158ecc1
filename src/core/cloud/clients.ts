/**
 * The official Google Cloud clients, loaded only when a GCP command runs
 * (importing them takes a second or two).
 *
 * Credentials are Application Default Credentials unless an access token is
 * given. Endpoints can point elsewhere (a local test server speaking the same
 * REST API); the compute clients always speak REST (gax `fallback`).
 */
import { createRequire } from 'node:module';
import type {
  DisksClient,
  GlobalOperationsClient,
  ImagesClient,
  InstancesClient,
  ZoneOperationsClient,
} from '@google-cloud/compute';
import type { Storage } from '@google-cloud/storage';
import { UniproveError } from '../errors.js';

/** Where the APIs live; both default to Google's. */
export interface GcpEndpoints {
  /** e.g. `http://127.0.0.1:8080`; the compute REST paths (`/compute/v1/...`) are appended. */
  compute?: string;
  /** e.g. `http://127.0.0.1:8080`; the storage JSON API paths (`/storage/v1/...`) are appended. */
  storage?: string;
}

export interface GcpClientOptions {
  project: string;
  endpoints?: GcpEndpoints;
  /** An OAuth access token to use instead of Application Default Credentials (as gcloud's CLOUDSDK_AUTH_ACCESS_TOKEN). */
  accessToken?: string;
}

/** The clients a command uses. */
export interface GcpClients {
  project: string;
  images: ImagesClient;
  disks: DisksClient;
  instances: InstancesClient;
  zoneOperations: ZoneOperationsClient;
  globalOperations: GlobalOperationsClient;
  storage: Storage;
  /** Fail early, with E_GCP_AUTH and the command to fix it, when there are no usable credentials. */
  checkAuth(): Promise<void>;
  close(): Promise<void>;
}

const SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];

// google-auth-library is not a dependency of ours: use the copy each client library was built against.
function authLibraryOf(pkg: '@google-cloud/compute' | '@google-cloud/storage') {
  const here = createRequire(import.meta.url);
  const fromPkg = createRequire(here.resolve(pkg));
  const base = pkg === '@google-cloud/compute' ? createRequire(fromPkg.resolve('google-gax')) : fromPkg;
  return base('google-auth-library') as typeof import('google-auth-library');
}

function tokenClient(pkg: '@google-cloud/compute' | '@google-cloud/storage', token: string) {
  const { OAuth2Client } = authLibraryOf(pkg);
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token, expiry_date: Date.now() + 3600_000 });
  return client;
}

/** Load the client libraries and build the clients. */
export async function createGcpClients(options: GcpClientOptions): Promise<GcpClients> {
  const compute = await import('@google-cloud/compute');
  const { Storage } = await import('@google-cloud/storage');
  // biome-ignore lint/suspicious/noExplicitAny: options differ between the auth library copies
  const computeOptions: Record<string, any> = { fallback: true, projectId: options.project };
  if (options.endpoints?.compute) {
    const url = new URL(options.endpoints.compute);
    computeOptions.apiEndpoint = url.hostname;
    computeOptions.port = Number(url.port || (url.protocol === 'http:' ? 80 : 443));
    computeOptions.protocol = url.protocol.replace(':', '');
  }
  if (options.accessToken) {
    computeOptions.authClient = tokenClient('@google-cloud/compute', options.accessToken);
  } else {
    const { GoogleAuth } = authLibraryOf('@google-cloud/compute');
    computeOptions.auth = new GoogleAuth({ scopes: SCOPES });
  }
  const storageOptions: Record<string, unknown> = { projectId: options.project };
  if (options.endpoints?.storage) {
    storageOptions.apiEndpoint = options.endpoints.storage.replace(/\/$/, '');
    storageOptions.useAuthWithCustomEndpoint = true;
  }
  if (options.accessToken)
    storageOptions.authClient = tokenClient('@google-cloud/storage', options.accessToken);
  const images = new compute.ImagesClient({ ...computeOptions });
  const disks = new compute.DisksClient({ ...computeOptions });
  const instances = new compute.InstancesClient({ ...computeOptions });
  const zoneOperations = new compute.ZoneOperationsClient({ ...computeOptions });
  const globalOperations = new compute.GlobalOperationsClient({ ...computeOptions });
  const storage = new Storage(storageOptions);
  const all = [images, disks, instances, zoneOperations, globalOperations];
  return {
    project: options.project,
    images,
    disks,
    instances,
    zoneOperations,
    globalOperations,
    storage,
    async checkAuth() {
      if (options.accessToken) return;
      try {
        const auth = computeOptions.auth as { getAccessToken(): Promise<string | null | undefined> };
        const token = await auth.getAccessToken();
        if (!token) throw new Error('no access token');
      } catch (error) {
        throw authError(error);
      }
    },
    async close() {
      await Promise.all(all.map((c) => c.close().catch(() => {})));
    },
  };
}

/** The error for missing or unusable credentials, without any of their content. */
export function authError(error: unknown): UniproveError {
  const text = error instanceof Error ? error.message : String(error);
  const reason = /Could not load the default credentials/i.test(text)
    ? 'no Application Default Credentials found'
    : /invalid_grant|invalid_rapt|reauth/i.test(text)
      ? 'the Application Default Credentials have expired or were revoked'
      : 'the Google Cloud credentials could not be used';
  return new UniproveError('E_GCP_AUTH', {
    message: reason,
    hint: 'Run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file), then try again.',
    cause: new Error(redact(text)),
  });
}

/** Remove anything that looks like a credential from a message. */
export function redact(text: string): string {
  return text
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1[redacted]')
    .replace(/ya29\.[A-Za-z0-9._-]+/g, '[redacted]')
    .replace(
      /("?(?:access_token|refresh_token|client_secret|private_key|id_token)"?\s*[:=]\s*)"[^"]*"/gi,
      '$1"[redacted]"',
    );
}

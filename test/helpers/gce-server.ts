/**
 * A local stand-in for the Compute Engine v1 REST API and the Cloud Storage
 * JSON API, on 127.0.0.1, for contract tests of the official clients.
 *
 * It checks every request against the documented REST shape (required
 * fields, URL formats, label rules, Spot and GPU scheduling rules) and
 * answers 400 to anything off-spec, recording a violation the test asserts
 * empty. Operations go PENDING -> RUNNING -> DONE, one step per poll, and
 * faults can be injected at any call, either on the request (an HTTP error)
 * or in the operation (an error when it is DONE). Instances print a scripted
 * serial console, served in small pieces, then power off.
 *
 * For fleets it also plays Compute Engine's bad days: Spot preemptions (the
 * instance stops, or is deleted with instanceTerminationAction DELETE, and a
 * `compute.instances.preempted` operation is listed by zoneOperations.list),
 * exhausted zones and quotas (operation errors on instances.insert, shaped as
 * Compute Engine returns them), rate limits (403/429 rateLimitExceeded), and
 * slow operations (insert, boot, prove, delete latencies, so a bench can
 * scale real ones down). Disks and instances are kept per zone, as names are.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  api: string;
  body?: unknown;
  authorization?: string;
}

export interface Fault {
  /** API method, as in the REST reference: images.insert, instances.insert, storage.objects.insert... */
  method: string;
  /**
   * request: the call itself fails with `status`; operation: the call is accepted and its operation fails;
   * response (instances.insert): the call is carried out and its answer lost, an HTTP `status` in its place.
   */
  at: 'request' | 'operation' | 'response';
  code: string;
  message?: string;
  status?: number;
}

interface Operation {
  name: string;
  zone?: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  operationType: string;
  targetLink: string;
  error?: { code: string; message: string; errorDetails?: unknown[] };
  /** The HTTP status Compute Engine reports for the operation's error (503 for capacity, 403 for quota). */
  httpError?: { status: number; message: string };
  /** Not DONE before this time (ms since the epoch): latencies. */
  readyAt?: number;
  statusMessage?: string;
  insertTime: string;
  onDone?: () => void;
  onError?: () => void;
}

interface Image {
  name: string;
  status: 'PENDING' | 'READY' | 'FAILED';
  labels: Record<string, string>;
  diskSizeGb: string;
  creationTimestamp: string;
  rawDisk: { source: string };
}
interface Disk {
  name: string;
  zone: string;
  status: 'CREATING' | 'READY' | 'FAILED';
  labels: Record<string, string>;
  sizeGb: string;
  type: string;
  sourceImage?: string;
  users: string[];
  creationTimestamp: string;
}
interface Instance {
  name: string;
  zone: string;
  status: 'PROVISIONING' | 'STAGING' | 'RUNNING' | 'STOPPING' | 'TERMINATED';
  labels: Record<string, string>;
  body: Record<string, unknown>;
  creationTimestamp: string;
  consoleText: string;
  revealed: number;
  serialReads: number;
  autoDeleteDisks: string[];
  attachedDisks: string[];
  /** Non-boot disks made with the instance from initializeParams. */
  createdDisks: {
    name: string;
    labels: Record<string, string>;
    sizeGb: string;
    type: string;
    sourceImage: string;
  }[];
  /** When it went RUNNING (ms since the epoch), for the time-driven console. */
  runningAt?: number;
  preempted?: boolean;
}
interface StoredObject {
  bucket: string;
  name: string;
  bytes: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  timeCreated: string;
}

export interface GceServerOptions {
  token?: string;
  /**
   * The serial console an instance prints (whole text); default a few lines. It may look at the server's state
   * (the image the instance boots, as Compute Engine boots what that image holds).
   */
  console?: (instance: string, body: Record<string, unknown>, server: GceServer) => string;
  /** Bytes revealed per getSerialPortOutput call (small, so lines are cut across reads). */
  serialChunk?: number;
  /**
   * Time-driven instances instead of one step per poll: instances.insert is DONE after insertMs,
   * the console's first line appears bootMs after RUNNING, the rest proveMs later, then the
   * instance powers off; instances.delete is DONE after deleteMs.
   */
  latency?: GceLatency;
  /** Bytes getSerialPortOutput keeps (Compute Engine: 1 MiB); older output is dropped. */
  serialWindow?: number;
  /**
   * A slow upload: the data of a resumable upload session is never read nor answered (the client's socket
   * stays open, backed up, as on a slow link), until the client goes away or the server closes.
   */
  stallUploads?: boolean;
}

/** Latencies of a time-driven server (ms). */
export interface GceLatency {
  insertMs?: number;
  bootMs?: number;
  proveMs?: number;
  deleteMs?: number;
}

/** What getSerialPortOutput keeps, as on Compute Engine. */
export const SERIAL_WINDOW = 1 << 20;

/** A map of zonal resources keyed `zone/name`; a bare name finds the first of that name in any zone. */
class ZonedMap<V extends { zone: string; name: string }> extends Map<string, V> {
  #key(k: string): string | undefined {
    if (k.includes('/')) return k;
    for (const [key, v] of super.entries()) if (v.name === k) return key;
    return undefined;
  }
  override get(k: string): V | undefined {
    const key = this.#key(k);
    return key === undefined ? undefined : super.get(key);
  }
  override has(k: string): boolean {
    const key = this.#key(k);
    return key !== undefined && super.has(key);
  }
  override delete(k: string): boolean {
    const key = this.#key(k);
    return key !== undefined && super.delete(key);
  }
  override set(_k: string, v: V): this {
    return super.set(`${v.zone}/${v.name}`, v);
  }
}

const NAME_RE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY_RE = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE_RE = /^[a-z0-9_-]{0,63}$/;
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

class Invalid extends Error {}

/** What a compute route needs of its request. */
interface ComputeRequest {
  method: string;
  path: string;
  project: string;
  body: unknown;
  url: URL;
  route: (api: string) => void;
  res: ServerResponse;
}

const NOT_HANDLED = Symbol('not handled');

/** A running fake; close() when done. */
export class GceServer {
  readonly token: string;
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];
  readonly images = new Map<string, Image>();
  readonly disks = new ZonedMap<Disk>();
  readonly instances = new ZonedMap<Instance>();
  readonly buckets = new Map<string, { name: string; location: string; labels: Record<string, string> }>();
  readonly objects = new Map<string, StoredObject>();
  readonly operations = new Map<string, Operation>();
  readonly faults: Fault[] = [];
  /** Upload PUTs held unanswered (`stallUploads`). */
  stalledUploads = 0;
  /** Of those, the ones whose connection the client still holds open. */
  openStalledUploads = 0;
  /** Instances that go TERMINATED (preempted) after this many serial reads. */
  preemptAfterSerialReads: number | undefined;
  /** Zones whose every instances.insert fails with ZONE_RESOURCE_POOL_EXHAUSTED. */
  readonly exhaustedZones = new Set<string>();
  /** Instances a zone holds at most (live and being inserted) before QUOTA_EXCEEDED. */
  readonly instanceQuota = new Map<string, number>();
  #preemptions: { count: number; afterMs?: number; afterSerialReads?: number }[] = [];
  #rateLimits: { count: number; status: 403 | 429; methods?: string[] }[] = [];
  #timers = new Set<NodeJS.Timeout>();
  /** The uploaded tarballs, by object name, kept after deletion for inspection. */
  readonly uploads = new Map<string, Buffer>();
  #server: Server;
  #port = 0;
  #sessions = new Map<
    string,
    { bucket: string; name: string; chunks: Buffer[]; meta: Record<string, unknown> }
  >();
  #opCounter = 0;
  /** Operations by the requestId of the insert that started them: a repeat is answered with the same one. */
  #byRequestId = new Map<string, string>();
  #options: GceServerOptions;

  private constructor(options: GceServerOptions) {
    this.#options = options;
    this.token = options.token ?? `test-token-${randomUUID()}`;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error) => {
        this.violations.push(`server error: ${error instanceof Error ? error.stack : error}`);
        send(res, 500, { error: { code: 500, message: String(error) } });
      });
    });
  }

  static async start(options: GceServerOptions = {}): Promise<GceServer> {
    const s = new GceServer(options);
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    s.#port = (s.#server.address() as { port: number }).port;
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Inject a one-shot fault. */
  fail(fault: Fault): void {
    this.faults.push(fault);
  }

  /**
   * Preempt the next `count` instances that go RUNNING: `afterMs` into their run (time-driven), or
   * at their `afterSerialReads`-th console read (default 1).
   */
  preemptNext(count: number, when: { afterMs?: number; afterSerialReads?: number } = {}): void {
    this.#preemptions.push({ count, ...when });
  }

  /**
   * Preempt an instance now, as Compute Engine does: a DONE `compute.instances.preempted` operation
   * in its zone, the console stops, and the instance goes TERMINATED, or is deleted with its
   * auto-delete disks when its instanceTerminationAction is DELETE.
   */
  preempt(name: string): void {
    const inst = this.instances.get(name);
    if (!inst || inst.preempted || inst.status === 'TERMINATED') return;
    inst.preempted = true;
    const op = this.#newOperation(
      'compute.instances.preempted',
      `zones/${inst.zone}/instances/${inst.name}`,
      'instances.preempted',
      inst.zone,
    );
    op.status = 'DONE';
    op.statusMessage = 'Instance was preempted.';
    const scheduling = (inst.body.scheduling ?? {}) as Record<string, unknown>;
    if (scheduling.instanceTerminationAction === 'DELETE') this.#removeInstance(inst);
    else inst.status = 'TERMINATED';
  }

  /** Fail the next `count` compute requests (of `methods`, default any but operation polls) with rateLimitExceeded. */
  rateLimitNext(count: number, status: 403 | 429 = 403, methods?: string[]): void {
    this.#rateLimits.push({ count, status, ...(methods ? { methods } : {}) });
  }

  /** Instances (also those still PROVISIONING) and disks: what a fleet must leave empty. */
  inventory(filter: { label?: [string, string] } = {}): string[] {
    const match = (labels: Record<string, string>) =>
      !filter.label || labels[filter.label[0]] === filter.label[1];
    return [
      ...[...this.instances.values()]
        .filter((i) => match(i.labels))
        .map((i) => `instance ${i.zone}/${i.name}`),
      ...[...this.disks.values()].filter((d) => match(d.labels)).map((d) => `disk ${d.zone}/${d.name}`),
    ];
  }

  /** Resources that lack a label (every resource of a fleet must carry uniprove-fleet). */
  unlabelled(key: string): string[] {
    return [
      ...[...this.instances.values()].filter((i) => !(key in i.labels)).map((i) => `instance ${i.name}`),
      ...[...this.disks.values()].filter((d) => !(key in d.labels)).map((d) => `disk ${d.name}`),
      ...[...this.images.values()].filter((i) => !(key in i.labels)).map((i) => `image ${i.name}`),
    ];
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.#timers.add(t);
  }

  #removeInstance(inst: Instance): void {
    this.instances.delete(`${inst.zone}/${inst.name}`);
    for (const d of inst.autoDeleteDisks) this.disks.delete(`${inst.zone}/${d}`);
    for (const d of this.disks.values()) d.users = d.users.filter((u) => u !== inst.name);
  }

  /** Schedule or count the preemption of an instance that just went RUNNING. */
  #armPreemption(inst: Instance): void {
    const next = this.#preemptions.find((p) => p.count > 0);
    if (!next) return;
    next.count--;
    if (next.afterMs !== undefined) this.#later(next.afterMs, () => this.preempt(inst.name));
    else (inst as Instance & { preemptAtRead?: number }).preemptAtRead = next.afterSerialReads ?? 1;
  }

  #capacityError(zone: string, project: string): (Operation['error'] & {}) | undefined {
    const help = {
      help: {
        links: [
          {
            description: 'Troubleshooting documentation',
            url: 'https://cloud.google.com/compute/docs/resource-error',
          },
        ],
      },
    };
    if (this.exhaustedZones.has(zone)) {
      return {
        code: 'ZONE_RESOURCE_POOL_EXHAUSTED',
        message: `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`,
        errorDetails: [help],
      };
    }
    const quota = this.instanceQuota.get(zone);
    if (quota !== undefined) {
      const live = [...this.instances.values()].filter(
        (i) => i.zone === zone && i.status !== 'TERMINATED',
      ).length;
      if (live >= quota) {
        return {
          code: 'QUOTA_EXCEEDED',
          message: `Quota 'INSTANCES' exceeded.  Limit: ${quota}.0 in region ${zone.replace(/-[a-z]$/, '')}.`,
          errorDetails: [
            {
              quotaInfo: {
                metricName: 'compute.googleapis.com/instances',
                limitName: 'INSTANCES-per-project-region',
                dimensions: { region: zone.replace(/-[a-z]$/, '') },
                limit: quota,
              },
            },
            help,
          ],
        };
      }
    }
    return undefined;
  }

  #rateLimited(api: string): void {
    if (/Operations\.(get|wait)$/.test(api)) return;
    const limit = this.#rateLimits.find((r) => r.count > 0 && (!r.methods || r.methods.includes(api)));
    if (!limit) return;
    limit.count--;
    const message = 'Rate Limit Exceeded';
    throw new HttpError(limit.status, {
      error: {
        code: limit.status,
        message,
        errors: [{ message, domain: 'usageLimits', reason: 'rateLimitExceeded' }],
        ...(limit.status === 429 ? { status: 'RESOURCE_EXHAUSTED' } : {}),
      },
    });
  }

  /** What is left: every resource a test expects gone. */
  leftovers(): string[] {
    return [
      ...[...this.instances.values()].map((i) => `instance ${i.name}`),
      ...[...this.disks.values()].map((d) => `disk ${d.name}`),
      ...[...this.images.keys()].map((k) => `image ${k}`),
      ...[...this.objects.keys()].map((k) => `object ${k}`),
    ];
  }

  /** API methods called, in order. */
  calls(): string[] {
    return this.requests.map((r) => r.api);
  }

  #takeFault(method: string, at: Fault['at']): Fault | undefined {
    const i = this.faults.findIndex((f) => f.method === method && f.at === at);
    if (i < 0) return undefined;
    return this.faults.splice(i, 1)[0];
  }

  #newOperation(
    type: string,
    target: string,
    method: string,
    zone: string | undefined,
    onDone?: () => void,
    onError?: () => void,
  ) {
    const fault = this.#takeFault(method, 'operation');
    const op: Operation = {
      name: `operation-${++this.#opCounter}-${randomUUID().slice(0, 8)}`,
      ...(zone ? { zone } : {}),
      status: 'PENDING',
      operationType: type,
      targetLink: target,
      ...(fault ? { error: { code: fault.code, message: fault.message ?? `${fault.code} (injected)` } } : {}),
      insertTime: new Date().toISOString(),
      onDone,
      onError,
    };
    this.operations.set(op.name, op);
    return op;
  }

  #opJson(op: Operation, project: string) {
    const scope = op.zone ? `zones/${op.zone}` : 'global';
    return {
      kind: 'compute#operation',
      id: String(this.#opCounter),
      name: op.name,
      operationType: op.operationType,
      targetLink: op.targetLink,
      status: op.status,
      progress: op.status === 'DONE' ? 100 : op.status === 'RUNNING' ? 50 : 0,
      ...(op.zone ? { zone: `${this.url}/compute/v1/projects/${project}/zones/${op.zone}` } : {}),
      selfLink: `${this.url}/compute/v1/projects/${project}/${scope}/operations/${op.name}`,
      insertTime: op.insertTime,
      ...(op.statusMessage ? { statusMessage: op.statusMessage } : {}),
      ...(op.status === 'DONE' && op.error
        ? {
            error: { errors: [op.error] },
            httpErrorStatusCode: op.httpError?.status ?? 503,
            httpErrorMessage: op.httpError?.message ?? 'SERVICE UNAVAILABLE',
          }
        : {}),
    };
  }

  #advance(op: Operation) {
    if (op.status === 'PENDING') op.status = 'RUNNING';
    else if (op.status === 'RUNNING' && (op.readyAt === undefined || Date.now() >= op.readyAt)) {
      op.status = 'DONE';
      if (op.error) op.onError?.();
      else op.onDone?.();
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    if (
      this.#options.stallUploads &&
      req.method === 'PUT' &&
      url.pathname.startsWith('/upload/') &&
      url.searchParams.has('upload_id')
    ) {
      this.stalledUploads++;
      this.openStalledUploads++;
      req.socket.once('close', () => this.openStalledUploads--);
      this.requests.push({
        method: 'PUT',
        path: url.pathname,
        query: {},
        api: 'storage.objects.insert (stalled)',
      });
      req.pause();
      return;
    }
    const raw = await readBody(req);
    const query = Object.fromEntries(url.searchParams);
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      api: '?',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    };
    this.requests.push(rec);
    // As in Cloud Storage, a resumable session's URI authorises its data: those PUTs carry no token.
    const sessionPut =
      req.method === 'PUT' &&
      url.pathname.startsWith('/upload/') &&
      this.#sessions.has(query.upload_id ?? '');
    if (req.headers.authorization !== `Bearer ${this.token}` && !(sessionPut && !req.headers.authorization)) {
      this.violations.push(`${req.method} ${url.pathname}: missing or wrong bearer token`);
      return send(res, 401, {
        error: { code: 401, message: 'Request is missing required authentication credential.' },
      });
    }
    try {
      if (url.pathname.startsWith('/compute/v1/projects/')) {
        return await this.#compute(req.method ?? 'GET', url, raw, rec, res);
      }
      if (url.pathname.startsWith('/storage/v1/') || url.pathname.startsWith('/upload/storage/v1/')) {
        return await this.#storage(req, url, raw, rec, res);
      }
      throw new Invalid(`unknown endpoint ${req.method} ${url.pathname}`);
    } catch (error) {
      if (error instanceof Invalid) {
        this.violations.push(`${rec.api} ${req.method} ${url.pathname}: ${error.message}`);
        return send(res, 400, {
          error: {
            code: 400,
            message: `Invalid request: ${error.message}`,
            errors: [{ reason: 'invalid', message: error.message }],
          },
        });
      }
      if (error instanceof HttpError) {
        return send(res, error.status, error.body);
      }
      throw error;
    }
  }

  #injected(api: string) {
    const fault = this.#takeFault(api, 'request');
    if (!fault) return;
    const status = fault.status ?? 403;
    const message = fault.message ?? `${fault.code} (injected)`;
    throw new HttpError(status, {
      error: { code: status, message, errors: [{ reason: fault.code, message, domain: 'usageLimits' }] },
    });
  }

  async #compute(method: string, url: URL, raw: Buffer, rec: RecordedRequest, res: ServerResponse) {
    const parts = url.pathname.split('/').slice(4); // after /compute/v1/projects
    const project = parts[0]!;
    const rest = parts.slice(1);
    const body = raw.length ? parseJson(raw) : undefined;
    rec.body = body;
    const path = rest.join('/');
    const route = (api: string) => {
      rec.api = api;
      this.#injected(api);
      this.#rateLimited(api);
    };
    let m: RegExpExecArray | null;
    // ---- zone operations list (preemptions are found here)
    m = /^zones\/([^/]+)\/operations$/.exec(path);
    if (m && method === 'GET') {
      route('zoneOperations.list');
      const zone = m[1]!;
      const items = [...this.operations.values()]
        .filter((op) => op.zone === zone && matchOperationFilter(url.searchParams.get('filter') ?? '', op))
        .map((op) => this.#opJson(op, project));
      return send(res, 200, { kind: 'compute#operationList', items });
    }
    // ---- global operations / zone operations
    m = /^global\/operations\/([^/]+)(\/wait)?$/.exec(path);
    if (m && (method === 'GET' || m[2])) {
      route(m[2] ? 'globalOperations.wait' : 'globalOperations.get');
      const op = this.operations.get(m[1]!);
      if (!op || op.zone) throw notFound(`operation ${m[1]}`);
      this.#advance(op);
      if (m[2]) while (op.status !== 'DONE') this.#advance(op);
      return send(res, 200, this.#opJson(op, project));
    }
    m = /^zones\/([^/]+)\/operations\/([^/]+)(\/wait)?$/.exec(path);
    if (m) {
      route(m[3] ? 'zoneOperations.wait' : 'zoneOperations.get');
      const op = this.operations.get(m[2]!);
      if (!op || op.zone !== m[1]) throw notFound(`operation ${m[2]}`);
      this.#advance(op);
      if (m[3]) while (op.status !== 'DONE') this.#advance(op);
      return send(res, 200, this.#opJson(op, project));
    }
    const c: ComputeRequest = { method, path, project, body, url, route, res };
    if ((await this.#computeImagesAndDisks(c)) !== NOT_HANDLED) return;
    if ((await this.#computeInstances(c)) !== NOT_HANDLED) return;
    // ---- aggregated lists
    m = /^aggregated\/(instances|disks)$/.exec(path);
    if (m && method === 'GET') {
      route(`${m[1]}.aggregatedList`);
      const filter = query(url).filter;
      const items: Record<string, unknown> = {};
      const all =
        m[1] === 'instances'
          ? [...this.instances.values()].map((i) => ({
              zone: i.zone,
              labels: i.labels,
              json: {
                name: i.name,
                status: i.status,
                labels: i.labels,
                creationTimestamp: i.creationTimestamp,
              },
            }))
          : [...this.disks.values()].map((d) => ({
              zone: d.zone,
              labels: d.labels,
              json: this.#diskJson(d, project),
            }));
      for (const r of all.filter((r) => matchFilter(filter, r.labels))) {
        const key = `zones/${r.zone}`;
        items[key] ??= { [m[1]!]: [] };
        const scoped = items[key] as Record<string, unknown[]>;
        scoped[m[1]!]!.push(r.json);
      }
      return send(res, 200, { kind: `compute#${m[1]}AggregatedList`, items });
    }
    throw new Invalid(`no such Compute Engine endpoint: ${method} ${url.pathname}`);
  }

  /** The images, disks and instances routes; NOT_HANDLED when the request is none of them. */
  async #computeImagesAndDisks(c: ComputeRequest): Promise<typeof NOT_HANDLED | undefined> {
    const { method, path, project, body, url, route, res } = c;
    let m: RegExpExecArray | null;
    // ---- images
    if (path === 'global/images' && method === 'POST') {
      route('images.insert');
      const img = this.#checkImage(body);
      if (this.images.has(img.name)) throw conflict(`image ${img.name}`);
      this.images.set(img.name, img);
      const op = this.#newOperation(
        'insert',
        `global/images/${img.name}`,
        'images.insert',
        undefined,
        () => {
          img.status = 'READY';
        },
        () => {
          img.status = 'FAILED';
        },
      );
      return send(res, 200, this.#opJson(op, project));
    }
    if (path === 'global/images' && method === 'GET') {
      route('images.list');
      const items = [...this.images.values()].filter((i) => matchFilter(query(url).filter, i.labels));
      return send(res, 200, {
        kind: 'compute#imageList',
        items: items.map((i) => this.#imageJson(i, project)),
      });
    }
    m = /^global\/images\/([^/]+)$/.exec(path);
    if (m) {
      const name = m[1]!;
      if (method === 'GET') {
        route('images.get');
        const img = this.images.get(name);
        if (!img) throw notFound(`projects/${project}/global/images/${name}`);
        return send(res, 200, this.#imageJson(img, project));
      }
      if (method === 'DELETE') {
        route('images.delete');
        if (!this.images.has(name)) throw notFound(`projects/${project}/global/images/${name}`);
        const op = this.#newOperation('delete', `global/images/${name}`, 'images.delete', undefined, () =>
          this.images.delete(name),
        );
        return send(res, 200, this.#opJson(op, project));
      }
    }
    // ---- disks
    m = /^zones\/([^/]+)\/disks$/.exec(path);
    if (m && method === 'POST') {
      route('disks.insert');
      const zone = m[1]!;
      const disk = this.#checkDisk(body, zone);
      if (this.disks.has(`${zone}/${disk.name}`)) throw conflict(`disk ${disk.name}`);
      this.disks.set(disk.name, disk);
      const op = this.#newOperation(
        'insert',
        `zones/${zone}/disks/${disk.name}`,
        'disks.insert',
        zone,
        () => {
          disk.status = 'READY';
        },
        () => this.disks.delete(`${zone}/${disk.name}`),
      );
      return send(res, 200, this.#opJson(op, project));
    }
    m = /^zones\/([^/]+)\/disks\/([^/]+)$/.exec(path);
    if (m) {
      const [zone, name] = [m[1]!, m[2]!];
      const disk = this.disks.get(`${zone}/${name}`);
      if (method === 'GET') {
        route('disks.get');
        if (!disk || disk.zone !== zone) throw notFound(`projects/${project}/zones/${zone}/disks/${name}`);
        return send(res, 200, this.#diskJson(disk, project));
      }
      if (method === 'DELETE') {
        route('disks.delete');
        if (!disk || disk.zone !== zone) throw notFound(`projects/${project}/zones/${zone}/disks/${name}`);
        if (disk.users.length > 0) {
          throw new HttpError(400, {
            error: {
              code: 400,
              message: `The disk resource '${name}' is already being used by '${disk.users[0]}'`,
              errors: [{ reason: 'resourceInUseByAnotherResource' }],
            },
          });
        }
        const op = this.#newOperation('delete', `zones/${zone}/disks/${name}`, 'disks.delete', zone, () =>
          this.disks.delete(`${zone}/${name}`),
        );
        return send(res, 200, this.#opJson(op, project));
      }
    }
    return NOT_HANDLED;
  }

  /** The instances routes; NOT_HANDLED when the request is none of them. */
  async #computeInstances(c: ComputeRequest): Promise<typeof NOT_HANDLED | undefined> {
    const { method, path, project, body, url, route, res } = c;
    let m: RegExpExecArray | null;
    // ---- instances
    m = /^zones\/([^/]+)\/instances$/.exec(path);
    if (m && method === 'POST') {
      route('instances.insert');
      const zone = m[1]!;
      // Compute Engine deduplicates inserts by requestId: a retry gets the first try's operation.
      const requestId = url.searchParams.get('requestId');
      const earlier = requestId ? this.operations.get(this.#byRequestId.get(requestId) ?? '') : undefined;
      if (earlier) return send(res, 200, this.#opJson(earlier, project));
      const inst = this.#checkInstance(body, zone);
      const key = `${zone}/${inst.name}`;
      if (this.instances.has(key)) throw conflict(`instance ${inst.name}`);
      const capacity = this.#capacityError(zone, project);
      // As on Compute Engine, the instance exists (PROVISIONING) from the moment the insert is
      // accepted, whether or not anyone polls its operation: it can be listed and deleted.
      this.instances.set(inst.name, inst);
      const op = this.#newOperation(
        'insert',
        `zones/${zone}/instances/${inst.name}`,
        'instances.insert',
        zone,
        () => {
          if (this.instances.get(key) === inst) this.#launched(inst);
        },
        () => {
          if (this.instances.get(key) === inst) this.instances.delete(key);
        },
      );
      if (capacity && !op.error) {
        op.error = capacity;
        op.httpError =
          capacity.code === 'QUOTA_EXCEEDED'
            ? { status: 403, message: 'FORBIDDEN' }
            : { status: 503, message: 'SERVICE UNAVAILABLE' };
      }
      if (this.#options.latency?.insertMs) op.readyAt = Date.now() + this.#options.latency.insertMs;
      if (requestId) this.#byRequestId.set(requestId, op.name);
      const lost = this.#takeFault('instances.insert', 'response');
      if (lost) {
        const status = lost.status ?? 500;
        throw new HttpError(status, {
          error: {
            code: status,
            message: lost.message ?? `${lost.code} (injected)`,
            errors: [{ reason: lost.code }],
          },
        });
      }
      return send(res, 200, this.#opJson(op, project));
    }
    m = /^zones\/([^/]+)\/instances\/([^/]+)(\/serialPort|\/stop)?$/.exec(path);
    if (m) {
      const [zone, name, sub] = [m[1]!, m[2]!, m[3]];
      const inst = this.instances.get(`${zone}/${name}`);
      if (!inst || inst.zone !== zone) {
        route(
          sub === '/serialPort'
            ? 'instances.getSerialPortOutput'
            : `instances.${method === 'DELETE' ? 'delete' : sub ? 'stop' : 'get'}`,
        );
        throw notFound(`projects/${project}/zones/${zone}/instances/${name}`);
      }
      if (sub === '/serialPort' && method === 'GET') {
        route('instances.getSerialPortOutput');
        return send(res, 200, this.#serial(inst, url, project));
      }
      if (sub === '/stop' && method === 'POST') {
        route('instances.stop');
        const op = this.#newOperation(
          'stop',
          `zones/${zone}/instances/${name}`,
          'instances.stop',
          zone,
          () => {
            inst.status = 'TERMINATED';
          },
        );
        return send(res, 200, this.#opJson(op, project));
      }
      if (!sub && method === 'GET') {
        route('instances.get');
        this.#reveal(inst, false);
        // Nanos powers the machine off when the program exits.
        if (inst.status === 'RUNNING' && !inst.preempted && inst.revealed >= inst.consoleText.length)
          inst.status = 'TERMINATED';
        return send(res, 200, {
          kind: 'compute#instance',
          name,
          status: inst.status,
          labels: inst.labels,
          zone: `${this.url}/compute/v1/projects/${project}/zones/${zone}`,
          creationTimestamp: inst.creationTimestamp,
        });
      }
      if (!sub && method === 'DELETE') {
        route('instances.delete');
        const op = this.#newOperation(
          'delete',
          `zones/${zone}/instances/${name}`,
          'instances.delete',
          zone,
          () => this.#removeInstance(inst),
        );
        if (this.#options.latency?.deleteMs) op.readyAt = Date.now() + this.#options.latency.deleteMs;
        return send(res, 200, this.#opJson(op, project));
      }
    }
    return NOT_HANDLED;
  }

  /** An instance whose insert is DONE: RUNNING, its disks made, a preemption armed if one is due. */
  #launched(inst: Instance): void {
    const zone = inst.zone;
    inst.status = 'RUNNING';
    inst.runningAt = Date.now();
    for (const d of inst.attachedDisks) this.disks.get(`${zone}/${d}`)?.users.push(inst.name);
    // The boot disk, made from the image, named after the instance; other disks made with it.
    const boot = (inst.body.disks as Record<string, unknown>[]).find((d) => d.boot);
    const init = boot?.initializeParams as Record<string, unknown>;
    const made = [
      {
        name: inst.name,
        labels: (init.labels as Record<string, string>) ?? {},
        sizeGb: String(init.diskSizeGb ?? 10),
        type: String(init.diskType),
        sourceImage: String(init.sourceImage),
      },
      ...inst.createdDisks,
    ];
    for (const d of made) {
      this.disks.set(d.name, {
        ...d,
        zone,
        status: 'READY',
        users: [inst.name],
        creationTimestamp: new Date().toISOString(),
      });
    }
    this.#armPreemption(inst);
  }

  /**
   * Show more of the console: one chunk per read (poll-driven), or, with latencies, the first line
   * after bootMs and the rest proveMs later (time-driven). A preempted instance prints no more.
   */
  #reveal(inst: Instance, onRead: boolean): void {
    if (inst.status !== 'RUNNING' || inst.preempted) return;
    const latency = this.#options.latency;
    if (!latency) {
      if (onRead)
        inst.revealed = Math.min(inst.consoleText.length, inst.revealed + (this.#options.serialChunk ?? 29));
      return;
    }
    const t = Date.now() - (inst.runningAt ?? Date.now());
    const firstLine = inst.consoleText.indexOf('\n') + 1 || inst.consoleText.length;
    if (t >= (latency.bootMs ?? 0)) inst.revealed = Math.max(inst.revealed, firstLine);
    if (t >= (latency.bootMs ?? 0) + (latency.proveMs ?? 0)) inst.revealed = inst.consoleText.length;
  }

  #serial(inst: Instance, url: URL, project: string) {
    const port = url.searchParams.get('port');
    if (port !== null && port !== '1') throw new Invalid(`serial port ${port}: uniprove reads port 1`);
    const startParam = url.searchParams.get('start');
    const start = startParam === null ? 0 : Number(startParam);
    if (!Number.isInteger(start) || start < 0) throw new Invalid(`start=${startParam} is not an offset`);
    inst.serialReads++;
    const preempted =
      this.preemptAfterSerialReads !== undefined && inst.serialReads > this.preemptAfterSerialReads;
    const at = (inst as Instance & { preemptAtRead?: number }).preemptAtRead;
    if (preempted) inst.status = 'TERMINATED';
    else if (at !== undefined && inst.serialReads >= at) {
      this.preempt(inst.name);
      if (!this.instances.has(`${inst.zone}/${inst.name}`))
        throw notFound(`projects/${project}/zones/${inst.zone}/instances/${inst.name}`);
    } else this.#reveal(inst, true);
    // Compute Engine keeps the last 1 MiB: a start before it is moved up to the oldest byte kept,
    // and `next` is where the output ends, to be asked for next time.
    const oldest = Math.max(0, inst.revealed - (this.#options.serialWindow ?? SERIAL_WINDOW));
    const from = Math.min(Math.max(start, oldest), inst.revealed);
    return {
      kind: 'compute#serialPortOutput',
      contents: inst.consoleText.slice(from, inst.revealed),
      start: String(from),
      next: String(inst.revealed),
      selfLink: `${this.url}/compute/v1/projects/${project}/zones/${inst.zone}/instances/${inst.name}/serialPort`,
    };
  }

  /** How an instance has a disk attached (READ_WRITE unless its insert said READ_ONLY). */
  #attachMode(instance: string, disk: string): string {
    const inst = [...this.instances.values()].find((i) => i.name === instance);
    const entry = ((inst?.body.disks as Record<string, unknown>[]) ?? []).find((d) =>
      String(d.source ?? '').endsWith(`/disks/${disk}`),
    );
    return String(entry?.mode ?? 'READ_WRITE');
  }

  #imageJson(i: Image, project: string) {
    return {
      kind: 'compute#image',
      name: i.name,
      status: i.status,
      labels: i.labels,
      diskSizeGb: i.diskSizeGb,
      creationTimestamp: i.creationTimestamp,
      rawDisk: i.rawDisk,
      selfLink: `${this.url}/compute/v1/projects/${project}/global/images/${i.name}`,
    };
  }

  #diskJson(d: Disk, project: string) {
    return {
      kind: 'compute#disk',
      name: d.name,
      status: d.status,
      labels: d.labels,
      sizeGb: d.sizeGb,
      type: d.type,
      users: d.users.map((u) => `${this.url}/compute/v1/projects/${project}/zones/${d.zone}/instances/${u}`),
      creationTimestamp: d.creationTimestamp,
    };
  }

  // ---- request validation, after https://cloud.google.com/compute/docs/reference/rest/v1

  #checkImage(body: unknown): Image {
    const b = object(body, 'Image');
    const name = checkName(b.name, 'name');
    const labels = checkLabels(b.labels);
    const rawDisk = object(b.rawDisk, 'rawDisk');
    const source = String(rawDisk.source ?? '');
    const sm = /^https:\/\/storage\.googleapis\.com\/([^/]+)\/(.+)$/.exec(source);
    if (!sm)
      throw new Invalid(`rawDisk.source ${source} is not https://storage.googleapis.com/BUCKET/OBJECT`);
    const obj = this.objects.get(`${sm[1]}/${sm[2]}`);
    if (!obj) throw new Invalid(`rawDisk.source ${source}: no such object`);
    if (!/\.tar\.gz$/.test(sm[2]!)) throw new Invalid('rawDisk.source must name a .tar.gz archive');
    const size = checkDiskTarball(obj.bytes);
    if (b.architecture !== undefined && !['X86_64', 'ARM64'].includes(String(b.architecture))) {
      throw new Invalid(`architecture ${b.architecture} is not X86_64 or ARM64`);
    }
    return {
      name,
      status: 'PENDING',
      labels,
      diskSizeGb: String(Math.max(1, Math.ceil(size / 2 ** 30))),
      creationTimestamp: new Date().toISOString(),
      rawDisk: { source },
    };
  }

  #checkDisk(body: unknown, zone: string): Disk {
    const b = object(body, 'Disk');
    const name = checkName(b.name, 'name');
    const labels = checkLabels(b.labels);
    const sizeGb = checkInt64(b.sizeGb, 'sizeGb');
    const type = checkDiskType(b.type, zone, 'type');
    const image = checkImageRef(b.sourceImage, 'sourceImage');
    const img = this.images.get(image);
    if (img?.status !== 'READY') throw new Invalid(`sourceImage ${image} does not exist or is not READY`);
    if (Number(sizeGb) < Number(img.diskSizeGb))
      throw new Invalid(`sizeGb ${sizeGb} is smaller than the image`);
    return {
      name,
      zone,
      status: 'CREATING',
      labels,
      sizeGb,
      type,
      sourceImage: image,
      users: [],
      creationTimestamp: new Date().toISOString(),
    };
  }

  /** The disks of an instances.insert body: one boot disk first, images READY, attached disks free. */
  #checkInstanceDisks(b: Record<string, unknown>, name: string, zone: string) {
    const disks = b.disks;
    if (!Array.isArray(disks) || disks.length === 0)
      throw new Invalid('disks: at least the boot disk is required');
    const boots = disks.filter((d) => (d as Record<string, unknown>).boot === true);
    if (boots.length !== 1) throw new Invalid('disks: exactly one disk must have boot: true');
    if ((disks[0] as Record<string, unknown>).boot !== true)
      throw new Invalid('disks[0] must be the boot disk');
    const autoDeleteDisks: string[] = [];
    const attached: string[] = [];
    const createdDisks: Instance['createdDisks'] = [];
    disks.forEach((raw, i) => {
      const d = object(raw, `disks[${i}]`);
      if (d.type !== undefined && !['PERSISTENT', 'SCRATCH'].includes(String(d.type)))
        throw new Invalid(`disks[${i}].type ${d.type}`);
      if (d.mode !== undefined && !['READ_WRITE', 'READ_ONLY'].includes(String(d.mode)))
        throw new Invalid(`disks[${i}].mode ${d.mode}`);
      if (d.initializeParams !== undefined) {
        if (d.source !== undefined)
          throw new Invalid(`disks[${i}]: source and initializeParams are exclusive`);
        const ip = object(d.initializeParams, `disks[${i}].initializeParams`);
        const image = checkImageRef(ip.sourceImage, `disks[${i}].initializeParams.sourceImage`);
        const img = this.images.get(image);
        if (img?.status !== 'READY')
          throw new Invalid(`disks[${i}]: image ${image} does not exist or is not READY`);
        checkDiskType(ip.diskType, zone, `disks[${i}].initializeParams.diskType`);
        if (ip.diskSizeGb !== undefined) checkInt64(ip.diskSizeGb, `disks[${i}].initializeParams.diskSizeGb`);
        checkLabels(ip.labels);
        const diskName = i === 0 ? name : String(ip.diskName ?? `${name}-${i}`);
        if (ip.diskName !== undefined) checkName(ip.diskName, `disks[${i}].initializeParams.diskName`);
        if (ip.diskSizeGb !== undefined && Number(ip.diskSizeGb) < Number(img.diskSizeGb))
          throw new Invalid(`disks[${i}].initializeParams.diskSizeGb is smaller than image ${image}`);
        if (i > 0) {
          createdDisks.push({
            name: diskName,
            labels: (ip.labels as Record<string, string>) ?? {},
            sizeGb: String(ip.diskSizeGb ?? img.diskSizeGb),
            type: String(ip.diskType),
            sourceImage: image,
          });
        }
        if (d.autoDelete) autoDeleteDisks.push(diskName);
      } else {
        const src = String(d.source ?? '');
        const sm =
          /^(?:(?:https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/)?zones\/([^/]+)\/disks\/([^/]+)$/.exec(
            src,
          );
        if (!sm) throw new Invalid(`disks[${i}].source ${src} is not zones/ZONE/disks/NAME`);
        const disk = this.disks.get(`${zone}/${sm[2]!}`);
        if (!disk || disk.zone !== zone || disk.status !== 'READY')
          throw new Invalid(`disks[${i}].source: disk ${sm[2]} is not READY in ${zone}`);
        if (sm[1] !== undefined && sm[1] !== zone)
          throw new Invalid(`disks[${i}].source is in zone ${sm[1]}, not ${zone}`);
        const readWriteUser = disk.users.find((u) => this.#attachMode(u, disk.name) !== 'READ_ONLY');
        if (disk.users.length > 0 && (d.mode !== 'READ_ONLY' || readWriteUser))
          throw new Invalid(`disk ${sm[2]} is in use by ${readWriteUser ?? disk.users[0]}`);
        attached.push(disk.name);
        if (d.autoDelete) autoDeleteDisks.push(disk.name);
      }
    });
    return { autoDeleteDisks, attached, createdDisks };
  }

  #checkInstance(body: unknown, zone: string): Instance {
    const b = object(body, 'Instance');
    const name = checkName(b.name, 'name');
    const labels = checkLabels(b.labels);
    const mt = String(b.machineType ?? '');
    const mtm =
      /^(?:(?:https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/)?zones\/([^/]+)\/machineTypes\/([a-z0-9-]+)$/.exec(
        mt,
      );
    if (!mtm) throw new Invalid(`machineType ${mt} is not zones/ZONE/machineTypes/TYPE`);
    if (mtm[1] !== zone) throw new Invalid(`machineType zone ${mtm[1]} is not the instance's zone ${zone}`);
    if (
      !/^([a-z][a-z0-9]*-(standard|highmem|highcpu|ultramem|megamem|hypermem|highgpu|ultragpu|megagpu)-\d+[a-z]*|([a-z][a-z0-9]*-)?custom-\d+-\d+(-ext)?|[a-z][a-z0-9]*-(micro|small|medium))$/.test(
        mtm[2]!,
      )
    ) {
      throw new Invalid(`machine type ${mtm[2]} is not a machine type name`);
    }
    const { autoDeleteDisks, attached, createdDisks } = this.#checkInstanceDisks(b, name, zone);
    const nics = b.networkInterfaces;
    if (!Array.isArray(nics) || nics.length === 0) throw new Invalid('networkInterfaces: one is required');
    for (const [i, n] of nics.entries()) {
      const net = String((n as Record<string, unknown>).network ?? '');
      if (
        net &&
        !/^(?:(?:https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/)?global\/networks\/[a-z][-a-z0-9]*$/.test(
          net,
        )
      ) {
        throw new Invalid(`networkInterfaces[${i}].network ${net} is not global/networks/NAME`);
      }
    }
    if (b.metadata !== undefined) {
      const items = object(b.metadata, 'metadata').items;
      if (items !== undefined && !Array.isArray(items)) throw new Invalid('metadata.items must be a list');
      for (const it of (items as Record<string, unknown>[]) ?? []) {
        if (
          typeof it.key !== 'string' ||
          !/^[a-zA-Z0-9_-]{1,128}$/.test(it.key) ||
          typeof it.value !== 'string'
        ) {
          throw new Invalid(
            `metadata item ${JSON.stringify(it)} needs a key [a-zA-Z0-9_-] and a string value`,
          );
        }
      }
    }
    checkServiceAccounts(b.serviceAccounts);
    const s = checkScheduling(b);
    const gpus = b.guestAccelerators;
    if (gpus !== undefined) {
      if (!Array.isArray(gpus)) throw new Invalid('guestAccelerators must be a list');
      for (const [i, g] of gpus.entries()) {
        const a = object(g, `guestAccelerators[${i}]`);
        const at = String(a.acceleratorType ?? '');
        const am =
          /^(?:(?:https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/)?zones\/([^/]+)\/acceleratorTypes\/[a-z0-9-]+$/.exec(
            at,
          );
        if (!am || am[1] !== zone)
          throw new Invalid(
            `guestAccelerators[${i}].acceleratorType ${at} is not zones/${zone}/acceleratorTypes/TYPE`,
          );
        if (!Number.isInteger(a.acceleratorCount) || (a.acceleratorCount as number) < 1)
          throw new Invalid(`guestAccelerators[${i}].acceleratorCount must be a positive integer`);
      }
      if (gpus.length > 0 && s.onHostMaintenance !== 'TERMINATE') {
        throw new Invalid(
          'Instances with guest accelerators do not support live migration: scheduling.onHostMaintenance must be TERMINATE',
        );
      }
    }
    const consoleText =
      this.#options.console?.(name, b, this) ??
      'Nanos booting\nen1: assigned 10.0.0.2\nhello from the prover\nexit status 0\n';
    return {
      name,
      zone,
      status: 'PROVISIONING',
      labels,
      body: b,
      creationTimestamp: new Date().toISOString(),
      consoleText,
      revealed: 0,
      serialReads: 0,
      autoDeleteDisks,
      attachedDisks: attached,
      createdDisks,
    };
  }

  // ---- storage JSON API, after https://cloud.google.com/storage/docs/json_api/v1

  async #storage(req: IncomingMessage, url: URL, raw: Buffer, rec: RecordedRequest, res: ServerResponse) {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const route = (api: string) => {
      rec.api = api;
      this.#injected(api);
    };
    let m: RegExpExecArray | null;
    if (path === '/storage/v1/b' && method === 'POST') {
      route('storage.buckets.insert');
      if (!url.searchParams.get('project')) throw new Invalid('buckets.insert needs ?project=');
      const b = object(parseJson(raw), 'Bucket');
      rec.body = b;
      const name = String(b.name ?? '');
      if (!BUCKET_RE.test(name) || name.includes('..') || name.startsWith('goog'))
        throw new Invalid(`bucket name ${name}`);
      checkLabels(b.labels);
      if (this.buckets.has(name))
        throw new HttpError(409, { error: { code: 409, message: 'You already own this bucket.' } });
      const bucket = {
        name,
        location: String(b.location ?? 'US').toUpperCase(),
        labels: (b.labels as Record<string, string>) ?? {},
      };
      this.buckets.set(name, bucket);
      return send(res, 200, { kind: 'storage#bucket', id: name, ...bucket });
    }
    m = /^\/storage\/v1\/b\/([^/]+)$/.exec(path);
    if (m && method === 'GET') {
      route('storage.buckets.get');
      const b = this.buckets.get(decodeURIComponent(m[1]!));
      if (!b) throw notFound(`bucket ${m[1]}`);
      return send(res, 200, { kind: 'storage#bucket', id: b.name, ...b });
    }
    m = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    if (m && method === 'GET') {
      route('storage.objects.list');
      const bucket = decodeURIComponent(m[1]!);
      if (!this.buckets.has(bucket)) throw notFound(`bucket ${bucket}`);
      const prefix = url.searchParams.get('prefix') ?? '';
      const items = [...this.objects.values()]
        .filter((o) => o.bucket === bucket && o.name.startsWith(prefix))
        .map((o) => this.#objectJson(o));
      return send(res, 200, { kind: 'storage#objects', items });
    }
    m = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(path);
    if (m && method === 'DELETE') {
      route('storage.objects.delete');
      const key = `${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`;
      if (!this.objects.delete(key)) throw notFound(`object ${key}`);
      res.writeHead(204).end();
      return;
    }
    m = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    if (m) {
      const bucket = decodeURIComponent(m[1]!);
      if (url.searchParams.get('uploadType') !== 'resumable')
        throw new Invalid('uploads must be resumable (uploadType=resumable)');
      const uploadId = url.searchParams.get('upload_id');
      if (method === 'POST' && !uploadId) {
        route('storage.objects.insert');
        if (!this.buckets.has(bucket)) throw notFound(`bucket ${bucket}`);
        const meta = raw.length ? object(parseJson(raw), 'Object') : {};
        rec.body = meta;
        const name = String(url.searchParams.get('name') ?? meta.name ?? '');
        if (!name) throw new Invalid('resumable upload without an object name');
        const id = randomUUID();
        this.#sessions.set(id, { bucket, name, chunks: [], meta });
        const location = `${this.url}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
        res.writeHead(200, { location, 'content-type': 'application/json' }).end('{}');
        return;
      }
      if (method === 'PUT' && uploadId) {
        rec.api = `storage.objects.insert (data ${req.headers['content-range']} ${raw.length})`;
        const session = this.#sessions.get(uploadId);
        if (!session) throw notFound(`upload session ${uploadId}`);
        const range = String(req.headers['content-range'] ?? '');
        const rm = /^bytes (?:(\d+)-(\d+|\*)|\*)\/(\d+|\*)$/.exec(range);
        if (!rm) throw new Invalid(`Content-Range ${range} is not bytes A-B/TOTAL`);
        const have = session.chunks.reduce((n, c) => n + c.length, 0);
        if (rm[1] !== undefined && Number(rm[1]) !== have)
          throw new Invalid(`chunk starts at ${rm[1]}, the session holds ${have}`);
        if (rm[1] === undefined && rm[2] === undefined && raw.length === 0 && rm[3] === '*') {
          // A status query: how much of the upload has arrived.
          res.writeHead(308, have > 0 ? { range: `bytes=0-${have - 1}` } : {}).end();
          return;
        }
        if (raw.length) session.chunks.push(raw);
        const total = rm[3] === '*' ? undefined : Number(rm[3]);
        const now = have + raw.length;
        if (total === undefined || now >= total) {
          const bytes = Buffer.concat(session.chunks);
          const meta = session.meta as { contentType?: string; metadata?: Record<string, string> };
          const o: StoredObject = {
            bucket: session.bucket,
            name: session.name,
            bytes,
            contentType: meta.contentType ?? 'application/octet-stream',
            metadata: meta.metadata ?? {},
            timeCreated: new Date().toISOString(),
          };
          this.objects.set(`${o.bucket}/${o.name}`, o);
          this.uploads.set(o.name, bytes);
          this.#sessions.delete(uploadId);
          return send(res, 200, this.#objectJson(o));
        }
        res.writeHead(308, { range: `bytes=0-${now - 1}` }).end();
        return;
      }
    }
    throw new Invalid(`no such Cloud Storage endpoint: ${method} ${path}`);
  }

  #objectJson(o: StoredObject) {
    return {
      kind: 'storage#object',
      id: `${o.bucket}/${o.name}/1`,
      name: o.name,
      bucket: o.bucket,
      size: String(o.bytes.length),
      md5Hash: createHash('md5').update(o.bytes).digest('base64'),
      contentType: o.contentType,
      metadata: o.metadata,
      timeCreated: o.timeCreated,
      generation: '1',
    };
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

function notFound(what: string) {
  return new HttpError(404, {
    error: {
      code: 404,
      message: `The resource '${what}' was not found`,
      errors: [{ reason: 'notFound', message: `The resource '${what}' was not found` }],
    },
  });
}
function conflict(what: string) {
  return new HttpError(409, {
    error: {
      code: 409,
      message: `The resource '${what}' already exists`,
      errors: [{ reason: 'alreadyExists' }],
    },
  });
}

function send(res: ServerResponse, status: number, body: unknown): undefined {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body));
  return undefined;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new Invalid('body is not JSON');
  }
}

function query(url: URL) {
  return { filter: url.searchParams.get('filter') ?? '' };
}

/**
 * An instances.insert body's serviceAccounts, after the Instance reference: at most one, each an email (or
 * `default`) with a list of scopes, each a full https://www.googleapis.com/auth/ URL (aliases such as
 * logging-write are gcloud's own; the REST API takes URLs).
 */
function checkServiceAccounts(value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) throw new Invalid('serviceAccounts must be a list');
  if (value.length > 1) throw new Invalid('serviceAccounts: an instance runs as one service account at most');
  for (const [i, a] of value.entries()) {
    const sa = object(a, `serviceAccounts[${i}]`);
    const email = sa.email;
    if (typeof email !== 'string' || !(email === 'default' || /^[^@\s]+@[^@\s]+\.[a-z]+$/.test(email)))
      throw new Invalid(`serviceAccounts[${i}].email ${JSON.stringify(email)} is not an email or "default"`);
    const scopes = sa.scopes;
    if (!Array.isArray(scopes)) throw new Invalid(`serviceAccounts[${i}].scopes must be a list`);
    for (const scope of scopes) {
      if (typeof scope !== 'string' || !/^https:\/\/www\.googleapis\.com\/auth\/[a-z.-]+$/.test(scope))
        throw new Invalid(
          `serviceAccounts[${i}].scopes: ${JSON.stringify(scope)} is not https://www.googleapis.com/auth/SCOPE`,
        );
    }
  }
}

/** The scheduling of an instances.insert body, after the Scheduling reference (Spot rules, run limits). */
function checkScheduling(b: Record<string, unknown>): Record<string, unknown> {
  const s = b.scheduling === undefined ? {} : object(b.scheduling, 'scheduling');
  const enumOf = (v: unknown, allowed: string[], field: string) => {
    if (v !== undefined && !allowed.includes(String(v)))
      throw new Invalid(`${field} ${v} is not one of ${allowed.join(', ')}`);
  };
  enumOf(s.provisioningModel, ['STANDARD', 'SPOT'], 'scheduling.provisioningModel');
  enumOf(s.onHostMaintenance, ['MIGRATE', 'TERMINATE'], 'scheduling.onHostMaintenance');
  enumOf(s.instanceTerminationAction, ['STOP', 'DELETE'], 'scheduling.instanceTerminationAction');
  if (s.provisioningModel === 'SPOT') {
    if (s.onHostMaintenance !== 'TERMINATE')
      throw new Invalid('Spot instances need scheduling.onHostMaintenance TERMINATE');
    if (s.automaticRestart === true)
      throw new Invalid('Spot instances need scheduling.automaticRestart false');
  }
  if (s.maxRunDuration !== undefined) {
    const seconds = Number(object(s.maxRunDuration, 'scheduling.maxRunDuration').seconds);
    if (!Number.isInteger(seconds) || seconds < 30 || seconds > 120 * 86400)
      throw new Invalid('scheduling.maxRunDuration.seconds out of range');
    if (s.instanceTerminationAction === undefined)
      throw new Invalid('maxRunDuration needs scheduling.instanceTerminationAction');
    if (s.terminationTime !== undefined)
      throw new Invalid('scheduling.maxRunDuration and scheduling.terminationTime are exclusive');
  }
  // After the Scheduling reference: `preemptible` is the legacy form of Spot, and a termination
  // action applies only to Spot instances or to instances with a run limit.
  if (s.preemptible === true && s.provisioningModel === 'STANDARD')
    throw new Invalid('scheduling.preemptible true contradicts provisioningModel STANDARD');
  if (
    s.instanceTerminationAction !== undefined &&
    s.provisioningModel !== 'SPOT' &&
    s.preemptible !== true &&
    s.maxRunDuration === undefined &&
    s.terminationTime === undefined
  ) {
    throw new Invalid(
      'scheduling.instanceTerminationAction needs a Spot instance, maxRunDuration or terminationTime',
    );
  }
  return s;
}

/** zoneOperations.list filters: `operationType = "compute.instances.preempted"`, `targetLink = ...`, joined by AND. */
function matchOperationFilter(filter: string, op: Operation): boolean {
  if (!filter.trim()) return true;
  return filter.split(/\s+AND\s+/i).every((part) => {
    const m = /^\(?\s*(operationType|targetLink|status)\s*(=|eq)\s*"?([^"()]*)"?\s*\)?$/.exec(part.trim());
    if (!m) throw new Invalid(`operations filter ${filter} is not understood`);
    const value = m[1] === 'operationType' ? op.operationType : m[1] === 'status' ? op.status : op.targetLink;
    return m[1] === 'targetLink' ? value.endsWith(m[3]!.replace(/^.*\/zones\//, 'zones/')) : value === m[3];
  });
}

/** Compute list filters uniprove uses: `labels.KEY = "VALUE"` (also without quotes or spaces). */
function matchFilter(filter: string, labels: Record<string, string>): boolean {
  if (!filter) return true;
  const m = /^labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?$/.exec(filter.trim());
  if (!m) throw new Invalid(`filter ${filter} is not understood`);
  return labels[m[1]!] === m[2];
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Invalid(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function checkName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v))
    throw new Invalid(`${field} ${JSON.stringify(v)} must match [a-z]([-a-z0-9]{0,61}[a-z0-9])?`);
  return v;
}

function checkLabels(v: unknown): Record<string, string> {
  if (v === undefined) return {};
  const labels = object(v, 'labels');
  if (Object.keys(labels).length > 64) throw new Invalid('at most 64 labels');
  for (const [k, val] of Object.entries(labels)) {
    if (!LABEL_KEY_RE.test(k)) throw new Invalid(`label key ${k}`);
    if (typeof val !== 'string' || !LABEL_VALUE_RE.test(val))
      throw new Invalid(`label ${k} value ${JSON.stringify(val)}`);
  }
  return labels as Record<string, string>;
}

function checkInt64(v: unknown, field: string): string {
  // int64 fields are JSON strings in the REST API (numbers are accepted too).
  const s = typeof v === 'number' ? String(v) : v;
  if (typeof s !== 'string' || !/^\d+$/.test(s) || Number(s) < 1)
    throw new Invalid(`${field} ${JSON.stringify(v)} is not a positive int64`);
  return s;
}

function checkDiskType(v: unknown, zone: string, field: string): string {
  const s = String(v ?? '');
  const m =
    /^(?:(?:https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/)?zones\/([^/]+)\/diskTypes\/(pd-standard|pd-balanced|pd-ssd|pd-extreme|hyperdisk-balanced|hyperdisk-throughput|hyperdisk-extreme)$/.exec(
      s,
    );
  if (!m) throw new Invalid(`${field} ${s} is not zones/ZONE/diskTypes/TYPE`);
  if (m[1] !== zone) throw new Invalid(`${field} is in zone ${m[1]}, not ${zone}`);
  return s;
}

function checkImageRef(v: unknown, field: string): string {
  const s = String(v ?? '');
  const m =
    /^(?:(?:https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/)?global\/images\/([a-z][-a-z0-9]*)$/.exec(
      s,
    );
  if (!m) throw new Invalid(`${field} ${s} is not global/images/NAME`);
  return m[1]!;
}

/** GCE imports a gzip'd tar whose one member is disk.raw; returns the disk's size. */
function checkDiskTarball(bytes: Buffer): number {
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes);
  } catch {
    throw new Invalid('rawDisk.source is not gzip data');
  }
  const name = tar.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
  if (name !== 'disk.raw') throw new Invalid(`the archive's first member is ${name}, not disk.raw`);
  const type = String.fromCharCode(tar[156]!);
  // oldgnu sparse files keep the real size at offset 483 (realsize); regular ones in the size field.
  const octal = (off: number, len: number) =>
    Number.parseInt(
      tar
        .subarray(off, off + len)
        .toString('latin1')
        .replace(/[\0 ]/g, '') || '0',
      8,
    );
  return type === 'S' ? octal(483, 12) : octal(124, 12);
}

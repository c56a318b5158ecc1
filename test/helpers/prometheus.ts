/**
 * A real Prometheus server for the metrics tests: Debian's prometheus binary started by the test on 127.0.0.1
 * with a temporary config (one scrape job, every second) and a temporary TSDB, queried through its HTTP API.
 */
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { tempDir } from './tmp.js';
import { findTool, needTool } from './tools.js';

/** undefined when the prometheus binary is on PATH, else why not (a failure under UNIPROVE_REQUIRE). */
export function needPrometheus(): string | undefined {
  return needTool('prometheus', 'apt-get install prometheus; bash scripts/setup.sh installs it');
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

export interface PrometheusServer {
  url: string;
  /** An instant query's result vector (GET /api/v1/query). */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** The sum of an instant query's values, or undefined when it has none. */
  value(expr: string): Promise<number | undefined>;
  /** Scrape targets and their health (GET /api/v1/targets). */
  targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]>;
  /** Prometheus's own log, for a failing test's message. */
  log(): string;
  close(): Promise<void>;
}

/** Start prometheus scraping 127.0.0.1:`targetPort`/metrics every second; resolves once it is ready. */
export async function startPrometheus(targetPort: number): Promise<PrometheusServer> {
  const dir = await tempDir('uniprove-prometheus-');
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 900ms',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: uniprove',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${targetPort}']`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ResultPromise = execa(
    findTool('prometheus') as string,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { reject: false, all: true },
  );
  child.all?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`prometheus did not become ready: ${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const api = async (path: string) => {
    const r = await fetch(`${url}${path}`);
    const body = (await r.json()) as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  };
  const query = async (expr: string) =>
    ((await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { result: [] }).result as {
      metric: Record<string, string>;
      value: [number, string];
    }[];
  return {
    url,
    query,
    async value(expr) {
      const result = await query(expr);
      if (result.length === 0) return undefined;
      return result.reduce((sum, r) => sum + Number(r.value[1]), 0);
    },
    async targets() {
      return ((await api('/api/v1/targets')) as { activeTargets: [] }).activeTargets;
    },
    log: () => output,
    async close() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await child;
      clearTimeout(timer);
    },
  };
}

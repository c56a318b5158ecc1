/**
 * A real HTTP server on 127.0.0.1 that serves real files from a folder, with
 * Range support, and misbehaves on demand: one fault per request, taken in
 * order from a per-file queue.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';

export type Fault =
  /** Send the headers and half the body, then cut the connection. */
  | 'drop-midway'
  /** Answer 500 (the next request is served normally). */
  | 'status-500'
  /** Answer 404. */
  | 'status-404'
  /** Serve the file with one byte flipped in the middle. */
  | 'wrong-byte'
  /** Answer 200 with the whole file even when a Range was asked for. */
  | 'ignore-range'
  /** Send the body up to the middle of the file and then nothing, keeping the connection open. */
  | 'stall'
  /** Answer 200 with no Content-Length and send the file over and over, never ending (a runaway server). */
  | 'endless'
  /** Serve the file at about 2 MiB/s (64 KiB every 30 ms): a download slow enough for others to overlap it. */
  | 'slow';

export interface RequestLog {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
  fault: Fault | undefined;
}

export interface ParamServer {
  url: string;
  port: number;
  requests: RequestLog[];
  /** Queue faults for the next requests of a file (by name). */
  fault(name: string, ...faults: Fault[]): void;
  /** Apply a fault to every request of a file from now on. */
  always(name: string, fault: Fault | undefined): void;
  close(): Promise<void>;
}

/** Serve `root` on 127.0.0.1; files are at /<name> (also /ipfs/<name>). */
export async function startParamServer(root: string): Promise<ParamServer> {
  const queues = new Map<string, Fault[]>();
  const sticky = new Map<string, Fault>();
  const requests: RequestLog[] = [];
  const sockets = new Set<Socket>();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const name = path.replace(/^\/(ipfs\/)?/, '');
    const fault = queues.get(name)?.shift() ?? sticky.get(name);
    const log: RequestLog = {
      path,
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      status: 0,
      fault,
    };
    requests.push(log);
    const finish = (status: number) => {
      log.status = status;
    };
    if (name.includes('/') || name.startsWith('.')) {
      finish(400);
      res.writeHead(400).end();
      return;
    }
    if (fault === 'status-500') {
      finish(500);
      res.writeHead(500, { 'content-type': 'text/plain' }).end('injected failure\n');
      return;
    }
    if (fault === 'status-404') {
      finish(404);
      res.writeHead(404).end();
      return;
    }
    const file = join(root, name);
    if (fault === 'endless') {
      finish(200);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) {}
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
      return;
    }
    let size: number;
    let mtime: Date;
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      size = info.size;
      mtime = info.mtime;
    } catch {
      finish(404);
      res.writeHead(404).end();
      return;
    }
    const etag = `"${size.toString(16)}-${mtime.getTime().toString(16)}"`;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && fault !== 'ignore-range' && (!ifRange || ifRange === etag)) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start >= size) {
        finish(416);
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
    }
    const length = end - start + 1;
    const headers: Record<string, string | number> = {
      'content-length': length,
      'accept-ranges': 'bytes',
      etag,
      'last-modified': mtime.toUTCString(),
      'content-type': 'application/octet-stream',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    finish(status);
    res.writeHead(status, headers);
    if (length === 0) {
      res.end();
      return;
    }
    const half = Math.max(1, Math.floor(length / 2));
    if (fault === 'drop-midway' || fault === 'stall') {
      // A drop cuts this response halfway; a stall stops at the file's middle (a stuck proxy), so
      // resuming past the middle against a stalling server gets nothing at all.
      const stop = fault === 'stall' ? Math.floor(size / 2) : start + half;
      if (stop <= start) return;
      const stream = createReadStream(file, { start, end: stop - 1 });
      stream.on('data', (chunk) => res.write(chunk));
      stream.on('end', () => {
        if (fault === 'drop-midway') setTimeout(() => res.socket?.destroy(), 20);
        // 'stall': keep the socket open and send nothing more.
      });
      return;
    }
    if (fault === 'slow') {
      const stream = createReadStream(file, { start, end, highWaterMark: 64 * 1024 });
      stream.on('data', (chunk) => {
        res.write(chunk);
        stream.pause();
        setTimeout(() => stream.resume(), 30);
      });
      stream.on('end', () => res.end());
      res.on('close', () => stream.destroy());
      return;
    }
    if (fault === 'wrong-byte') {
      const flipAt = Math.floor(size / 2);
      let position = start;
      const stream = createReadStream(file, { start, end });
      stream.on('data', (chunk) => {
        const buffer = chunk as Buffer;
        if (flipAt >= position && flipAt < position + buffer.length) {
          const copy = Buffer.from(buffer);
          copy[flipAt - position] = (copy[flipAt - position] ?? 0) ^ 0x01;
          res.write(copy);
        } else res.write(buffer);
        position += buffer.length;
      });
      stream.on('end', () => res.end());
      return;
    }
    createReadStream(file, { start, end, highWaterMark: 1024 * 1024 }).pipe(res);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      res.destroy(error as Error);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    requests,
    fault(name, ...faults) {
      queues.set(name, [...(queues.get(name) ?? []), ...faults]);
    },
    always(name, fault) {
      if (fault) sticky.set(name, fault);
      else sticky.delete(name);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

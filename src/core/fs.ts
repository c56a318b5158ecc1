/** File helpers every part of uniprove shares: atomic writes, streamed digests, bounded parallel work. */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UniproveError } from './errors.js';

/** Write `data` to `path` atomically (temp file in the same folder, then rename): no reader sees half a file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Stable JSON text: two-space indent and a trailing newline; key order is the construction order. */
export function stableJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Write a value as indented JSON, atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, stableJson(value));
}

/** Parse JSON text, naming the file (E_CONFIG) when it is not JSON. */
export function parseJsonFile(
  text: string,
  origin: string,
  hint = 'Check the file for a missing comma or quote.',
): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `${origin} is not valid JSON: ${(error as Error).message}`,
      hint,
      cause: error,
    });
  }
}

/** Read a JSON file, or undefined when it is absent or unreadable. */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** sha256 (hex) of a file's content, streamed. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, {
    highWaterMark: 1 << 20,
    ...(signal ? { signal } : {}),
  })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** Run `fn` over items with at most `limit` at once; results keep the items' order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
) {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

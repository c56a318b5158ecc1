/** Temp folders that tests create and remove; tests never write into the repo. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/** A fresh temp folder removed when the test file ends (kept with UNIPROVE_KEEP_TMP=1). */
export async function tempDir(prefix = 'uniprove-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(async () => {
    if (!process.env.UNIPROVE_KEEP_TMP)
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  });
  return dir;
}

/**
 * A temp folder outside /tmp, for packages whose files must not sit under a
 * guest path that a run mounts over (verify mounts a fresh /tmp).
 */
export async function tempDirOutsideTmp(prefix = 'uniprove-test-'): Promise<string> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir('/var/tmp', { recursive: true });
  const dir = await mkdtemp(join('/var/tmp', prefix));
  after(async () => {
    if (!process.env.UNIPROVE_KEEP_TMP)
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  });
  return dir;
}

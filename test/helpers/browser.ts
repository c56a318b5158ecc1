/**
 * A real headless browser for tests that look at what uniprove draws: Debian's chromium driven by playwright-core
 * (no browser download). Missing chromium skips with the reason, and fails the test file under UNIPROVE_REQUIRE.
 */
import { existsSync } from 'node:fs';
import { findTool, gate } from './tools.js';

/** The chromium binary: UNIPROVE_CHROMIUM, else chromium on PATH, else /usr/bin/chromium. */
export function chromiumPath(): string | undefined {
  const named = process.env.UNIPROVE_CHROMIUM;
  if (named) return existsSync(named) ? named : undefined;
  return findTool('chromium') ?? (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined);
}

/** undefined when a headless chromium can be launched, else the reason to print when skipping. */
export function needChromium(): string | undefined {
  return gate(
    'chromium',
    chromiumPath()
      ? undefined
      : 'chromium is not installed (apt-get install chromium; bash scripts/setup.sh installs it), so the report cannot be opened in a browser',
  );
}

/** Launch headless chromium (as root it needs --no-sandbox). */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath() as string,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

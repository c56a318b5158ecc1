#!/usr/bin/env node
// Runs node's test runner over test/<suite>/**/*.test.ts (Node 20's runner does not find .ts files itself).
// Usage: node scripts/test.mjs [suite...] [-- extra node --test flags]; suites default to unit, integration and fuzz.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const suites = (dash === -1 ? argv : argv.slice(0, dash)).filter(Boolean);
const extra = dash === -1 ? [] : argv.slice(dash + 1);

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return walk(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const files = (suites.length ? suites : ['unit', 'integration', 'fuzz']).flatMap((s) => walk(join('test', s))).sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', ...extra, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);

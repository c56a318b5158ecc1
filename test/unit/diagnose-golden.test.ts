/** Golden tests: every real Nanos console under test/fixtures/nanos gives the diagnosis in its expected.json. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { diagnoseLogs, locateNothing, parseNanosManifest } from '../../src/core/diagnose/index.js';
import { REPO_ROOT } from '../helpers/cli.js';

const ROOT = join(REPO_ROOT, 'test/fixtures/nanos');

interface Expected {
  note: string;
  findings: (Record<string, unknown> & { fixIncludes: string[] })[];
}

const cases = readdirSync(ROOT, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

test('the golden folder holds every Nanos fixture case', () => {
  assert.ok(cases.length >= 24, `only ${cases.length} cases`);
});

for (const name of cases) {
  test(`nanos console: ${name}`, async () => {
    const dir = join(ROOT, name);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    const manifest = join(dir, 'image.manifest');
    const image = existsSync(manifest) ? parseNanosManifest(readFileSync(manifest, 'utf8')) : undefined;
    // locateNothing: the diagnosis must not depend on what this host happens to hold.
    const result = await diagnoseLogs({
      logs: [join(dir, 'console.log')],
      locate: locateNothing,
      ...(image ? { image } : {}),
    });
    const got = result.findings.map(({ message, fix, ...rest }) => {
      assert.ok(message.length > 20, `${rest.kind}: a message that explains`);
      return { ...rest, fix };
    });
    assert.deepEqual(
      got.map(({ fix: _fix, ...rest }) => rest),
      expected.findings.map(({ fixIncludes: _f, ...rest }) => rest),
    );
    expected.findings.forEach((f, i) => {
      for (const part of f.fixIncludes)
        assert.ok(got[i]!.fix.includes(part), `fix of ${f.kind} names ${part}: ${got[i]!.fix}`);
    });
    assert.deepEqual(result.warnings, []);
  });
}

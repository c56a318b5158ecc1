import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { BUILTIN_PROVERS_DIR, listRecipeNames, parseRecipe } from '../../src/core/recipe/load.js';
import { recipeJsonSchema } from '../../src/core/recipe/schema.js';

test('the shipped recipes are valid', async () => {
  const names = await listRecipeNames();
  assert.ok(names.includes('demo') && names.includes('benchy'), names.join(', '));
  for (const name of names) {
    const file = `${BUILTIN_PROVERS_DIR}${name}/recipe.json`;
    const recipe = parseRecipe(JSON.parse(await readFile(file, 'utf8')), file);
    assert.equal(recipe.name, name, `${file}: name matches its folder`);
  }
});

test("the benchy recipe runs benchy as Gevulot's guide does", async () => {
  const file = `${BUILTIN_PROVERS_DIR}benchy/recipe.json`;
  const recipe = parseRecipe(JSON.parse(await readFile(file, 'utf8')), file);
  assert.deepEqual(recipe.args, ['winning-post', '--size', '2KiB', '--fake']);
  assert.equal(recipe.env.BELLMAN_NO_GPU, '1');
  assert.deepEqual(
    recipe.volumes.map((v) => [v.set, v.guestPath]),
    [['filecoin-2KiB', '/tmp']],
  );
  assert.ok(recipe.files.some((f) => f.guest === '/rust-fil-proofs.config.toml'));
});

test('provers/recipe.schema.json is generated from the schema (npm run schemas)', async () => {
  const committed = JSON.parse(await readFile(`${BUILTIN_PROVERS_DIR}recipe.schema.json`, 'utf8'));
  assert.deepEqual(committed, JSON.parse(JSON.stringify(recipeJsonSchema())));
});

test('every recipe field an editor completes has a description to show', () => {
  const missing: string[] = [];
  const walk = (node: Record<string, unknown>, path: string) => {
    const props = node.properties as Record<string, Record<string, unknown>> | undefined;
    for (const [key, child] of Object.entries(props ?? {})) {
      if (!child.description) missing.push(`${path}${key}`);
      walk(child, `${path}${key}.`);
      for (const option of (child.oneOf ?? child.anyOf ?? []) as Record<string, unknown>[])
        walk(option, `${path}${key}.`);
      if (child.items) walk(child.items as Record<string, unknown>, `${path}${key}[].`);
    }
  };
  walk(recipeJsonSchema() as Record<string, unknown>, '');
  // The discriminator of the proof union names itself.
  assert.deepEqual(
    missing.filter((m) => !m.endsWith('.kind')),
    [],
  );
});

test('recipe errors name the field by its dot-path', () => {
  assert.throws(
    () =>
      parseRecipe(
        { name: 'x', binary: 'b', volumes: [{ set: 's', guestPath: 'tmp' }], resources: { cpus: 0 } },
        'r.json',
      ),
    (error: Error) =>
      /volumes\[0\]\.guestPath: must be an absolute guest path/.test(error.message) &&
      /resources\.cpus: /.test(error.message),
  );
});

test('dirs: a host folder, an empty guest folder on its own (with a mode), never neither', () => {
  const ok = parseRecipe(
    {
      name: 'x',
      binary: 'b',
      dirs: [
        { host: './data', guest: '/data' },
        { guest: '/tmp/work', mode: '0700' },
      ],
    },
    'r.json',
  );
  assert.deepEqual(ok.dirs[1], { guest: '/tmp/work', mode: '0700' });
  assert.throws(
    () => parseRecipe({ name: 'x', binary: 'b', dirs: [{ reason: 'nothing' }] }, 'r.json'),
    /dirs\[0\]: give host \(a folder to copy\), guest \(an empty folder to make\), or both/,
  );
  assert.throws(
    () => parseRecipe({ name: 'x', binary: 'b', dirs: [{ host: './data', mode: '0700' }] }, 'r.json'),
    /dirs\[0\]\.mode: mode is for a folder without a host side/,
  );
  assert.throws(
    () => parseRecipe({ name: 'x', binary: 'b', dirs: [{ guest: '/' }] }, 'r.json'),
    /dirs\[0\]\.guest: must name a folder below \//,
  );
  assert.throws(
    () => parseRecipe({ name: 'x', binary: 'b', dirs: [{ guest: '/w', mode: '9' }] }, 'r.json'),
    /dirs\[0\]\.mode: must be an octal mode/,
  );
});

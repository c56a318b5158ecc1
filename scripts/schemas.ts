// Writes the JSON Schemas editors complete configs with, from the zod schemas: provers/recipe.schema.json
// volumes/parameter-set.schema.json and docs/run-record.schema.json. Run `npm run schemas`, which also formats them as Biome does.
// Unit tests check the committed files hold what this writes (test/unit/recipe.test.ts, volume-spec.test.ts).
import { writeFileSync } from 'node:fs';
import { recipeJsonSchema } from '../src/core/recipe/schema.js';
import { runRecordJsonSchema } from '../src/core/record/schema.js';
import { parameterSetJsonSchema } from '../src/core/volume/spec.js';

const schemas: [string, unknown][] = [
  ['../provers/recipe.schema.json', recipeJsonSchema()],
  ['../volumes/parameter-set.schema.json', parameterSetJsonSchema()],
  ['../docs/run-record.schema.json', runRecordJsonSchema()],
];
for (const [path, schema] of schemas) {
  writeFileSync(new URL(path, import.meta.url), `${JSON.stringify(schema, null, 2)}\n`);
}

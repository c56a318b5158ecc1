// Writes the JSON Schemas from their zod schemas (run: node --import tsx scripts/schemas.ts).
import { writeFileSync } from 'node:fs';
import { recipeJsonSchema } from '../src/core/recipe/schema.js';
import { runRecordJsonSchema } from '../src/core/run/record-schema.js';

writeFileSync(new URL('../provers/recipe.schema.json', import.meta.url), `${JSON.stringify(recipeJsonSchema(), null, 2)}\n`);
writeFileSync(new URL('../docs/run-record.schema.json', import.meta.url), `${JSON.stringify(runRecordJsonSchema(), null, 2)}\n`);

// Writes provers/recipe.schema.json from the zod schema (run: node --import tsx scripts/schemas.ts).
import { writeFileSync } from 'node:fs';
import { recipeJsonSchema } from '../src/core/recipe/schema.js';

writeFileSync(new URL('../provers/recipe.schema.json', import.meta.url), `${JSON.stringify(recipeJsonSchema(), null, 2)}\n`);

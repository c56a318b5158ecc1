import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// A function longer than this is read as several; split it into named steps.
const MAX_LINES = 120;

const root = fileURLToPath(new URL('../..', import.meta.url));

// Functions allowed past the limit, as 'file:name'. The parsers are state machines read top to bottom.
const EXEMPT_FUNCTIONS = new Set<string>([
  'src/core/elf/parse.ts:parseSteps',
  'src/core/strace/parse.ts:call',
]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

function nameOf(node: ts.Node): string {
  const named = node as { name?: ts.Node };
  if (named.name && ts.isIdentifier(named.name)) return named.name.text;
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  return '(anonymous)';
}

/** Every function, method and arrow in src/ with its length in lines. */
export function measureFunctions(): { where: string; lines: number }[] {
  const found: { where: string; lines: number }[] = [];
  for (const file of sourceFiles(join(root, 'src'))) {
    const rel = relative(root, file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
        const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
        const line = start + 1;
        found.push({ where: `${rel}:${nameOf(node)}:${line}`, lines: end - start + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

test(`no function in src/ is longer than ${MAX_LINES} lines`, () => {
  const long = measureFunctions().filter(({ where, lines }) => {
    if (lines <= MAX_LINES) return false;
    const [file, name] = where.split(':');
    return !EXEMPT_FUNCTIONS.has(`${file}:${name}`);
  });
  assert.deepEqual(
    long.map(({ where, lines }) => `${where} (${lines} lines)`),
    [],
  );
});

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

/** Every relative import of each file in src/ (static, type-only, re-exports and `import()` alike), as paths. */
export function importGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(join(root, 'src'))) {
    const rel = relative(root, file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const targets = new Set<string>();
    const add = (spec: string) => {
      if (!spec.startsWith('.')) return;
      targets.add(relative(root, join(file, '..', spec)).replace(/\.js$/, '.ts'));
    };
    const visit = (node: ts.Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
        if (ts.isStringLiteral(node.moduleSpecifier)) add(node.moduleSpecifier.text);
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const [arg] = node.arguments;
        if (arg && ts.isStringLiteral(arg)) add(arg.text);
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
        const literal = node.argument.literal;
        if (ts.isStringLiteral(literal)) add(literal.text);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    graph.set(rel, targets);
  }
  return graph;
}

/** The room of a file: its folder under src/core (src/core/run/lifecycle.ts: run), or its top folder. */
function roomOf(path: string): string {
  const parts = path.split('/');
  if (parts[1] !== 'core') return parts[1] ?? path;
  return parts.length > 3 ? `core/${parts[2]}` : 'core';
}

/** The loops of a directed graph: each strongly connected component of more than one node (Tarjan). */
function loops(nodes: Iterable<string>, next: (node: string) => Iterable<string>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const node of nodes) if (!index.has(node)) connect(node);
  return found;
}

test('no two rooms of src/core import each other, even through others', () => {
  const graph = importGraph();
  const rooms = new Map<string, Map<string, string>>();
  for (const [file, targets] of graph) {
    for (const target of targets) {
      const [from, to] = [roomOf(file), roomOf(target)];
      if (from === to) continue;
      if (!rooms.has(from)) rooms.set(from, new Map());
      rooms.get(from)!.set(to, `${file} -> ${target}`);
    }
  }
  const found = loops(rooms.keys(), (room) => rooms.get(room)?.keys() ?? []);
  // Each loop with one import per step of it, to say where to cut.
  const shown = found.map((rooms_) =>
    rooms_.flatMap((a) => rooms_.map((b) => rooms.get(a)?.get(b)).filter(Boolean)).join('; '),
  );
  assert.deepEqual(shown, []);
});

test('no file in src/ imports itself back through others', () => {
  const graph = importGraph();
  assert.deepEqual(
    loops(graph.keys(), (file) => [...(graph.get(file) ?? [])].filter((t) => graph.has(t))),
    [],
  );
});

test('the import graph is read: it sees the lifecycle import the driver interface', () => {
  // Guards the two tests above against a reader that sees nothing (a moved root, a changed parser).
  const graph = importGraph();
  assert.ok(graph.get('src/core/run/lifecycle.ts')?.has('src/core/machine/driver.ts'));
  assert.ok(graph.size > 100, `${graph.size} files read`);
});

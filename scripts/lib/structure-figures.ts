// Prints the structure figures a restructuring is judged by (issue 37): source files and lines per area,
// files over 350 lines, the largest functions, and who imports @fleetpki/store values. Read with the
// TypeScript compiler's own parser (a regex would miss multi-line imports and count type-only ones).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const root = new URL('../..', import.meta.url).pathname;
const areas = ['packages', 'services', 'scripts'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const files = areas.flatMap((a) => sources(join(root, a)));
const functions: { where: string; lines: number }[] = [];
const storeImporters = new Map<string, number>();
const storeNames = new Map<string, Set<string>>();
let totalLines = 0;
const long: string[] = [];
for (const path of files) {
  const text = readFileSync(path, 'utf8');
  const rel = relative(root, path);
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true);
  const lines = text.split('\n').length;
  totalLines += lines;
  if (lines > 350) long.push(`${rel} ${lines}${/^\/\* eslint-disable max-lines -- /.test(text) ? ' (reason in its head comment)' : ''}`);
  const visit = (node: ts.Node, owner: string): void => {
    let name = owner;
    if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node) || ts.isConstructorDeclaration(node)) {
      const named = (node as { name?: ts.Node }).name;
      const parent = node.parent;
      const label = named ? named.getText(source) : ts.isVariableDeclaration(parent) ? parent.name.getText(source) : '(anonymous)';
      name = owner ? `${owner}.${label}` : label;
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      functions.push({ where: `${rel}:${start + 1} ${name}`, lines: end - start + 1 });
    } else if (ts.isClassDeclaration(node) && node.name) name = node.name.text;
    ts.forEachChild(node, (child) => visit(child, name));
  };
  visit(source, '');
  if (rel.startsWith('packages/store/')) continue;
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || statement.importClause?.isTypeOnly) continue;
    if ((statement.moduleSpecifier as ts.StringLiteral).text !== '@fleetpki/store') continue;
    const bindings = statement.importClause?.namedBindings;
    const values = bindings && ts.isNamedImports(bindings) ? bindings.elements.filter((e) => !e.isTypeOnly).map((e) => e.name.text) : ['*'];
    if (values.length === 0) continue;
    const area = rel.split('/').slice(0, 2).join('/');
    storeImporters.set(area, (storeImporters.get(area) ?? 0) + 1);
    const set = storeNames.get(area) ?? new Set<string>();
    for (const v of values) set.add(v);
    storeNames.set(area, set);
  }
}
console.log(`source files (packages, services, scripts; tests apart): ${files.length}, ${totalLines} lines`);
console.log(`files over 350 lines: ${long.length}${long.length ? ` (${long.join(', ')})` : ''}`);
console.log('largest functions:');
for (const f of functions.sort((a, b) => b.lines - a.lines).slice(0, 10)) console.log(`  ${String(f.lines).padStart(4)}  ${f.where}`);
console.log('files importing @fleetpki/store values (distinct names), by area:');
for (const [area, count] of [...storeImporters].sort()) console.log(`  ${area.padEnd(28)} ${String(count).padStart(3)} files  ${storeNames.get(area)!.size} names`);

import t from 'tap';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The shape of db/ (STYLE.md): it depends on the driver, the query builder and the domain
 * only, files stay small, and its modules form no import cycle.
 */
const DB_DIR = fileURLToPath(new URL('..', import.meta.url));
const ALLOWED_PACKAGES = ['@foodies/domain', 'kysely', 'pg'];
const MAX_LINES = 250;

/** Every specifier a TypeScript file imports or re-exports, statically or dynamically. */
function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]!);
  return found;
}

/** The package a bare specifier names: `@scope/name` or `name`, without a subpath. */
const packageOf = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');

async function tsFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await tsFiles(path)));
    else if (entry.isFile() && entry.name.endsWith('.ts')) found.push(path);
  }
  return found.sort();
}

interface SourceTree {
  /** Path relative to src -> its text. */
  files: Map<string, string>;
  /** Path relative to src -> the files it imports, relative to src. */
  graph: Map<string, string[]>;
  /** Packages imported, by file. */
  packages: Array<{ file: string; specifier: string }>;
  /** Relative imports that leave src or name no file there. */
  strays: Array<{ file: string; specifier: string }>;
}

async function readTree(src: string): Promise<SourceTree> {
  const tree: SourceTree = { files: new Map(), graph: new Map(), packages: [], strays: [] };
  for (const path of await tsFiles(src)) tree.files.set(relative(src, path), await readFile(path, 'utf8'));
  for (const [file, text] of tree.files) {
    const edges: string[] = [];
    for (const specifier of importSpecifiers(text)) {
      if (!specifier.startsWith('.')) {
        tree.packages.push({ file, specifier });
        continue;
      }
      const target = relative(src, resolve(src, dirname(file), specifier.replace(/\.js$/, '.ts')));
      if (tree.files.has(target)) edges.push(target);
      else tree.strays.push({ file, specifier });
    }
    tree.graph.set(file, edges);
  }
  return tree;
}

/** One import cycle of the graph (its files, the first repeated at the end), or undefined. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

/** What is wrong with a package directory's structure; empty when nothing is. */
async function structureProblems(dir: string): Promise<string[]> {
  const problems: string[] = [];
  const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const declared = Object.keys(manifest.dependencies ?? {});
  for (const name of declared) if (!ALLOWED_PACKAGES.includes(name)) problems.push(`package.json depends on ${name}`);
  const tree = await readTree(join(dir, 'src'));
  for (const { file, specifier } of tree.packages) {
    if (specifier.startsWith('node:')) continue;
    const name = packageOf(specifier);
    if (!ALLOWED_PACKAGES.includes(name)) problems.push(`${file} imports ${specifier}`);
    else if (!declared.includes(name)) problems.push(`${file} imports ${name}, which package.json does not declare`);
  }
  for (const { file, specifier } of tree.strays) problems.push(`${file} imports ${specifier}, outside db/src`);
  for (const [file, text] of tree.files) {
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > MAX_LINES) problems.push(`${file} has ${lines} lines (at most ${MAX_LINES})`);
  }
  const cycle = findCycle(tree.graph);
  if (cycle) problems.push(`import cycle: ${cycle.join(' -> ')}`);
  return problems;
}

t.test('db/src imports only kysely, pg, node: builtins, @foodies/domain and its own files; no file is long; no import cycle', async (t) => {
  t.same(await structureProblems(DB_DIR), []);
  const tree = await readTree(join(DB_DIR, 'src'));
  t.ok(tree.files.size >= 10 && tree.files.has('queries/answer.ts'), `the scan saw db/src (${tree.files.size} files)`);
  t.ok(
    tree.packages.some((p) => p.specifier === 'kysely'),
    'and its package imports',
  );
  t.ok((tree.graph.get('index.ts') ?? []).includes('queries/answer.ts'), 'and its relative imports');
});

t.test('db with @foodies/platform added fails the check', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'db-structure-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await cp(join(DB_DIR, 'src'), join(dir, 'src'), { recursive: true });
  const manifest = JSON.parse(await readFile(join(DB_DIR, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  manifest.dependencies['@foodies/platform'] = '0.1.0';
  await writeFile(join(dir, 'package.json'), JSON.stringify(manifest));
  const outbox = join(dir, 'src', 'queries', 'outbox.ts');
  await writeFile(outbox, `import { createLogger } from '@foodies/platform';\n${await readFile(outbox, 'utf8')}`);
  t.same((await structureProblems(dir)).sort(), [
    'package.json depends on @foodies/platform',
    'queries/outbox.ts imports @foodies/platform',
  ]);
});

t.test('the structure check fails for a platform dependency, a stray import, a long file and a cycle', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'db-structure-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'src', 'queries'), { recursive: true });
  const write = (path: string, text: string) => writeFile(join(dir, path), text);
  await write('package.json', JSON.stringify({ dependencies: { kysely: '*', pg: '*', '@foodies/platform': '*' } }));
  await write('src/index.ts', "export * from './queries/a.js';\nimport { readFile } from 'node:fs';\n");
  await write('src/queries/a.ts', "import type { Logger } from '@foodies/platform';\nimport { b } from './b.js';\n");
  await write('src/queries/b.ts', "import { a } from './a.js';\nimport { x } from '../../../apps/consumer/src/x.js';\n");
  await write('src/long.ts', 'export const n = 1;\n'.repeat(MAX_LINES + 1));
  await write('src/lazy.ts', "export const load = () => import('@foodies/domain');\n");
  t.same((await structureProblems(dir)).sort(), [
    'import cycle: queries/a.ts -> queries/b.ts -> queries/a.ts',
    'lazy.ts imports @foodies/domain, which package.json does not declare',
    `long.ts has ${MAX_LINES + 1} lines (at most ${MAX_LINES})`,
    'package.json depends on @foodies/platform',
    'queries/a.ts imports @foodies/platform',
    'queries/b.ts imports ../../../apps/consumer/src/x.js, outside db/src',
  ]);
});

t.test('import specifiers are read from every import and export form', async (t) => {
  const source = [
    "import t from 'tap';",
    "import { type A, b } from '../a.js';",
    "import type { C } from '@scope/c/sub';",
    "export * from './d.js';",
    "export { e } from './e.js';",
    "import './side-effect.js';",
    "import {\n  f,\n  g,\n} from 'multi-line';",
    "const h = await import('dynamic');",
    "export const SQL = `select id from outbox where state = 'x'`;",
  ].join('\n');
  t.same(
    importSpecifiers(source).sort(),
    ['../a.js', './d.js', './e.js', './side-effect.js', '@scope/c/sub', 'dynamic', 'multi-line', 'tap'].sort(),
  );
  t.equal(packageOf('@scope/c/sub'), '@scope/c');
  t.equal(packageOf('kysely/helpers/postgres'), 'kysely');
});

/**
 * The layering rule, kept true by a test: every `import` / `export … from` in `src/` goes down the stack
 * `tensor → backend → io → models → stages (analysis | sharing | train | distill | eval | export) → pipeline → cli`
 * (with the helper folders placed between them below), and there is no circle between files or between folders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers.js';

const SRC = path.join(repoRoot, 'src');

/** Rank of each top-level part of `src/`: an import may only go to the same or a lower rank. */
const RANK: Readonly<Record<string, number>> = {
  'errors.ts': 0, 'paths.ts': 0,
  tensor: 1,
  backend: 2,
  nn: 3, autograd: 4,
  io: 5, tokenizer: 6, report: 6,
  models: 7,
  analysis: 8, sharing: 8, train: 8, distill: 8, eval: 8, export: 8, serve: 8,
  pipeline: 9,
  cli: 10,
  'index.ts': 11,
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Relative module specifiers of a file's static imports and re-exports (type-only ones too) and dynamic imports. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g;
  for (let m; (m = re.exec(text)); ) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith('.')) out.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}

const part = (file: string) => path.relative(SRC, file).split(path.sep)[0];

function cycles(graph: Map<string, Set<string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, 1);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 1) found.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return found;
}

test('imports only go down the layers, and no file or folder imports itself in a circle', () => {
  const files = sourceFiles(SRC);
  const fileGraph = new Map<string, Set<string>>();
  const folderGraph = new Map<string, Set<string>>();
  const upward: string[] = [];
  for (const f of files) {
    const from = part(f);
    assert.ok(from in RANK, `src/${from} has no place in the layer table of this test: give it one`);
    fileGraph.set(f, new Set());
    for (const dep of importsOf(f)) {
      assert.ok(fs.existsSync(dep), `${path.relative(repoRoot, f)} imports ${path.relative(repoRoot, dep)}, which does not exist`);
      fileGraph.get(f)!.add(dep);
      const to = part(dep);
      if (RANK[to] > RANK[from]) upward.push(`${path.relative(SRC, f)} → ${path.relative(SRC, dep)} (${from} is below ${to})`);
      if (to !== from) {
        if (!folderGraph.has(from)) folderGraph.set(from, new Set());
        folderGraph.get(from)!.add(to);
      }
    }
  }
  assert.deepEqual(upward, [], 'imports that run upward');
  const fileCycles = cycles(fileGraph).map((c) => c.map((f) => path.relative(SRC, f)).join(' → '));
  assert.deepEqual(fileCycles, [], 'circles between files');
  assert.deepEqual(cycles(folderGraph).map((c) => c.join(' → ')), [], 'circles between folders');
});

test('the import scanner sees what it must (a check that the rule above can fail)', () => {
  const f = path.join(SRC, 'models/llama.ts');
  const deps = importsOf(f).map((d) => path.relative(SRC, d));
  assert.ok(deps.includes(path.join('models', 'decoder.ts')) && deps.includes(path.join('backend', 'index.ts')), deps.join(', '));
  assert.equal(cycles(new Map([['a', new Set(['b'])], ['b', new Set(['a'])]])).length, 1);
});

test('no file in src/ is over 400 lines', () => {
  const long = sourceFiles(SRC).map((f) => [path.relative(SRC, f), fs.readFileSync(f, 'utf8').trimEnd().split('\n').length] as const).filter(([, n]) => n > 400);
  assert.deepEqual(long, []);
});

test('no function in src/ is over 80 lines', async () => {
  const ts = (await import('typescript')).default;
  const long: string[] = [];
  for (const f of sourceFiles(SRC)) {
    const sf = ts.createSourceFile(f, fs.readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: import('typescript').Node) => {
      if (ts.isFunctionLike(n) && 'body' in n && n.body) {
        const lines = sf.getLineAndCharacterOfPosition(n.getEnd()).line - sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
        const name = 'name' in n && n.name ? (n.name as import('typescript').Node).getText(sf) : '(anonymous)';
        if (lines > 80) long.push(`${path.relative(SRC, f)}: ${name} (${lines} lines)`);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  assert.deepEqual(long, []);
});

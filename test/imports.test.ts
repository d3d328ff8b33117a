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

const NATIVE = path.join(repoRoot, 'native');
const nativeFiles = () => fs.readdirSync(NATIVE).filter((f) => /\.(cc|h)$/.test(f)).map((f) => path.join(NATIVE, f));

/**
 * Functions (and lambdas) in C++ source with their line counts, by brace matching: a `{` whose preceding text ends in
 * a parenthesised list (after `const` / `noexcept` / …) not belonging to `if` / `for` / `while` / `switch` / `catch`
 * opens a body, which runs from the line of the name before that list to its matching `}`. Comments and string and
 * character literals are blanked first so their braces do not count.
 */
function cxxFunctions(text: string): { name: string; line: number; lines: number }[] {
  let s = '';
  for (let i = 0; i < text.length; ) {
    const two = text.slice(i, i + 2);
    if (two === '//' || two === '/*') {
      const close = two === '//' ? text.indexOf('\n', i) : text.indexOf('*/', i + 2);
      const stop = close < 0 ? text.length : two === '//' ? close : close + 2;
      s += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (text[i] === '"' || (text[i] === "'" && !/[0-9A-Fa-f]/.test(text[i - 1] ?? ''))) {
      let j = i + 1;
      while (j < text.length && text[j] !== text[i]) j += text[j] === '\\' ? 2 : 1;
      s += text.slice(i, j + 1).replace(/[^\n]/g, ' ');
      i = j + 1;
    } else s += text[i++];
  }
  const lineAt = (pos: number) => s.slice(0, pos).split('\n').length;
  const found: { name: string; line: number; lines: number }[] = [];
  const open: ({ name: string; start: number } | null)[] = [];
  for (let i = 0; i < s.length; ++i) {
    if (s[i] === '{') {
      const head = s.slice(0, i).replace(/(?:\s|\bconst|\bnoexcept|\boverride|\bmutable|\bfinal)*$/, '');
      let body: { name: string; start: number } | null = null;
      if (head.endsWith(')')) {
        let depth = 0;
        let j = head.length - 1;
        for (; j >= 0; --j) {
          if (head[j] === ')') ++depth;
          else if (head[j] === '(' && --depth === 0) break;
        }
        const before = head.slice(0, j).trimEnd();
        const name = /(?:[A-Za-z_]\w*|\])$/.exec(before)?.[0];
        if (name && !/^(?:if|for|while|switch|catch|return|sizeof|decltype)$/.test(name)) body = { name, start: before.length - name.length };
      }
      open.push(body);
    } else if (s[i] === '}') {
      const f = open.pop();
      if (f) found.push({ name: f.name, line: lineAt(f.start), lines: lineAt(i) - lineAt(f.start) + 1 });
    }
  }
  return found;
}

test('the C++ function scanner sees what it must (a check that the native rule below can fail)', () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};  // }{ "}"`).join('\n');
  const text = [
    'static int long_one(int a,', '                    int b) {', '  if (a) {', body(80), '  }', '  return a;', '}',
    'struct S {', '  int f() const { return 1; }', '};',
    "void g() { char c = '}'; auto h = [&](int x) {", body(3), '  };', '}',
  ].join('\n');
  const fns = cxxFunctions(text);
  assert.deepEqual(fns.map((f) => [f.name, f.line, f.lines]), [['long_one', 1, 86], ['f', 88, 1], [']', 90, 5], ['g', 90, 6]]);
  assert.ok(cxxFunctions(fs.readFileSync(path.join(NATIVE, 'program.cc'), 'utf8')).some((f) => f.name === 'run'));
});

test('no file in src/ or native/ is over 400 lines', () => {
  const files = [...sourceFiles(SRC), ...nativeFiles()];
  const long = files.map((f) => [path.relative(repoRoot, f), fs.readFileSync(f, 'utf8').trimEnd().split('\n').length] as const).filter(([, n]) => n > 400);
  assert.deepEqual(long, []);
});

test('no function in src/ or native/ is over 80 lines', async () => {
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
  for (const f of nativeFiles()) {
    for (const fn of cxxFunctions(fs.readFileSync(f, 'utf8'))) {
      if (fn.lines > 80) long.push(`${path.relative(repoRoot, f)}:${fn.line}: ${fn.name} (${fn.lines} lines)`);
    }
  }
  assert.deepEqual(long, []);
});

/** End-to-end: the `echoatt` CLI as a user runs it, on stories260K from ../shared. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, sharedDir } from './helpers.js';

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], {
    cwd: repoRoot,
    encoding: 'buffer',
    timeout: 120_000,
  });
}

test('echoatt generate (default model, greedy, 200 steps) prints exactly run.c\'s text on stdout', () => {
  const r = cli(['generate', '--temperature', '0', '--steps', '200']);
  assert.equal(r.status, 0, r.stderr.toString());
  const golden = fs.readFileSync(path.join(sharedDir, 'reference/stories260K-greedy-200.txt'));
  assert.ok(r.stdout.equals(golden), `stdout differs:\n${r.stdout.toString()}`);
  assert.match(r.stderr.toString(), /tok\/s/);
});

test('echoatt convert then generate from the Hugging Face copy with a prompt', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-cli-'));
  try {
    const out = path.join(dir, 'hf');
    const c = cli(['convert', '--out', out]);
    assert.equal(c.status, 0, c.stderr.toString());
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.bin']) assert.ok(fs.existsSync(path.join(out, f)), f);
    const g = cli(['generate', '--model', out, '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '30']);
    assert.equal(g.status, 0, g.stderr.toString());
    const a = cli(['generate', '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '30']);
    assert.ok(g.stdout.toString().startsWith('Once upon a time'));
    assert.equal(g.stdout.toString(), a.stdout.toString());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives a clear error and exit code 2, not a stack trace', () => {
  const missing = cli(['generate', '--model', '/nonexistent/model.bin']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr.toString(), /nonexistent\/model\.bin/);
  assert.doesNotMatch(missing.stderr.toString(), /at .*\.ts:\d+/);
  const badTemp = cli(['generate', '--temperature', 'hot']);
  assert.equal(badTemp.status, 2);
  assert.match(badTemp.stderr.toString(), /--temperature/);
});

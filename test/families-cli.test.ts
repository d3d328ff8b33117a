/**
 * The new families through every stage of the CLI: a random Gemma 3 (sliding and full layers, GeGLU, `1 + w` norms)
 * and a random Qwen3 at stories260K's vocabulary with its tokenizer, run by `generate` and by the whole `pipeline`
 * (analyze → share → distill → eval → report); and a plan with dropped attention through `share` and `distill`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, sharedDir } from './helpers.js';
import { configFromJson } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { writeModelCheckpoint } from '../src/models/checkpoint.js';
import { loadModel } from '../src/models/load.js';

const TOKENIZER = path.join(sharedDir, 'models/stories260K/tok512.bin');
const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const TEXT = path.join(sharedDir, 'data/corpus/tinystories_sample.txt');

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 300_000 });
}

/** A random model of the fixture's family at vocabulary 512, saved with the stories260K tokenizer. */
function randomFamilyModel(dir: string, fixture: string): string {
  const json = JSON.parse(fs.readFileSync(path.join(repoRoot, 'test/fixtures/families', fixture, 'config.json'), 'utf8')) as Record<string, unknown>;
  const cfg = configFromJson({ ...json, vocab_size: 512, bos_token_id: 1, eos_token_id: 2, max_position_embeddings: 256 }, `${fixture} (vocab 512)`);
  const out = path.join(dir, fixture);
  writeModelCheckpoint(out, cfg, randomLlamaWeights(cfg, { seed: 7 }), TOKENIZER);
  return out;
}

test('Gemma 3 and Qwen3 run through generate and the whole pipeline (analyze, share, distill, eval, report)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-families-'));
  try {
    for (const fixture of ['gemma3-pattern', 'qwen3']) {
      const model = randomFamilyModel(dir, fixture);
      const g = cli(['generate', '--model', model, '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '12']);
      assert.equal(g.status, 0, g.stderr);
      assert.ok(g.stdout.startsWith('Once upon a time'), g.stdout);
    }
    const gemma = path.join(dir, 'gemma3-pattern');
    const out = path.join(dir, 'run');
    const r = cli(['pipeline', '--model', gemma, '--data', TEXT, '--distill-data', TEXT, '--seqs', '2', '--seq-len', '32', '--distill-steps', '2', '--distill-batch', '2',
      '--distill-seq-len', '32', '--limit', '2', '--tasks', 'piqa', '--ppl-windows', '2', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    for (const stage of ['analyze', 'share', 'distill', 'evaluate', 'report']) assert.ok(fs.existsSync(path.join(out, stage, 'stage.json')), stage);
    const student = loadModel(path.join(out, 'share', 'student'));
    assert.equal(student.model.config.architecture, 'Gemma3ForCausalLM');
    assert.ok(student.model.sharedLayers().length > 0, 'the pipeline shared some layers');
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'share', 'student', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg.architectures, ['EchoAttGemma3ForCausalLM']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a plan that drops attention: share writes a student without those layers\' attention, distill trains it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-dropped-'));
  try {
    const plan = path.join(dir, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ format: 'echoatt-plan', version: 3, groups: [{ anchor: 1, shared: [2] }], dropped: [3] }));
    const s = cli(['share', '--model', STORIES, '--plan', plan, '--out', path.join(dir, 'student')]);
    assert.equal(s.status, 0, s.stderr);
    const student = loadModel(path.join(dir, 'student'));
    assert.deepEqual(student.model.attention.map((k) => k.kind), ['own', 'own', 'echo', 'dropped', 'own']);
    assert.equal(student.model.params.layers[3].wv, undefined);
    const d = cli(['distill', '--teacher', STORIES, '--plan', plan, '--data', TEXT, '--steps', '2', '--seq-len', '16', '--batch', '2', '--no-plot', '--quiet', '--out', path.join(dir, 'distilled')]);
    assert.equal(d.status, 0, d.stderr);
    const trained = loadModel(path.join(dir, 'distilled', 'student'));
    assert.equal(trained.model.attention[3].kind, 'dropped');
    const g = cli(['generate', '--model', path.join(dir, 'distilled', 'student'), '--prompt', 'Once', '--temperature', '0', '--max-tokens', '8']);
    assert.equal(g.status, 0, g.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

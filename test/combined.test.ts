/**
 * One model that shares attention across layers (echo, with a head-aligned map) AND head weights within other layers
 * (DirectShare units), on stories260K: built, saved, reloaded, generated from, and held to a direct computation
 * written here in plain loops (no echoatt kernel, decoder or layer code), which applies the same sharing to the
 * teacher's own weights. Also: `echoatt share` then `echoatt headshare` chained from the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel, saveModel } from '../src/models/load.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { makeHeadMap, type HeadMap } from '../src/models/head-map.js';
import { withHeadMap, withPlan } from '../src/models/surgery.js';
import { generate } from '../src/models/generate.js';
import { getBackend } from '../src/backend/index.js';
import type { LlamaModel } from '../src/models/llama.js';
import { assertClose, f32, repoRoot, sharedDir } from './helpers.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

/** The weights the reference uses: copies of the teacher's, with every head-shared unit overwritten by its source. */
function referenceWeights(teacher: LlamaModel, map: HeadMap) {
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = teacher.config;
  const G = H / U;
  const layers = teacher.params.layers.map((lp) => ({
    wq: f32(lp.wq!).slice(), wk: f32(lp.wk!).slice(), wv: f32(lp.wv!).slice(), wo: f32(lp.wo!).slice(),
    inNorm: lp.inputNorm, postNorm: lp.postNorm!, gate: f32(lp.wGate), up: f32(lp.wUp), down: f32(lp.wDown),
  }));
  for (const e of map.shared) {
    const [dst, src] = [layers[e.layer], layers[e.source_layer]];
    const qr = G * D * dim;
    dst.wq.set(src.wq.subarray(e.source_group * qr, (e.source_group + 1) * qr), e.group * qr);
    dst.wk.set(src.wk.subarray(e.source_group * D * dim, (e.source_group + 1) * D * dim), e.group * D * dim);
    dst.wv.set(src.wv.subarray(e.source_group * D * dim, (e.source_group + 1) * D * dim), e.group * D * dim);
    for (let r = 0; r < dim; r++) {
      for (let c = 0; c < G * D; c++) dst.wo[r * H * D + e.group * G * D + c] = src.wo[r * H * D + e.source_group * G * D + c];
    }
  }
  return { layers, embed: f32(teacher.params.embed), norm: teacher.params.norm };
}

/** y (n) = W (n, k) · x (k), in f64. */
function matvec(w: Float32Array, x: ArrayLike<number>, n: number, k: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += w[i * k + j] * x[j];
    y[i] = s;
  }
  return y;
}

function rmsnorm(x: ArrayLike<number>, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from(w, (wi, i) => x[i] * r * wi);
}

/** llama2.c RoPE: adjacent pairs (x[2i], x[2i+1]) of each head rotated by pos · 10000^(−2i/D). */
function rope(v: Float64Array, heads: number, D: number, pos: number): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < D / 2; i++) {
      const a = pos * Math.pow(10000, (-2 * i) / D);
      const [x0, x1] = [v[h * D + 2 * i], v[h * D + 2 * i + 1]];
      v[h * D + 2 * i] = x0 * Math.cos(a) - x1 * Math.sin(a);
      v[h * D + 2 * i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  }
}

/** Logits of every position, the sharing applied by hand: `anchorOf[l]` ≥ 0 echoes that layer, reading `heads[l][h]`. */
function referenceLogits(teacher: LlamaModel, w: ReturnType<typeof referenceWeights>, anchorOf: number[], heads: Record<number, number[]>, ids: number[]): Float64Array[] {
  const c = teacher.config;
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim, intermediateSize: F, vocabSize: V, rmsNormEps: eps } = c;
  const T = ids.length;
  const xs = ids.map((id) => Float64Array.from(w.embed.subarray(id * dim, (id + 1) * dim)));
  const probsOf = new Map<number, number[][][]>(); // [h][t][s]
  w.layers.forEach((lw, l) => {
    const xn = xs.map((x) => rmsnorm(x, lw.inNorm, eps));
    const vs = xn.map((x) => matvec(lw.wv, x, U * D, dim));
    let probs: number[][][];
    if (anchorOf[l] >= 0) {
      const a = probsOf.get(anchorOf[l])!;
      probs = Array.from({ length: H }, (_, h) => a[heads[l]?.[h] ?? h]);
    } else {
      const qs = xn.map((x, t) => { const q = matvec(lw.wq, x, H * D, dim); rope(q, H, D, t); return q; });
      const ks = xn.map((x, t) => { const k = matvec(lw.wk, x, U * D, dim); rope(k, U, D, t); return k; });
      probs = Array.from({ length: H }, (_, h) => qs.map((q, t) => {
        const g = Math.floor(h / (H / U));
        const sc = Array.from({ length: t + 1 }, (_, s) => { let d = 0; for (let i = 0; i < D; i++) d += q[h * D + i] * ks[s][g * D + i]; return d / Math.sqrt(D); });
        const m = Math.max(...sc);
        const e = sc.map((v) => Math.exp(v - m));
        const z = e.reduce((p, v) => p + v, 0);
        return Array.from({ length: T }, (_, s) => (s <= t ? e[s] / z : 0));
      }));
      probsOf.set(l, probs);
    }
    for (let t = 0; t < T; t++) {
      const att = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / U));
        for (let s = 0; s <= t; s++) for (let i = 0; i < D; i++) att[h * D + i] += probs[h][t][s] * vs[s][g * D + i];
      }
      const o = matvec(lw.wo, att, dim, H * D);
      for (let i = 0; i < dim; i++) xs[t][i] += o[i];
      const x2 = rmsnorm(xs[t], lw.postNorm, eps);
      const g = matvec(lw.gate, x2, F, dim);
      const u = matvec(lw.up, x2, F, dim);
      const act = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]);
      const d = matvec(lw.down, act, dim, F);
      for (let i = 0; i < dim; i++) xs[t][i] += d[i];
    }
  });
  return xs.map((x) => matvec(w.embed, rmsnorm(x, w.norm, eps), V, dim)); // tied classifier
}

const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

test('a student with layer-wise AND head-wise sharing: save, reload, generate, logits = direct computation', () => {
  const { model: teacher, tokenizer, checkpoint } = loadModel(STORIES, { backend: getBackend() });
  // Layer 2 echoes layer 1 with its query heads re-aligned; layer 4 echoes layer 3, which is head-shared itself
  // (its group 1 uses layer 0's group 0) and so passes on probabilities computed from borrowed weights.
  const heads2 = [3, 3, 0, 1, 7, 6, 5, 4];
  const plan = makePlan('manual', [{ anchor: 1, shared: [2], heads: { 2: heads2 } }, { anchor: 3, shared: [4] }]);
  const map = makeHeadMap('manual', [{ layer: 3, group: 1, source_layer: 0, source_group: 0 }], teacher.config);
  const both = withHeadMap(withPlan(teacher, plan), map);
  assert.deepEqual(both.attention.map((k) => k.kind), ['own', 'own', 'echo', 'headShared', 'echo']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-combined-'));
  try {
    saveModel(dir, both, checkpoint.tokenizerPath);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.echoatt_sharing.version, 2);
    assert.deepEqual(cfg.echoatt_sharing.groups[0].heads, { 2: heads2 });
    assert.equal(cfg.echoatt_head_sharing.shared.length, 1);
    const again = loadModel(dir).model;
    assert.deepEqual(again.attention.map((k) => k.kind), ['own', 'own', 'echo', 'headShared', 'echo']);
    assert.equal(again.parameterCount(), both.parameterCount());
    const ids = tokenizer.encode('Once upon a time, a little fox saw a big red ball', { bos: true });
    const ref = referenceLogits(teacher, referenceWeights(teacher, map), [-1, -1, 1, -1, 3], { 2: heads2 }, ids);
    const flat = (rows: Float64Array[]) => Float64Array.from(rows.flatMap((r) => [...r]));
    assertClose(again.forward(Int32Array.from(ids)), flat(ref), 'reloaded combined student vs direct computation', 1e-4, 1e-4);
    assertClose(both.forward(Int32Array.from(ids)), flat(ref), 'built combined student vs direct computation', 1e-4, 1e-4);
    // Greedy generation through the KV cache (echo layers keep V only) picks the direct computation's argmax at every step.
    const out = generate(again, tokenizer, { prompt: 'Once upon a time', maxTokens: 12, temperature: 0, stopIds: [] }, () => {});
    const seq = [...out.promptTokens];
    for (const tok of out.tokens) {
      assert.equal(tok, argmax(referenceLogits(teacher, referenceWeights(teacher, map), [-1, -1, 1, -1, 3], { 2: heads2 }, seq).at(-1)!), `step ${seq.length}`);
      seq.push(tok);
    }
    assert.equal(out.tokens.length, 12);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: echoatt share then echoatt headshare on the student gives one model with both', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-chain-'));
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  try {
    const planFile = path.join(dir, 'plan.json');
    fs.writeFileSync(planFile, JSON.stringify({ groups: [{ anchor: 1, shared: [2, 3] }] }));
    const s = cli(['share', '--model', STORIES, '--plan', planFile, '--out', path.join(dir, 'student')]);
    assert.equal(s.status, 0, s.stderr);
    const h = cli(['headshare', '--model', path.join(dir, 'student'), '--share-rate', '0.2', '--out', path.join(dir, 'both')]);
    assert.equal(h.status, 0, h.stderr);
    const m = loadModel(path.join(dir, 'both')).model;
    assert.deepEqual(m.sharedLayers(), [2, 3]);
    assert.ok(m.headMap && m.headMap.shared.length === 4 && m.headMap.shared.every((e) => ![2, 3].includes(e.layer) && ![2, 3].includes(e.source_layer)));
    const logits = m.forward(Int32Array.of(1, 403, 407, 261));
    assert.ok(logits.every(Number.isFinite));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

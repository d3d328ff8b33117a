/**
 * Continuous batching's decode step: sequences of different lengths in one step, joining and leaving between steps,
 * for every attention kind (own, echo with a head map, head-shared) — each row's logits must equal those of the same
 * sequence decoded alone through its own KV cache, and a student's slot cache holds no K for its echo layers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { makeHeadMap } from '../src/models/head-map.js';
import { withHeadMap, withPlan } from '../src/models/surgery.js';
import { getBackend } from '../src/backend/index.js';
import type { LlamaModel } from '../src/models/llama.js';
import { assertClose, sharedDir } from './helpers.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

function models(): [string, LlamaModel][] {
  const { model: teacher } = loadModel(STORIES, { backend: getBackend() });
  const plan = makePlan('manual', [{ anchor: 1, shared: [2], heads: { 2: [3, 3, 0, 1, 7, 6, 5, 4] } }, { anchor: 3, shared: [4] }]);
  const map = makeHeadMap('manual', [{ layer: 3, group: 1, source_layer: 0, source_group: 0 }], teacher.config);
  const both = withHeadMap(withPlan(teacher, plan), map);
  assert.deepEqual(both.attention.map((k) => k.kind), ['own', 'own', 'echo', 'headShared', 'echo']);
  return [['teacher', teacher], ['echo + head-aligned + head-shared student', both]];
}

/** Greedy decode of one sequence alone: the logits after the prompt and after each of `steps` generated tokens. */
function alone(m: LlamaModel, prompt: number[], steps: number): { logits: Float32Array[]; tokens: number[] } {
  const cache = m.newCache(1, 256);
  const logits = [m.forward(Int32Array.from(prompt), { cache, lastOnly: true })];
  const tokens: number[] = [];
  for (let i = 0; i < steps; i++) {
    tokens.push(argmax(logits[i]));
    logits.push(m.forward(Int32Array.of(tokens[i]), { cache, lastOnly: true }));
  }
  return { logits, tokens };
}

for (const [name, m] of models()) {
  test(`decodeSlots (${name}): ragged rows joining and leaving equal each sequence decoded alone`, () => {
    const V = m.config.vocabSize;
    // Three prompts of different lengths; B joins after 3 steps, A leaves after 5, C joins last and reuses A's slot.
    const seqs = [
      { prompt: [1, 403, 407, 261, 299, 378, 411, 280, 435, 260, 354], join: 0, steps: 5 },
      { prompt: [1, 500, 93], join: 3, steps: 9 },
      { prompt: [1, 403, 407, 261, 299, 378, 411, 280, 435, 260, 354, 302, 394, 281, 299, 379, 300, 269, 280], join: 6, steps: 6 },
    ].map((s) => ({ ...s, ref: alone(m, s.prompt, s.steps), slot: -1, done: 0, next: -1 }));
    const cache = m.newSlotCache(2, 256);
    let rowsChecked = 0;
    for (let step = 0; seqs.some((s) => s.done < s.steps); step++) {
      for (const s of seqs) {
        if (s.join !== step) continue;
        const slot = cache.acquire();
        assert.notEqual(slot, null, 'a slot is free when a sequence joins');
        s.slot = slot!;
        const logits = m.forward(Int32Array.from(s.prompt), { cache: cache.view(s.slot), lastOnly: true });
        cache.commit(s.slot, s.prompt.length);
        assertClose(logits, s.ref.logits[0], `${name} prefill into slot ${s.slot}`, 1e-5, 1e-5);
        s.next = argmax(logits);
      }
      const live = seqs.filter((s) => s.slot >= 0 && s.done < s.steps);
      if (!live.length) continue;
      const out = m.decodeSlots(Int32Array.from(live, (s) => s.next), Int32Array.from(live, (s) => s.slot), cache); // (B, V)
      live.forEach((s, b) => {
        const row = out.subarray(b * V, (b + 1) * V);
        assertClose(row, s.ref.logits[s.done + 1], `${name} step ${step}, slot ${s.slot}, position ${cache.lengths[s.slot] - 1}`, 1e-4, 1e-4);
        assert.equal(s.next, s.ref.tokens[s.done]);
        s.done++;
        s.next = argmax(row);
        rowsChecked++;
        if (s.done === s.steps) {
          cache.release(s.slot);
          s.slot = -1;
        }
      });
    }
    assert.equal(rowsChecked, 5 + 9 + 6);
    assert.equal(cache.free, 2);
  });
}

test('a slot cache follows the layer kinds: echo layers keep V only, so the same bytes hold more sequences', () => {
  const [[, teacher], [, student]] = models();
  const t = teacher.newSlotCache(4, 64);
  const s = student.newSlotCache(4, 64);
  const row = teacher.config.numKvHeads * teacher.config.headDim * 4;
  assert.equal(t.bytesPerToken(), 5 * 2 * row);
  assert.equal(s.bytesPerToken(), (5 * 2 - 2) * row);
  assert.equal(s.k[2], null);
  assert.equal(s.k[4], null);
  assert.equal(s.bytes(), s.bytesPerToken() * 4 * 64);
  assert.throws(() => student.decodeSlots(Int32Array.of(1, 2), Int32Array.of(0, 0), s), /a slot appears twice/);
  assert.throws(() => s.release(9), /slot 9 is not in \[0, 4\)/);
  const full = student.newSlotCache(1, 2);
  const a = full.acquire()!;
  assert.equal(full.acquire(), null, 'no free slot');
  student.forward(Int32Array.of(1, 2), { cache: full.view(a), lastOnly: true });
  full.commit(a, 2);
  assert.throws(() => student.decodeSlots(Int32Array.of(3), Int32Array.of(a), full), /slot 0 is full/);
});

for (const [name, m] of models()) {
  test(`a long step through the cache in query chunks equals one piece (${name})`, () => {
    const T = 300;
    const ids = Int32Array.from({ length: 2 * T }, (_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1))); // (2, T)
    const whole = m.forward(ids, { batch: 2, cache: m.newCache(2, 512), chunk: 0 });
    const cache = m.newCache(2, 512);
    const chunked = m.forward(ids, { batch: 2, cache, chunk: 64 });
    assert.equal(cache.length, T);
    assertClose(chunked, whole, `${name}: all logits, chunks of 64`, 1e-5, 1e-5);
    const last = m.forward(ids, { batch: 2, cache: m.newCache(2, 512), chunk: 64, lastOnly: true });
    const V = m.config.vocabSize;
    for (let b = 0; b < 2; b++) assertClose(last.subarray(b * V, (b + 1) * V), whole.subarray(((b + 1) * T - 1) * V, (b + 1) * T * V), `${name}: last row ${b}`, 1e-5, 1e-5);
    // Decoding on after a chunked prefill continues exactly as after one piece.
    const c1 = m.newCache(1, 512);
    const c2 = m.newCache(1, 512);
    m.forward(ids.subarray(0, T), { cache: c1, chunk: 0, lastOnly: true });
    m.forward(ids.subarray(0, T), { cache: c2, chunk: 100, lastOnly: true });
    assertClose(m.forward(Int32Array.of(7), { cache: c2, lastOnly: true }), m.forward(Int32Array.of(7), { cache: c1, lastOnly: true }), `${name}: decode after`, 1e-5, 1e-5);
  });
}

test('probsSlots: anchors alive at the same time get different buffers, anchors in separate spans share one', async () => {
  const { probsSlots } = await import('../src/models/attention-kinds.js');
  const own = { kind: 'own' } as const;
  const echo = (anchor: number) => ({ kind: 'echo', anchor, heads: null }) as const;
  const apart = probsSlots([own, own, echo(1), own, echo(3)]);
  assert.deepEqual([...apart.slotOf], [[1, 0], [3, 0]]);
  assert.equal(apart.count, 1);
  const overlapping = probsSlots([own, echo(0), own, echo(0), echo(2)]);
  assert.deepEqual([...overlapping.slotOf], [[0, 0], [2, 1]]);
  assert.equal(overlapping.count, 2);
});

test('a chunked step with overlapping anchors (two probability buffers alive at once) equals one piece', () => {
  const { model: teacher } = loadModel(STORIES, { backend: getBackend() });
  const m = withPlan(teacher, makePlan('manual', [{ anchor: 0, shared: [1, 3] }, { anchor: 2, shared: [4] }]));
  const ids = Int32Array.from({ length: 200 }, (_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1)));
  const whole = m.forward(ids, { cache: m.newCache(1, 256), chunk: 0 });
  assertClose(m.forward(ids, { cache: m.newCache(1, 256), chunk: 48 }), whole, 'overlapping anchors, chunks of 48', 1e-5, 1e-5);
});

/**
 * The evaluation harness: log-likelihoods and perplexities against direct hand computations on a tiny random model,
 * lm-eval metric conventions (ties, normalisation, stderr), every built-in task loader on its full real file,
 * malformed-input errors naming file and line, user task specs (jsonl/json/parquet), and the `eval` CLI end to end.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { configFromJson } from '../src/models/config.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { withPlan } from '../src/models/surgery.js';
import { makePlan } from '../src/models/sharing-plan.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import {
  aggregate, argmaxFirst, charLength, choiceMetrics, encodePair, meanStderr, runTask, scoreContinuations, scoreIndependent,
  scoreItem, selectItems, type ItemScore,
} from '../src/eval/scoring.js';
import {
  loadPplCorpus, rollingNll, tokenPerplexity, wikitextDetokenize, wikitextPages, wikitextRows, wordBytePerplexity,
} from '../src/eval/perplexity.js';
import { BUILTIN_TASKS, loadBuiltinTask } from '../src/eval/tasks/index.js';
import { loadHellaswag } from '../src/eval/tasks/hellaswag.js';
import { loadPiqa } from '../src/eval/tasks/piqa.js';
import { loadArc } from '../src/eval/tasks/arc.js';
import { loadBoolq } from '../src/eval/tasks/boolq.js';
import { loadOpenbookqa } from '../src/eval/tasks/openbookqa.js';
import { loadWinogrande } from '../src/eval/tasks/winogrande.js';
import { loadLambada } from '../src/eval/tasks/lambada.js';
import { loadTaskSpec } from '../src/eval/taskspec.js';
import { evaluate } from '../src/eval/evaluate.js';
import { markdownTable, tableRows } from '../src/eval/table.js';
import { measureSpeed, speedRatio, type SpeedComparison } from '../src/eval/speed.js';
import type { Task } from '../src/eval/tasks/types.js';
import { repoRoot, sharedDir } from './helpers.js';

const TASK_DIR = path.join(sharedDir, 'data/tasks');
const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

/** Character-level tokenizer: BOS 1, EOS 2, byte b → b + 3 (vocab 259 would be too big; bytes are folded mod 45). */
class CharTokenizer implements Tokenizer {
  readonly vocabSize = 48;
  readonly bosId = 1;
  readonly eosIds = [2];
  readonly maxTokenLength = 1;
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = [...Buffer.from(text, 'utf8')].map((b) => 3 + (b % 45));
    if (opts.bos ?? true) ids.unshift(1);
    if (opts.eos) ids.push(2);
    return ids;
  }
  decode(): string {
    return '';
  }
  decodePiece(): Uint8Array {
    return new Uint8Array(0);
  }
}

function tinyModel(backendName: 'native' | 'reference', maxPos = 64): LlamaModel {
  const cfg = configFromJson({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 48, max_position_embeddings: maxPos, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  }, 'tiny (test)');
  // Larger weights than the default init so that log-probabilities differ visibly between tokens.
  const w = randomLlamaWeights(cfg, { seed: 7 });
  for (const [name, t] of w) if (!name.endsWith('norm.weight')) (t.data as Float32Array).forEach((x, i, a) => (a[i] = x * 3));
  return LlamaModel.fromWeights(cfg, w, getBackend(backendName));
}

/** Direct log-softmax in f64 of one logits row. */
function logProb(logits: Float32Array, row: number, v: number, target: number): number {
  let max = -Infinity;
  for (let j = 0; j < v; j++) max = Math.max(max, logits[row * v + j]);
  let s = 0;
  for (let j = 0; j < v; j++) s += Math.exp(logits[row * v + j] - max);
  return logits[row * v + target] - max - Math.log(s);
}

function argmax(logits: Float32Array, row: number, v: number): number {
  let b = 0;
  for (let j = 1; j < v; j++) if (logits[row * v + j] > logits[row * v + b]) b = j;
  return b;
}

/** Hand computation of lm-eval's loglikelihood of `cont` given `ctx`: one uncached forward over the (cut) input. */
function directLL(model: LlamaModel, ctx: number[], cont: number[]): { ll: number; greedy: boolean } {
  const v = model.config.vocabSize;
  const full = [...ctx, ...cont];
  const inp = full.slice(-(model.config.maxPositions + 1)).slice(0, -1);
  const logits = model.forward(Int32Array.from(inp));
  let ll = 0;
  let greedy = true;
  cont.forEach((t, j) => {
    const row = inp.length - cont.length + j;
    ll += logProb(logits, row, v, t);
    if (argmax(logits, row, v) !== t) greedy = false;
  });
  return { ll, greedy };
}

/** Direct NLL of tokens `ids[from..]` of a window (uncached forward over the whole window). */
function directWindowNll(model: LlamaModel, ids: number[], from: number): number {
  const v = model.config.vocabSize;
  const logits = model.forward(Int32Array.from(ids));
  let s = 0;
  for (let j = Math.max(from, 1); j < ids.length; j++) s -= logProb(logits, j - 1, v, ids[j]);
  return s;
}

function stream(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return 3 + ((s >>> 8) % 45);
  });
}

const tok = new CharTokenizer();

for (const backendName of availableBackends()) {
  describe(`log-likelihood scoring on ${backendName}`, () => {
    const model = tinyModel(backendName);
    const tol = 1e-6; // relative; f32 kernel vs f64 hand log-softmax differ by ~1e-8 relative

    test('encodePair follows lm-eval: trailing context spaces move to the continuation, BOS per tokenizer', () => {
      const p = encodePair(tok, 'Question: hi\nAnswer: ', 'yes');
      assert.deepEqual(p.context, tok.encode('Question: hi\nAnswer:'));
      assert.deepEqual(p.continuation, tok.encode(' yes', { bos: false }));
      assert.equal(p.context[0], 1);
      assert.equal(encodePair(tok, 'ab', ' c', { bos: false }).context[0], tok.encode('a', { bos: false })[0]);
      // Empty context: the prefix token (BOS) alone.
      assert.deepEqual(encodePair(tok, '', 'xy').context, [1]);
    });

    test('multiple choice: summed log-likelihoods and greedy flags equal a hand computation (shared-prefix KV path)', () => {
      const item = { kind: 'choice' as const, context: 'The cat sat on the', choices: ['mat.', 'dog and ran', 'a', 'hat of the king'], gold: 0 };
      const s = scoreItem(model, tok, item, ' ');
      const ctx = tok.encode(item.context);
      item.choices.forEach((c, i) => {
        const cont = tok.encode(` ${c}`, { bos: false });
        const d = directLL(model, ctx, cont);
        assert.ok(Math.abs(s.lls[i] - d.ll) <= tol * Math.max(1, Math.abs(d.ll)), `choice ${i}: ${s.lls[i]} vs ${d.ll}`);
        assert.equal(s.greedy[i], d.greedy, `greedy ${i}`);
      });
      assert.ok(s.lls.every((x) => Number.isFinite(x) && x < 0));
      // The shared-prefix path and the independent path agree.
      const conts = item.choices.map((c) => tok.encode(` ${c}`, { bos: false }));
      const a = scoreContinuations(model, ctx, conts);
      const b = scoreIndependent(model, conts.map((c) => ({ context: ctx, continuation: c })));
      a.forEach((x, i) => assert.ok(Math.abs(x.logprob - b[i].logprob) <= tol * Math.max(1, Math.abs(x.logprob))));
    });

    test('partial (winogrande) and loglikelihood (lambada) items equal a hand computation', () => {
      const part = { kind: 'partial' as const, contexts: ['Sarah helped Maria so Sarah', 'Sarah helped Maria so Maria'], continuation: 'was thanked.', gold: 1 };
      const s = scoreItem(model, tok, part, ' ');
      part.contexts.forEach((c, i) => {
        const d = directLL(model, tok.encode(c), tok.encode(' was thanked.', { bos: false }));
        assert.ok(Math.abs(s.lls[i] - d.ll) <= tol * Math.max(1, Math.abs(d.ll)));
      });
      const ll = { kind: 'loglikelihood' as const, context: 'once upon a', continuation: 'time' };
      const r = scoreItem(model, tok, ll, ' ');
      const d = directLL(model, tok.encode('once upon a'), tok.encode(' time', { bos: false }));
      assert.ok(Math.abs(r.lls[0] - d.ll) <= tol * Math.max(1, Math.abs(d.ll)));
      assert.equal(r.greedy[0], d.greedy);
    });

    test('a greedy continuation is recognised as greedy', () => {
      const ctx = tok.encode('abc');
      const v = model.config.vocabSize;
      const cont: number[] = [];
      for (let i = 0; i < 4; i++) {
        const logits = model.forward(Int32Array.from([...ctx, ...cont]), { lastOnly: true });
        cont.push(argmax(logits, 0, v));
      }
      const [g] = scoreIndependent(model, [{ context: ctx, continuation: cont }]);
      assert.equal(g.greedy, true);
      const other = [...cont];
      other[2] = (other[2] + 1) % v;
      assert.equal(scoreIndependent(model, [{ context: ctx, continuation: other }])[0].greedy, false);
    });

    test('contexts longer than the model are cut on the left as lm-eval does', () => {
      const ctx = tok.encode('x'.repeat(40) + ' a long context that does not fit the sixty-four positions');
      assert.ok(ctx.length > model.config.maxPositions);
      const conts = [tok.encode(' yes', { bos: false }), tok.encode(' no way', { bos: false })];
      const s = scoreContinuations(model, ctx, conts);
      conts.forEach((c, i) => {
        const d = directLL(model, ctx, c);
        assert.ok(Math.abs(s[i].logprob - d.ll) <= tol * Math.max(1, Math.abs(d.ll)));
      });
    });

    test('a continuation longer than the model context is scored in consecutive windows', () => {
      const ctx = tok.encode('q:');
      const cont = tok.encode(` ${'a long answer that goes on and on '.repeat(3)}`, { bos: false });
      const maxPos = model.config.maxPositions;
      assert.ok(cont.length > maxPos && cont.length < 2 * maxPos);
      const full = [...ctx, ...cont];
      // Block 1: the first maxPos continuation tokens after the whole context; block 2: the rest, after the maxPos + 1 − len tokens before it.
      const s1 = ctx.length;
      const e1 = s1 + maxPos;
      const b2 = full.length - maxPos - 1;
      const d1 = directLL(model, full.slice(0, s1), full.slice(s1, e1));
      const d2 = directLL(model, full.slice(b2, e1), full.slice(e1));
      const [s] = scoreIndependent(model, [{ context: ctx, continuation: cont }]);
      assert.equal(s.tokens, cont.length);
      assert.ok(Math.abs(s.logprob - (d1.ll + d2.ll)) <= tol * Math.abs(d1.ll + d2.ll));
    });

    test('a shared-attention student scores through the replicated (V-only) KV cache', () => {
      const student = withPlan(model, makePlan('manual', [{ anchor: 0, shared: [1, 2] }]));
      const ctx = tok.encode('the student');
      const conts = [tok.encode(' is small', { bos: false }), tok.encode(' runs', { bos: false })];
      const s = scoreContinuations(student, ctx, conts);
      conts.forEach((c, i) => {
        const d = directLL(student, ctx, c);
        assert.ok(Math.abs(s[i].logprob - d.ll) <= tol * Math.max(1, Math.abs(d.ll)));
      });
    });

    test('perplexity chunks and sliding equal direct window computations; sliding with stride = ctx equals chunks', () => {
      const ids = stream(96, 3);
      const ctx = 16;
      const chunks = tokenPerplexity(model, ids, { mode: 'chunks', ctx });
      let nll = 0;
      for (let i = 0; i + ctx <= ids.length; i += ctx) nll += directWindowNll(model, ids.slice(i, i + ctx), 1);
      assert.equal(chunks.windows, 6);
      assert.equal(chunks.scored, 6 * 15);
      assert.ok(Math.abs(chunks.nll - nll) <= 1e-4 * nll);
      assert.ok(Math.abs(chunks.ppl - Math.exp(nll / 90)) <= 1e-4 * chunks.ppl);

      // HF guide loop, written out independently: windows at 0, S, 2S, ...; score the tokens past the previous end.
      const stride = 5;
      let ref = 0;
      let count = 0;
      let prevEnd = 0;
      for (let begin = 0; begin < ids.length; begin += stride) {
        const end = Math.min(begin + ctx, ids.length);
        const trg = end - prevEnd;
        const w = ids.slice(begin, end);
        const from = w.length - trg;
        ref += directWindowNll(model, w, from);
        count += w.length - Math.max(from, 1);
        prevEnd = end;
        if (end === ids.length) break;
      }
      const sl = tokenPerplexity(model, ids, { mode: 'sliding', ctx, stride });
      assert.equal(sl.scored, ids.length - 1, 'every token but the first is scored exactly once');
      assert.equal(count, ids.length - 1);
      assert.ok(Math.abs(sl.nll - ref) <= 1e-4 * ref);
      assert.equal(sl.stride, stride);

      const same = tokenPerplexity(model, ids, { mode: 'sliding', ctx, stride: ctx });
      assert.equal(same.nll, chunks.nll);
      assert.equal(same.scored, chunks.scored);
      assert.equal(same.ppl, chunks.ppl);
    });

    test('rolling log-likelihood (lm-eval loglikelihood_rolling) scores every token once with the documented windows', () => {
      const ctx = 16;
      const prefix = 1;
      for (const n of [5, 16, 17, 40, 48]) {
        const ids = stream(n, n);
        // Port of lm-eval get_rolling_token_windows(context_len=1) + make_disjoint_window.
        let ref = 0;
        let scored = 0;
        const first = Math.min(ctx, n);
        ref += directWindowNll(model, [prefix, ...ids.slice(0, first)], 1);
        scored += first;
        let predicted = first;
        while (predicted < n) {
          const pl = Math.min(n - predicted, ctx);
          const end = predicted + pl;
          const inp = ids.slice(end - ctx - 1, end - 1);
          const w = [...inp, ids[end - 1]];
          ref += directWindowNll(model, w, w.length - pl);
          scored += pl;
          predicted = end;
        }
        assert.equal(scored, n);
        const r = rollingNll(model, ids, ctx, prefix);
        assert.ok(Math.abs(r.nll - ref) <= 1e-4 * ref, `n=${n}: ${r.nll} vs ${ref}`);
        assert.equal(r.windows, Math.ceil(n / ctx));
      }
    });
  });
}

describe('metrics (lm-eval conventions)', () => {
  test('argmax breaks ties toward the first maximum; NaN wins like numpy', () => {
    assert.equal(argmaxFirst([-1, -1, -2]), 0);
    assert.equal(argmaxFirst([-3, -1, -1]), 1);
    assert.equal(argmaxFirst([-3, NaN, 0]), 1);
    assert.deepEqual(choiceMetrics([-1, -1, -2], ['a', 'b', 'c'], 1), { acc: 0, acc_norm: 0 });
    assert.deepEqual(choiceMetrics([-1, -1, -2], ['a', 'b', 'c'], 0), { acc: 1, acc_norm: 1 });
  });

  test('acc_norm divides by the character length of the choice (code points, no delimiter)', () => {
    // raw: choice 0 wins; per character: -4/2 = -2 < -6/4 = -1.5, so choice 1 wins.
    assert.deepEqual(choiceMetrics([-4, -6], ['ab', 'abcd'], 0), { acc: 1, acc_norm: 0 });
    assert.deepEqual(choiceMetrics([-4, -6], ['ab', 'abcd'], 1), { acc: 0, acc_norm: 1 });
    assert.equal(charLength('😀é'), 2); // UTF-16 length would be 3
    // '😀' is one character: -2/1 < -3/2... per char -2 vs -1.5 → choice 1.
    assert.deepEqual(choiceMetrics([-2, -3], ['😀', 'xy'], 1), { acc: 0, acc_norm: 1 });
    // Equal normalised scores tie toward the first.
    assert.deepEqual(choiceMetrics([-2, -4], ['a', 'bc'], 0), { acc: 1, acc_norm: 1 });
  });

  test('mean_stderr = sqrt(sample variance / n)', () => {
    const r = meanStderr([1, 0, 1, 1]);
    assert.equal(r.mean, 0.75);
    assert.ok(Math.abs(r.stderr - 0.25) < 1e-15);
    assert.ok(Number.isNaN(meanStderr([1]).stderr));
  });

  test('aggregate: acc, acc_norm, perplexity = exp(-mean ll), partial acc', () => {
    const task: Task = {
      name: 't', source: '-', prompt: '-', delimiter: ' ', metrics: ['acc', 'acc_norm'],
      items: [
        { kind: 'choice', context: 'c', choices: ['a', 'bbbb'], gold: 1 },
        { kind: 'choice', context: 'c', choices: ['a', 'bb'], gold: 0 },
      ],
    };
    const scores: ItemScore[] = [{ lls: [-1, -2], greedy: [false, false], tokens: 2 }, { lls: [-1, -1], greedy: [false, false], tokens: 2 }];
    const m = aggregate(task, task.items, scores);
    assert.equal(m.acc!.value, 0.5); // item 0: argmax 0 (wrong), item 1: tie → 0 (right)
    assert.equal(m.acc_norm!.value, 0.5); // per char: item 0: -1 vs -0.5 → 1 (right); item 1: -1 vs -0.5 → 1 (wrong)
  });

  test('aggregate for lambada-style and partial items', () => {
    const lam: Task = { name: 'l', source: '-', prompt: '-', delimiter: ' ', metrics: ['perplexity', 'acc'], items: [
      { kind: 'loglikelihood', context: 'a', continuation: 'b' }, { kind: 'loglikelihood', context: 'a', continuation: 'c' }] };
    const m = aggregate(lam, lam.items, [{ lls: [-1], greedy: [true], tokens: 1 }, { lls: [-3], greedy: [false], tokens: 1 }]);
    assert.ok(Math.abs(m.perplexity!.value - Math.exp(2)) < 1e-12);
    assert.equal(m.acc!.value, 0.5);
    const wg: Task = { name: 'w', source: '-', prompt: '-', delimiter: ' ', metrics: ['acc'], items: [
      { kind: 'partial', contexts: ['x', 'y'], continuation: 'z', gold: 1 }] };
    assert.equal(aggregate(wg, wg.items, [{ lls: [-2, -1], greedy: [false, false], tokens: 2 }]).acc!.value, 1);
  });

  test('--limit takes the first N items; with a seed, a reproducible sample in file order', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i);
    assert.deepEqual(selectItems(xs, 5), [0, 1, 2, 3, 4]);
    const a = selectItems(xs, 10, 42);
    assert.deepEqual(a, selectItems(xs, 10, 42));
    assert.notDeepEqual(a, selectItems(xs, 10, 43));
    assert.deepEqual(a, [...a].sort((x, y) => x - y));
    assert.equal(new Set(a).size, 10);
    assert.equal(selectItems(xs, 500).length, 100);
  });
});

describe('built-in task loaders read their full real files', () => {
  const expected: Record<string, { n: number; choices: number[] }> = {
    hellaswag: { n: 10042, choices: [4] },
    piqa: { n: 1838, choices: [2] },
    arc_easy: { n: 2376, choices: [3, 4, 5] },
    arc_challenge: { n: 1172, choices: [3, 4, 5] },
    boolq: { n: 3270, choices: [2] },
    openbookqa: { n: 500, choices: [4] },
    winogrande: { n: 1267, choices: [2] },
    lambada_openai: { n: 5153, choices: [] },
  };
  for (const name of Object.keys(BUILTIN_TASKS)) {
    test(`${name}: ${expected[name].n} items, gold labels in range`, () => {
      const t = loadBuiltinTask(name, TASK_DIR);
      assert.equal(t.name, name);
      assert.equal(t.items.length, expected[name].n);
      const golds = new Set<number>();
      for (const it of t.items) {
        if (it.kind === 'loglikelihood') {
          assert.ok(it.context.length > 0 && it.continuation.length > 0);
          continue;
        }
        const k = it.kind === 'choice' ? it.choices.length : it.contexts.length;
        assert.ok(expected[name].choices.includes(k), `${name}: ${k} options`);
        assert.ok(Number.isInteger(it.gold) && it.gold >= 0 && it.gold < k, `${name}: gold ${it.gold} of ${k}`);
        golds.add(it.gold);
      }
      if (expected[name].choices.length) assert.ok(golds.size >= 2, 'more than one gold index occurs');
    });
  }

  test('prompt formats are lm-eval\'s', () => {
    const arc = loadBuiltinTask('arc_easy', TASK_DIR).items[0];
    assert.ok(arc.kind === 'choice' && arc.context.startsWith('Question: Which statement best explains') && arc.context.endsWith('\nAnswer:'));
    assert.equal(arc.kind === 'choice' && arc.choices[0], 'Sunlight is the source of energy for nearly all ecosystems.');
    const piqa = loadBuiltinTask('piqa', TASK_DIR).items[0];
    assert.ok(piqa.kind === 'choice' && piqa.context === "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:" && piqa.gold === 0);
    const bq = loadBuiltinTask('boolq', TASK_DIR).items[0];
    assert.ok(bq.kind === 'choice' && bq.context.endsWith('\nQuestion: does ethanol take more energy make that produces?\nAnswer:'));
    assert.deepEqual(bq.kind === 'choice' && bq.choices, ['no', 'yes']);
    assert.equal(bq.kind === 'choice' && bq.gold, 0);
    const hs = loadBuiltinTask('hellaswag', TASK_DIR).items[0];
    assert.ok(hs.kind === 'choice' && hs.context === 'Roof shingle removal: A man is sitting on a roof. he' && hs.gold === 3);
    const obqa = loadBuiltinTask('openbookqa', TASK_DIR).items[1];
    assert.ok(obqa.kind === 'choice' && obqa.context === 'There is most likely going to be fog around:');
    assert.deepEqual(obqa.kind === 'choice' && obqa.choices, ['a marsh', 'a tundra', 'the plains', 'a desert']);
    const wg = loadBuiltinTask('winogrande', TASK_DIR);
    assert.match(wg.source, /checked against/);
    const lam = loadBuiltinTask('lambada', TASK_DIR).items[0];
    assert.ok(lam.kind === 'loglikelihood' && lam.continuation === 'signs' && lam.context.endsWith("I don't care about"));
  });
});

describe('malformed task files give errors naming the file and line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-eval-bad-'));
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, text);
    return f;
  };
  const expectAt = (fn: () => unknown, file: string, line: number, what: RegExp) => {
    assert.throws(fn, (e: Error) => {
      assert.ok(e.message.includes(`${file}:${line}:`), `message names ${file}:${line}: ${e.message}`);
      assert.match(e.message, what);
      return true;
    });
  };

  test('hellaswag: bad gold label, wrong line count', () => {
    const f = write('hs.txt', 'ctx a\n1\ne1\ne2\ne3\ne4\nctx b\n7\ne1\ne2\ne3\ne4\n');
    expectAt(() => loadHellaswag(dir, f), f, 8, /out of range/);
    const g = write('hs2.txt', 'ctx a\n1\ne1\ne2\n');
    expectAt(() => loadHellaswag(dir, g), g, 4, /6 lines per item/);
  });
  test('piqa: bad JSON; bad label', () => {
    const f = write('p.jsonl', '{"goal":"g","sol1":"a","sol2":"b"}\n{"goal":"g",\n');
    const l = write('p.lst', '0\n1\n');
    expectAt(() => loadPiqa(dir, f, l), f, 2, /invalid JSON/);
    const f2 = write('p2.jsonl', '{"goal":"g","sol1":"a","sol2":"b"}\n{"goal":"g","sol1":"a","sol2":"b"}\n');
    const l2 = write('p2.lst', '0\nx\n');
    expectAt(() => loadPiqa(dir, f2, l2), l2, 2, /integer label/);
  });
  test('arc: answer key not among the labels', () => {
    const row = (k: string) => JSON.stringify({ id: 'x', question: { stem: 'q', choices: [{ text: 'a', label: 'A' }, { text: 'b', label: 'B' }] }, answerKey: k });
    const f = write('arc.jsonl', `${row('A')}\n${row('A')}\n${row('C')}\n`);
    expectAt(() => loadArc(dir, 'easy', f), f, 3, /answerKey 'C'/);
  });
  test('boolq: label neither true nor false', () => {
    const f = write('b.jsonl', `${JSON.stringify({ question: 'q', passage: 'p', idx: 0, label: 'maybe' })}\n`);
    expectAt(() => loadBoolq(dir, f), f, 1, /label/);
  });
  test('openbookqa: missing field; unparsable choices', () => {
    const h = 'ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n';
    const f = write('o.tsv', `${h}1\tq\t(A) a (B) b (C) c (D) d\tq\tA\n2\tq\t(A) a\n`);
    expectAt(() => loadOpenbookqa(dir, f), f, 3, /5 tab-separated fields/);
    const g = write('o2.tsv', `${h}1\tq\t(A) a (B) b (D) d\tq\tA\n`);
    expectAt(() => loadOpenbookqa(dir, g), g, 2, /cannot parse choices/);
  });
  test('winogrande: gold out of range', () => {
    const f = write('w/w.jsonl', `${JSON.stringify({ context_options: ['a', 'b'], continuation: 'c', gold: 2 })}\n`);
    expectAt(() => loadWinogrande(dir, f), f, 1, /gold/);
  });
  test('lambada: missing continuation', () => {
    const f = write('l.jsonl', `${JSON.stringify({ context: 'a', continuation: 'b' })}\n\n${JSON.stringify({ context: 'a' })}\n`);
    expectAt(() => loadLambada(dir, f), f, 3, /continuation/);
  });
  test('task spec: a row whose gold is out of range names the data file and line', async () => {
    const d = write('s.jsonl', '{"q":"a","x":"1","y":"2","g":0}\n{"q":"b","x":"1","y":"2","g":5}\n');
    const spec = write('s.json', JSON.stringify({ name: 's', data: path.basename(d), context: '{{q}}', choices: ['{{x}}', '{{y}}'], gold: '{{g}}' }));
    await assert.rejects(loadTaskSpec(spec), (e: Error) => e.message.includes(`${d}:2:`) && /out of range/.test(e.message));
    const spec2 = write('s2.json', JSON.stringify({ name: 's', data: 's.jsonl', context: '{{q}}', choices: ['{{x}}'], gold: '{{g}}', metric: [] }));
    await assert.rejects(loadTaskSpec(spec2), (e: Error) => e.message.includes(spec2) && /'metric'/.test(e.message));
  });
});

describe('user-defined task specs', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-eval-spec-'));
  const rows = [
    { question: { stem: 'Which is red?', choices: [{ text: 'apple', label: 'A' }, { text: 'sky', label: 'B' }] }, answerKey: 'A', ok: true },
    { question: { stem: 'Which is blue?', choices: [{ text: 'apple', label: 'A' }, { text: 'sky', label: 'B' }] }, answerKey: 'B', ok: false },
  ];
  const spec = {
    name: 'colors', context: 'Question: {{question.stem}}\nAnswer:', choices: '{{question.choices.text}}',
    gold: '{{answerKey}}', goldLabels: '{{question.choices.label}}', metrics: ['acc'],
  };

  test('jsonl and json data with nested fields, array-valued choices and a label list', async () => {
    fs.writeFileSync(path.join(dir, 'd.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    fs.writeFileSync(path.join(dir, 'd.json'), JSON.stringify({ data: rows }));
    for (const data of ['d.jsonl', 'd.json']) {
      fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ ...spec, data }));
      const t = await loadTaskSpec(path.join(dir, 'spec.json'));
      assert.equal(t.items.length, 2);
      assert.deepEqual(t.items[1], { kind: 'choice', context: 'Question: Which is blue?\nAnswer:', choices: ['apple', 'sky'], gold: 1 });
      assert.deepEqual(t.metrics, ['acc']);
    }
    // Booleans as gold, literal choices, filters.
    fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify({ name: 'b', data: 'd.jsonl', context: '{{question.stem|lower}}', choices: ['no', 'yes'], gold: '{{ok}}' }));
    const b = await loadTaskSpec(path.join(dir, 'b.json'));
    assert.deepEqual(b.items[0], { kind: 'choice', context: 'which is red?', choices: ['no', 'yes'], gold: 1 });
    assert.deepEqual(b.metrics, ['acc', 'acc_norm']);
  });

  test('parquet data (written with hyparquet-writer), partial and loglikelihood types', async () => {
    const { parquetWriteFile } = await import('hyparquet-writer');
    const file = path.join(dir, 'w.parquet');
    parquetWriteFile({
      filename: file,
      columnData: [
        { name: 'sentence', data: ['The trophy does not fit the suitcase because the _ is small.', 'Tom thanked Bob because _ helped.'] },
        { name: 'option1', data: ['trophy', 'Tom'] },
        { name: 'option2', data: ['suitcase', 'Bob'] },
        { name: 'answer', data: [2n, 2n], type: 'INT64' },
      ],
    });
    fs.writeFileSync(path.join(dir, 'wg.json'), JSON.stringify({
      name: 'wg', data: 'w.parquet', type: 'partial', contexts: ['{{option1}}', '{{option2}}'], continuation: '{{sentence}}', gold: '{{answer}}',
      goldLabels: '{{labels}}',
    }));
    await assert.rejects(loadTaskSpec(path.join(dir, 'wg.json')), /labels/);
    fs.writeFileSync(path.join(dir, 'wg.json'), JSON.stringify({
      name: 'wg', data: 'w.parquet', type: 'partial', contexts: ['{{option1}}', '{{option2}}'], continuation: '{{sentence}}', gold: '{{answer}}',
    }));
    await assert.rejects(loadTaskSpec(path.join(dir, 'wg.json')), /out of range/); // 2 is not an index of 2 options
    fs.writeFileSync(path.join(dir, 'll.json'), JSON.stringify({ name: 'll', data: 'w.parquet', type: 'loglikelihood', context: '{{sentence}}', continuation: '{{option2}}' }));
    const ll = await loadTaskSpec(path.join(dir, 'll.json'));
    assert.deepEqual(ll.items[1], { kind: 'loglikelihood', context: 'Tom thanked Bob because _ helped.', continuation: 'Bob' });
    assert.deepEqual(ll.metrics, ['perplexity', 'acc']);
  });
});

describe('perplexity corpora', () => {
  test('WikiText: HF rows, lm-eval pages (62 in the test split), detokenizer, word and byte counts', () => {
    const c = loadPplCorpus(path.join(sharedDir, 'data/wikitext2/wiki.test.raw'));
    assert.equal(c.kind, 'wikitext');
    assert.equal(c.documents.length, 62);
    const raw = fs.readFileSync(path.join(sharedDir, 'data/wikitext2/wiki.test.raw'), 'utf8');
    assert.equal(wikitextRows(raw).length, 4358);
    // Pages partition the file, except the whitespace-only lines before the first heading, which lm-eval drops.
    assert.ok(raw.startsWith(' \n = Robert Boulter = '));
    assert.equal(c.documents.join('\n'), raw.slice(2));
    assert.deepEqual(wikitextRows(' = A = \n\n b c\n'), [' = A = \n', '', ' b c\n']);
    assert.deepEqual(wikitextPages(' = A = \n x\n = = B = = \n y\n = C = \n z'), [' = A = \n x\n = = B = = \n y', ' = C = \n z']);
    assert.equal(wikitextDetokenize('1 @,@ 000 people , 3 @.@ 5 km ( about ) " q "'), '1,000 people, 3.5 km (about) "q"');
  });

  test('word/byte perplexity: NLL of rolling windows over the tokens, divided by words / bytes of the original text', () => {
    const model = tinyModel('reference');
    const docs = [' hello world  again \n', 'é ok'];
    const corpus = { source: '-', kind: 'text' as const, joined: docs.join('\n\n'), documents: docs };
    const r = wordBytePerplexity(model, tok, corpus, 16);
    const nll = docs.reduce((s, d) => s + rollingNll(model, tok.encode(d, { bos: false }), 16, 1).nll, 0);
    assert.ok(Math.abs(r.nll - nll) < 1e-9 * nll);
    assert.equal(r.words, 5 + 2); // re.split(r"\s+"): ['', 'hello', 'world', 'again', ''] + ['é', 'ok']
    assert.equal(r.bytes, Buffer.byteLength(docs[0]) + 5);
    assert.ok(Math.abs(r.wordPerplexity - Math.exp(nll / 7)) < 1e-9 * r.wordPerplexity);
    assert.ok(Math.abs(r.bitsPerByte - nll / r.bytes / Math.LN2) < 1e-12);
    assert.equal(r.detokenized, false);
  });
});

describe('evaluate, table and speed', () => {
  test('two models side by side: deltas against the first, Markdown states the perplexity convention', async () => {
    const a = tinyModel('reference');
    const b = withPlan(a, makePlan('manual', [{ anchor: 0, shared: [1] }]));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-eval-ppl-'));
    const txt = path.join(dir, 't.txt');
    fs.writeFileSync(txt, 'the quick brown fox jumps over the lazy dog. '.repeat(6));
    const task: Task = { name: 'mini', source: '-', prompt: '-', delimiter: ' ', metrics: ['acc', 'acc_norm'], items: [
      { kind: 'choice', context: 'the quick', choices: ['brown', 'red'], gold: 0 },
      { kind: 'choice', context: 'lazy', choices: ['dog', 'cat', 'ox'], gold: 0 },
    ] };
    const report = await evaluate([{ name: 'A', model: a, tokenizer: tok }, { name: 'B', model: b, tokenizer: tok }], {
      tasks: [task], ppl: { path: txt, modes: ['chunks', 'sliding'], ctx: 32, stride: 8 }, speed: { contexts: [8], decodeTokens: 2 },
    });
    assert.equal(report.models.length, 2);
    assert.deepEqual(report.models[1].sharedLayers, [1]);
    const rows = tableRows(report);
    const acc = rows.find((r) => r.label === 'mini' && r.metric === 'acc')!;
    assert.equal(acc.delta[0], null);
    assert.equal(acc.delta[1], acc.values[1]!.value - acc.values[0]!.value);
    const kv = rows.find((r) => r.metric === 'KV-cache bytes / token')!;
    assert.ok(kv.values[1]!.value < kv.values[0]!.value, 'the student caches less');
    const md = markdownTable(report);
    assert.match(md, /\| t\.txt · chunks · ctx 32 \| token ppl ↓/);
    assert.match(md, /sliding · ctx 32 · stride 8/);
    assert.match(md, /Δ B/);
    // Same numbers as the parts called directly.
    const ppl = tokenPerplexity(a, tok.encode(fs.readFileSync(txt, 'utf8')), { mode: 'chunks', ctx: 32 });
    assert.equal(report.models[0].perplexity!.token[0].ppl, ppl.ppl);
    const direct = runTask(a, tok, task);
    assert.deepEqual(report.models[0].tasks[0].metrics, direct.metrics);
  });

  test('speed: points clipped to the context, KV bytes per token and weight bytes', () => {
    const m = tinyModel('reference');
    const s = measureSpeed(m, { contexts: [8, 1000], decodeTokens: 4 });
    assert.deepEqual(s.points.map((p) => p.ctx), [8, 60]);
    assert.ok(s.points.every((p) => p.prefillTokensPerSecond > 0 && p.decodeTokensPerSecond > 0));
    assert.equal(s.kvBytesPerToken, 3 * 2 * 2 * 4 * 4); // layers · (K+V) · Hkv · D · 4 bytes
    assert.equal(s.weightBytes, m.parameterCount() * 4);
  });
});

describe('echoatt eval (CLI, end to end)', () => {
  test('stories260K twice with --limit: results.md, results.json, bar chart; zero deltas', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-eval-cli-'));
    const out = path.join(dir, 'out'); // the input text lives beside the output folder, not in it
    const txt = path.join(dir, 'ppl.txt');
    fs.writeFileSync(txt, fs.readFileSync(path.join(sharedDir, 'data/wikitext2/wiki.test.raw'), 'utf8').slice(0, 6000));
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [
      '--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'eval',
      '--model', STORIES, '--model', STORIES, '--name', 'teacher', '--name', 'copy',
      '--tasks', 'hellaswag,piqa,winogrande,lambada_openai', '--limit', '4',
      '--ppl', txt, '--ppl-mode', 'chunks,sliding', '--ctx', '128', '--stride', '64',
      '--speed-ctx', '32', '--decode-tokens', '4', '--out', out,
    ], { cwd: repoRoot, timeout: 120_000 });
    assert.match(stdout, /\| hellaswag \| acc ↑ \| 4 \| 0\.2500 \|/);
    assert.match(stdout, /chunks · ctx 128/);
    assert.match(stderr, /ETA|done in/);
    const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
    assert.equal(md, stdout);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    assert.deepEqual(json.models, ['teacher', 'copy']);
    for (const r of json.rows.filter((x: { section: string }) => x.section === 'task' || x.section === 'perplexity')) {
      assert.equal(r.values[0].value, r.values[1].value, `${r.label} ${r.metric}: same model, same number`);
      assert.equal(r.delta[1], 0);
    }
    assert.equal(json.report.settings.limitSelection, 'first');
    assert.ok(fs.statSync(path.join(out, 'accuracy.png')).size > 1000);
    assert.match(fs.readFileSync(path.join(out, 'accuracy.svg'), 'utf8'), /<svg/);
  });
});

test('speedRatio: per-round ratios against the baseline, median with min and max (rounds ran back to back)', () => {
  const s: SpeedComparison = {
    settings: { prefill: 8, decodeFrom: 4, decodeTokens: 4, rounds: 4, backend: 'native', threads: 1 },
    models: [
      { name: 'teacher', prefillTokensPerSecond: 0, decodeTokensPerSecond: 0, rounds: { prefillMs: [10, 20, 10, 30], decodeMs: [4, 4, 8, 4] } },
      { name: 'student', prefillTokensPerSecond: 0, decodeTokensPerSecond: 0, rounds: { prefillMs: [5, 20, 8, 10], decodeMs: [4, 2, 8, 5] } },
    ],
  };
  const r = speedRatio(s, 1);
  // prefill ratios 2, 1, 1.25, 3 → sorted 1, 1.25, 2, 3: median 1.625; decode ratios 1, 2, 1, 0.8 → median 1
  assert.deepEqual(r.prefill, { median: 1.625, min: 1, max: 3 });
  assert.deepEqual(r.decode, { median: 1, min: 0.8, max: 2 });
  assert.deepEqual(speedRatio(s, 0).decode, { median: 1, min: 1, max: 1 });
});

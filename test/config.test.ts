import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configFromJson, configToHfJson, llama2cConfig, parseRawConfig, resolveConfig } from '../src/models/config.js';
import { expectedTensors } from '../src/models/tensor-spec.js';
import { ConfigError, UnsupportedError } from '../src/errors.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '../shared');
const readJson = (p: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(shared, p), 'utf8')) as Record<string, unknown>;
const base = (): Record<string, unknown> => readJson('reference/hf-llama-tiny-gqa/config.json');

test('hf-llama-tiny-gqa config resolves with derived fields, frozen', () => {
  const cfg = configFromJson(base(), 'config.json');
  assert.equal(cfg.architecture, 'LlamaForCausalLM');
  assert.deepEqual(
    [cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.numKvHeads, cfg.headDim, cfg.intermediateSize, cfg.vocabSize],
    [64, 4, 8, 2, 8, 96, 300],
  );
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.ropeStyle, 'half');
  assert.equal(cfg.ropeScaling, null);
  assert.deepEqual(cfg.eosTokenIds, [2]);
  assert.equal(cfg.bosTokenId, 1);
  assert.equal(cfg.rmsNormEps, 1e-5);
  assert.ok(Object.isFrozen(cfg));
  assert.throws(() => {
    (cfg as { hiddenSize: number }).hiddenSize = 1;
  }, TypeError);
});

test('smollm2 config: unknown keys kept in extra and written back', () => {
  const json = readJson('tokenizers/smollm2-49k/config.json');
  const cfg = configFromJson(json, 'smollm2/config.json');
  assert.equal(cfg.headDim, 64);
  assert.equal(cfg.numKvHeads, 3);
  assert.equal(cfg.tieWordEmbeddings, true);
  assert.equal(cfg.ropeTheta, 100000);
  assert.equal(cfg.torchDtype, 'bfloat16');
  assert.deepEqual(cfg.extra['transformers.js_config'], json['transformers.js_config']);
  const back = configToHfJson(cfg);
  const again = configFromJson(JSON.parse(JSON.stringify(back)), 'roundtrip.json');
  assert.deepEqual(again, cfg);
  assert.equal(back.initializer_range, json.initializer_range);
  // The sharing plan is parsed and validated once, here, and written back in its normal form.
  const withSharing = configFromJson({ ...json, echoatt_sharing: { groups: [{ anchor: 0, shared: [1] }] } }, 'x');
  assert.deepEqual(configToHfJson(withSharing).echoatt_sharing, { format: 'echoatt-plan', version: 1, strategy: 'manual', groups: [{ anchor: 0, shared: [1] }] });
  assert.deepEqual(withSharing.attention[1], { kind: 'echo', anchor: 0, heads: null });
  assert.throws(() => configFromJson({ ...json, echoatt_sharing: { groups: [[0, 1]] } }, 'x'), /x \(echoatt_sharing\): groups\[0\] must be an object/);
});

test('rope scaling llama3 / linear parsed; head_dim field; eos list; Qwen2 gets q/k/v biases', () => {
  const l3 = configFromJson({
    ...base(),
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    eos_token_id: [128001, 128009],
    head_dim: 16,
  }, 'l3.json');
  assert.deepEqual(l3.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  assert.deepEqual(l3.eosTokenIds, [128001, 128009]);
  assert.equal(l3.headDim, 16);
  assert.deepEqual(configFromJson({ ...base(), rope_scaling: { type: 'linear', factor: 2 } }, 'x').ropeScaling, { type: 'linear', factor: 2 });
  const qwen = configFromJson({ ...base(), architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', sliding_window: 4096, use_sliding_window: false }, 'q.json');
  assert.equal(qwen.attentionBias, true);
  assert.equal(qwen.slidingWindow, null);
  assert.ok(expectedTensors(qwen).some((t) => t.name === 'model.layers.3.self_attn.k_proj.bias' && t.shape[0] === 16));
  const mistral = configFromJson({ ...base(), architectures: ['MistralForCausalLM'], sliding_window: 4096 }, 'm.json');
  assert.equal(mistral.slidingWindow, 4096);
  const raw = parseRawConfig({ ...base(), torch_dtype: undefined, dtype: 'bfloat16' }, 'x');
  assert.equal(resolveConfig(raw, 'x').torchDtype, 'bfloat16');
});

test('unsupported values → UnsupportedError naming file, field and value', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ architectures: ['GPT2LMHeadModel'] }, /architectures.*GPT2LMHeadModel/],
    [{ hidden_act: 'gelu' }, /hidden_act = 'gelu'/],
    [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling.*'yarn'/],
    [{ rope_scaling: { type: 'dynamic', factor: 2 } }, /'dynamic'/],
    [{ num_key_value_heads: 3 }, /num_key_value_heads = 3/],
    [{ hidden_size: 60 }, /hidden_size = 60/],
    [{ partial_rotary_factor: 0.5 }, /partial_rotary_factor/],
    [{ mlp_bias: true }, /mlp_bias/],
    [{ attention_bias: true }, /attention_bias/],
    [{ architectures: ['Qwen2ForCausalLM'], use_sliding_window: true }, /use_sliding_window/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(() => configFromJson({ ...base(), ...patch }, 'bad/config.json'), (e: unknown) => {
      return e instanceof UnsupportedError && re.test(e.message) && e.message.startsWith('bad/config.json');
    }, JSON.stringify(patch));
  }
});

test('type errors → ConfigError naming file and field', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ hidden_size: '64' }, 'hidden_size'],
    [{ num_hidden_layers: 2.5 }, 'num_hidden_layers'],
    [{ vocab_size: undefined }, 'vocab_size'],
    [{ tie_word_embeddings: 'no' }, 'tie_word_embeddings'],
    [{ rms_norm_eps: -1 }, 'rms_norm_eps'],
    [{ eos_token_id: ['x'] }, 'eos_token_id'],
    [{ architectures: 'LlamaForCausalLM' }, 'architectures'],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'rope_scaling.low_freq_factor'],
    [{ num_hidden_layers: 1e9 }, 'num_hidden_layers'],
    [{ hidden_size: 1e9 }, 'hidden_size'],
    [{ vocab_size: 2 ** 40 }, 'vocab_size'],
    [{ num_key_value_heads: 1e7 }, 'num_key_value_heads'],
  ];
  for (const [patch, field] of cases) {
    assert.throws(() => configFromJson({ ...base(), ...patch }, 'c.json'), (e: unknown) => e instanceof ConfigError && e.field === field && e.message.includes('c.json'), field);
  }
  assert.throws(() => parseRawConfig([1], 'c.json'), ConfigError);
});

test('llama2cConfig matches run.c constants', () => {
  const cfg = llama2cConfig({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: -512, seqLen: 512 });
  assert.equal(cfg.ropeStyle, 'interleaved');
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.vocabSize, 512);
  assert.deepEqual([cfg.bosTokenId, cfg.eosTokenIds, cfg.rmsNormEps, cfg.ropeTheta, cfg.headDim], [1, [2], 1e-5, 10000, 8]);
  assert.equal(expectedTensors(cfg).at(-1)!.name, 'lm_head.weight');
});

/**
 * The tensor names and shapes a Llama-family checkpoint must have, in Hugging Face naming and (out, in) layout.
 * Shared by the safetensors and llama2.c loaders so both are checked against one list.
 */
import type { LlamaConfig } from './config.js';
import { anchorMap, planFromConfig } from './sharing-plan.js';
import { headSharedTensorShapes } from './head-map.js';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/**
 * Expected tensors for `cfg`: q/k/v biases when `attentionBias`, `lm_head.weight` only when untied.
 *
 * @example
 * expectedTensors(cfg).find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')?.shape; // [kvHeads*headDim, hidden]
 */
export function expectedTensors(cfg: Readonly<LlamaConfig>): ExpectedTensor[] {
  // A shared-attention student (plan in config.json) has no q/k projections in its shared layers.
  const plan = planFromConfig(cfg);
  const anchorOf = plan ? anchorMap(plan, cfg.numLayers) : undefined;
  const d = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const ff = cfg.intermediateSize;
  const out: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [cfg.vocabSize, d] }];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const shared = anchorOf !== undefined && anchorOf[i] >= 0;
    out.push({ name: `${p}input_layernorm.weight`, shape: [d] });
    if (!shared) {
      out.push({ name: `${p}self_attn.q_proj.weight`, shape: [q, d] }, { name: `${p}self_attn.k_proj.weight`, shape: [kv, d] });
    }
    out.push({ name: `${p}self_attn.v_proj.weight`, shape: [kv, d] });
    if (cfg.attentionBias) {
      if (!shared) out.push({ name: `${p}self_attn.q_proj.bias`, shape: [q] }, { name: `${p}self_attn.k_proj.bias`, shape: [kv] });
      out.push({ name: `${p}self_attn.v_proj.bias`, shape: [kv] });
    }
    out.push(
      { name: `${p}self_attn.o_proj.weight`, shape: [d, q] },
      { name: `${p}post_attention_layernorm.weight`, shape: [d] },
      { name: `${p}mlp.gate_proj.weight`, shape: [ff, d] },
      { name: `${p}mlp.up_proj.weight`, shape: [ff, d] },
      { name: `${p}mlp.down_proj.weight`, shape: [d, ff] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [d] });
  if (!cfg.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [cfg.vocabSize, d] });
  return headSharedTensorShapes(cfg, out); // head-wise weight sharing stores only each layer's own heads
}

/** Buffers some exporters save that carry no weights (recomputed from the config), ignored when present. */
export function isIgnorableTensor(name: string): boolean {
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name);
}

/**
 * Compare a tensor set with {@link expectedTensors}; returns every problem, plus notes on what was tolerated.
 * With `strict` false, unexpected tensors become notes instead of problems.
 */
export function checkTensorSet(
  cfg: Readonly<LlamaConfig>,
  actual: ReadonlyMap<string, { shape: readonly number[] }>,
  strict = true,
): { problems: string[]; notes: string[]; ignored: string[] } {
  const problems: string[] = [];
  const notes: string[] = [];
  const ignored: string[] = [];
  const expected = expectedTensors(cfg);
  const names = new Set(expected.map((e) => e.name));
  for (const e of expected) {
    const a = actual.get(e.name);
    if (!a) problems.push(`missing tensor '${e.name}' (expected shape [${e.shape.join(', ')}])`);
    else if (a.shape.length !== e.shape.length || a.shape.some((v, i) => v !== e.shape[i])) {
      problems.push(`tensor '${e.name}' has shape [${a.shape.join(', ')}], expected [${e.shape.join(', ')}]`);
    }
  }
  for (const name of actual.keys()) {
    if (names.has(name)) continue;
    if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) {
      notes.push(`ignored 'lm_head.weight': the config ties word embeddings, so model.embed_tokens.weight is used`);
      ignored.push(name);
    } else if (isIgnorableTensor(name)) {
      ignored.push(name);
    } else if (strict) {
      problems.push(`unexpected tensor '${name}'`);
    } else {
      notes.push(`ignored unexpected tensor '${name}'`);
      ignored.push(name);
    }
  }
  return { problems, notes, ignored };
}

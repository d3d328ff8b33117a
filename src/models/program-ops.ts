/**
 * {@link DecoderOps} that write a step program instead of computing: tracing the one decoder (`runDecoder`) once for
 * a single token through a batch-1 {@link KVCache} yields every kernel call of a decode step, for every layer kind
 * (own, echo with or without a head map, head-shared, mixed). The backend then runs a whole step in one call.
 * The instructions mirror `InferenceOps` call for call (same kernels, same operands, same order), so the logits are
 * identical to `LlamaModel.forward`'s; tests hold them equal on every backend.
 *
 * @example
 * ```ts
 * const step = compileDecodeStep(model, cache);
 * const logits = step.run(tokenId); // (V,), valid until the next run; advances the cache
 * ```
 */
import type { LlamaConfig } from './config.js';
import type { KVCache } from './kvcache.js';
import type { InferenceModel } from './inference-ops.js';
import type { BiasKey, DecoderOps, MatrixKey } from './decoder.js';
import type { Run } from './attention-kinds.js';
import type { LayerKey, NormKey } from './tensor-spec.js';
import { runDecoder } from './decoder.js';
import { layerRope, layerTensor, normShape, outputBlocks, projectionBlocks, softcapLogits, type RunBlock } from './layer-compute.js';
import { NONE, ProgramBuilder, type Ref, type StepRunner } from '../backend/program.js';
import { requireF32, type Weight } from '../tensor/weight.js';
import { ShapeError } from '../errors.js';

const DTYPE = { f32: 0, f16: 1, bf16: 2 } as const;
const dtypeOf = (w: Weight): number => (w instanceof Float32Array ? DTYPE.f32 : DTYPE[w.dtype]);

class ProgramOps implements DecoderOps<Ref> {
  private readonly kvStride: number;
  private readonly probsSize: number;
  /** The layer being traced (set by its first op), for instruction labels. */
  private layer = 0;

  constructor(private readonly m: InferenceModel, private readonly cache: KVCache, readonly b: ProgramBuilder) {
    const c = m.config;
    this.kvStride = cache.batchStride;
    this.probsSize = c.numHeads * cache.capacity; // (H, s) for any s ≤ capacity
  }

  private get c(): Readonly<LlamaConfig> {
    return this.m.config;
  }

  private w(l: number, key: LayerKey): Weight {
    return layerTensor<Weight>(this.c, this.m.params.layers, l, key, 'forward');
  }

  /** `y = x · Wᵀ (+ bias)` as `nn/layers.ts linear` computes one row. */
  linearWeight(x: Ref, w: Weight, bias: Float32Array | undefined, inDim: number, outDim: number, y: Ref = this.b.scratch(outDim)): Ref {
    const b = this.b;
    if (w instanceof Float32Array) b.emit('matvec', b.ref(w), x, y, outDim, inDim, 0);
    else b.emit('matmulHalf', x, b.ref(w.bits), dtypeOf(w), y, outDim, inDim);
    if (bias) b.emit('add', y, b.ref(bias), y, outDim);
    return y;
  }

  embed(): Ref {
    const { hiddenSize: dim } = this.c;
    const table = this.m.params.embed;
    const x = this.b.scratch(dim);
    this.b.emit('embed', this.b.ref(table instanceof Float32Array ? table : table.bits), dtypeOf(table), x, dim);
    return x;
  }

  scale(x: Ref, alpha: number): Ref {
    this.b.emit('scale', x, x, this.c.hiddenSize, alpha);
    return x;
  }

  /** Hidden-size norms write a fresh buffer; per-head q/k norms run in place. */
  norm(x: Ref, l: number, key: NormKey): Ref {
    this.layer = l;
    this.b.label = `layer ${l} ${key}`;
    const head = key === 'qNorm' || key === 'kNorm';
    return this.rmsnorm(x, this.w(l, key) as Float32Array, key, head ? x : undefined);
  }

  /** RMSNorm of one token (`key` says its rows and width); also the final norm. */
  rmsnorm(x: Ref, w: Float32Array, key: NormKey, out: Ref = this.b.scratch(this.c.hiddenSize)): Ref {
    const { rows, dim } = normShape(this.c, key, 1);
    this.b.emit('rmsnorm', x, this.b.ref(w), out, rows, dim, this.c.rmsNormEps, this.c.normOffset);
    return out;
  }

  linear(x: Ref, l: number, key: MatrixKey, bias: BiasKey | null, inDim: number, outDim: number): Ref {
    this.b.label = `layer ${l} ${key}`;
    return this.linearWeight(x, this.w(l, key), bias ? this.m.params.layers[l][bias] : undefined, inDim, outDim);
  }

  /** As `linearRuns` for one row: full-width runs by accumulating matvec, the rest by GEMM with beta 1. */
  private runs(x: Ref, blocks: readonly RunBlock<Weight>[], xCols: number, outDim: number): Ref {
    const b = this.b;
    const y = b.scratch(outDim);
    b.emit('zero', y, outDim);
    for (const r of blocks) {
      const w = requireF32(r.w, 'head-shared model');
      const yr = { array: y.array, offset: y.offset + r.yOff };
      if (r.xOff === 0 && r.k === xCols && r.ldw === r.k) b.emit('matvec', b.ref(w, r.wOff), x, yr, r.n, r.k, 1);
      else b.emit('gemvAdd', { array: x.array, offset: x.offset + r.xOff }, b.ref(w, r.wOff), yr, r.n, r.k, xCols, r.ldw, outDim);
      if (r.bias) b.emit('add', yr, b.ref(r.bias as Float32Array, r.bOff), yr, r.n);
    }
    return y;
  }

  projectRuns(x: Ref, runs: readonly Run[], key: 'wq' | 'wk' | 'wv', bias: BiasKey | null, heads: number): Ref {
    this.b.label = `layer ${this.layer} ${key}`;
    const blocks = projectionBlocks<Weight>(this.c, this.m.params.layers, runs, key, bias, 'forward');
    return this.runs(x, blocks, this.c.hiddenSize, heads * this.c.headDim);
  }

  outRuns(att: Ref, runs: readonly Run[]): Ref {
    const { hiddenSize: dim, numHeads: H, headDim: D } = this.c;
    this.b.label = `layer ${this.layer} wo`;
    return this.runs(att, outputBlocks<Weight>(this.c, this.m.params.layers, runs, 'forward'), H * D, dim);
  }

  rope(x: Ref, l: number, heads: number): Ref {
    const rope = layerRope(this.c, this.m, l);
    this.b.emit('rope', x, heads, this.c.headDim, this.c.ropeStyle === 'half' ? 1 : 0, this.b.ref(rope.cos), this.b.ref(rope.sin));
    return x;
  }

  private store(src: Ref, cache: Float32Array | null, l: number, what: string): Float32Array {
    if (!cache) throw new ShapeError('decode step', `layer ${l} has no ${what} cache`);
    this.b.emit('store', src, this.b.ref(cache), this.c.numKvHeads * this.c.headDim);
    return cache;
  }

  attend(l: number, q: Ref, k: Ref, v: Ref, keepProbs: boolean): { out: Ref; probs: Ref | null } {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.c;
    this.b.label = `layer ${l} attention`;
    const kc = this.store(k, this.cache.k[l], l, 'K');
    const vc = this.store(v, this.cache.v[l], l, 'V');
    const out = this.b.scratch(H * D);
    const probs = keepProbs ? this.b.scratch(this.probsSize) : NONE;
    this.b.emit('attend', q, this.b.ref(kc), this.b.ref(vc), out, probs, H, Hkv, D, this.c.attnScale, this.kvStride, this.c.layerWindows[l]);
    return { out, probs: keepProbs ? probs : null };
  }

  echo(l: number, probs: Ref, v: Ref, heads: Int32Array | null): Ref {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.c;
    this.b.label = `layer ${l} echo`;
    const vc = this.store(v, this.cache.v[l], l, 'V');
    const out = this.b.scratch(H * D);
    const map = heads ? this.b.ref(heads) : NONE;
    const scratch = heads ? this.b.scratch(this.probsSize) : NONE;
    this.b.emit('probsV', probs, this.b.ref(vc), out, map, scratch, H, Hkv, D, this.kvStride);
    return out;
  }

  add(x: Ref, y: Ref): Ref {
    this.b.emit('add', x, y, x, this.c.hiddenSize);
    return x;
  }

  gatedAct(gate: Ref, up: Ref): Ref {
    this.b.emit(this.c.hiddenAct === 'silu' ? 'siluMul' : 'geluMul', gate, up, gate, this.c.intermediateSize);
    return gate;
  }

  keep(): Ref {
    throw new ShapeError('decode step', 'a compiled decode step keeps no intermediate activations');
  }
}

export interface DecodeStep {
  /** Append `token` at `cache.length`, advance the cache, and return the logits `(V)` (overwritten by the next run). */
  run(token: number): Float32Array;
  /** Turn per-instruction timing on or off; returns the time (ns) spent in each instruction since the last call. */
  profile(on: boolean): { label: string; ns: number }[];
}

/**
 * Compile one decode step of `model` through `cache` (batch 1): the whole step then runs in one backend call.
 * The step is tied to this cache's buffers; positions up to its capacity (and the model's RoPE table) may run.
 */
export function compileDecodeStep(model: InferenceModel, cache: KVCache): DecodeStep {
  if (cache.batch !== 1) throw new ShapeError('compileDecodeStep', `a decode step runs one sequence; the cache holds ${cache.batch}`);
  const c = model.config;
  const b = new ProgramBuilder();
  const ops = new ProgramOps(model, cache, b);
  const { x } = runDecoder(c, ops, new Int32Array(1));
  const logits = new Float32Array(c.vocabSize);
  b.label = 'head';
  ops.linearWeight(ops.rmsnorm(x, model.params.norm, 'inputNorm'), model.params.lmHead, undefined, c.hiddenSize, c.vocabSize, b.ref(logits));
  const program = b.finish({ maxPos: Math.min(cache.capacity, model.rope.maxPos), vocab: c.vocabSize });
  const runner: StepRunner = model.backend.stepProgram(program);
  return {
    profile: (on) => Array.from(runner.profile(on), (ns, i) => ({ label: program.labels?.[i] ?? String(i), ns })),
    run(token: number): Float32Array {
      runner(token, cache.length);
      cache.advance(1);
      return softcapLogits(logits, c.finalLogitSoftcap);
    },
  };
}

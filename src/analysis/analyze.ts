/**
 * The analysis entry point: which layers attend alike, how much each layer matters, and sharing plans.
 *
 * Runs the model over calibration sequences one at a time, accumulates layer-to-layer attention similarity
 * (cosine and Jensen–Shannon, per head and head-averaged; see `similarity.ts` for definitions and the memory bound),
 * measures each layer's criticality (loss rise when it reuses its most similar earlier layer, see `criticality.ts`)
 * and proposes one plan per strategy (`echoatt`, `span`, `budget`, see `strategies.ts`).
 *
 * @example
 * ```ts
 * import { loadModel } from '../models/load.js';
 * import { analyze } from './analyze.js';
 * import { writeReport } from './report.js';
 *
 * const { model, tokenizer } = loadModel('../shared/models/stories260K/stories260K.bin');
 * const result = await analyze(model, tokenizer, { seqs: 16, seqLen: 256, threshold: 0.6, budget: 0.25 });
 * console.log(result.plans.echoatt.plan.groups); // e.g. [{ anchor: 2, shared: [3] }]
 * await writeReport(result, 'out/analysis'); // similarity.json, plan-*.json, heatmaps, report.md
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OptionError } from '../errors.js';
import { calibrationSequences, defaultCalibrationPath, type CalibrationData } from './calibration.js';
import { resolveCorpusSource } from '../io/corpus.js';
import { SimilarityAccumulator, RunningStat, type SimilarityStats } from './similarity.js';
import { layerCriticality, mostSimilarEarlier, sequenceLoss, type CriticalityResult } from './criticality.js';
import { allStrategies, DEFAULT_THRESHOLD, type BudgetResource, type StrategyName, type StrategyOutcome } from './strategies.js';
import { SHARED_DIR } from '../paths.js';

export const DEFAULT_SEQS = 32;
export const DEFAULT_SEQ_LEN = 256;
export const DEFAULT_BUDGET = 0.25;
export const DEFAULT_CRITICALITY_SEQS = 8;

export interface AnalysisProgress {
  phase: 'similarity' | 'criticality';
  /** Forward passes done / planned over the whole analysis. */
  done: number;
  total: number;
  /** Tokens processed so far (all phases). */
  tokens: number;
}

export interface AnalyzeOptions {
  /**
   * Calibration data: a path (text file, folder of .txt, .jsonl, .parquet) or ready token sequences (each of the same
   * length). Default: the Gutenberg books of `../shared/data/corpus/gutenberg`.
   */
  data?: string | { sequences: readonly Int32Array[]; description?: string };
  /** jsonl field / parquet column (default `text`). */
  field?: string;
  /** Number of calibration sequences N (default 32). */
  seqs?: number;
  /** Tokens per sequence T, BOS included (default 256, at most the model's max positions). */
  seqLen?: number;
  /** Similarity threshold of the `echoatt` and `span` strategies (default 0.5). */
  threshold?: number;
  /** Share exactly k layers with `echoatt` (instead of the threshold). */
  k?: number;
  /** Span length for `span` (instead of the threshold). */
  spanLength?: number;
  /** Fraction of `budgetResource` the `budget` plan removes (default 0.25). */
  budget?: number;
  /** Default `flops`. */
  budgetResource?: BudgetResource;
  /** Sequences used to measure criticality (default min(N, 8)); 0 skips it (`budget` then ranks by 1 − cosine). */
  criticalitySeqs?: number;
  /** Map-memory budget of the similarity pass, bytes (default 512 MiB). */
  maxMapBytes?: number;
  /** Accumulate the (L·H)×(L·H) head-pair cosine (default true). */
  headPairs?: boolean;
  /** Name recorded in the outputs (default: the config's model type). */
  modelName?: string;
  onProgress?: (p: AnalysisProgress) => void;
}

export interface AnalysisResult {
  model: {
    name: string;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    hiddenSize: number;
    parameters: number;
  };
  data: {
    description: string;
    sequences: number;
    seqLen: number;
    tokens: number;
    /** Set when the data ran out before N sequences. */
    requestedSeqs?: number;
    documentsRead?: number;
  };
  settings: {
    threshold?: number;
    k?: number;
    spanLength?: number;
    budget: number;
    budgetResource: BudgetResource;
    criticalitySeqs: number;
    maxMapBytes?: number;
    backend: string;
    threads: number;
  };
  similarity: SimilarityStats;
  /** Teacher mean next-token cross-entropy (nats/token) across sequences, and its spread. */
  teacherLoss: { mean: number; std: number };
  criticality: CriticalityResult | null;
  plans: Record<StrategyName, StrategyOutcome>;
  timing: {
    similarityMs: number;
    criticalityMs: number;
    totalMs: number;
    /** Calibration tokens per second through the similarity phase (forward pass + statistics). */
    similarityTokensPerSecond: number;
  };
}


/** Resolve the calibration sequences of {@link AnalyzeOptions.data}. */
export async function loadCalibration(
  tokenizer: Tokenizer, opts: Pick<AnalyzeOptions, 'data' | 'field' | 'seqs'> & { seqLen: number },
): Promise<Pick<CalibrationData, 'sequences' | 'description' | 'requestedSeqs'> & { documentsRead?: number }> {
  const seqs = opts.seqs ?? DEFAULT_SEQS;
  if (typeof opts.data === 'object') {
    const list = opts.data.sequences.slice(0, seqs);
    if (list.length === 0) throw new OptionError('data', 'no sequences given');
    const T = list[0].length;
    if (!list.every((s) => s.length === T)) throw new OptionError('data', 'all sequences must have the same length');
    return { sequences: [...list], description: opts.data.description ?? `${list.length} given sequences` };
  }
  const p = opts.data ?? defaultCalibrationPath(SHARED_DIR);
  const source = resolveCorpusSource(p, { field: opts.field });
  return calibrationSequences(tokenizer, source, { seqs, seqLen: opts.seqLen });
}

/**
 * Analyse `model` on calibration text: similarity statistics, criticality and plans. Pure computation (nothing is
 * written; see `writeReport`). Sequences are processed one at a time, so memory does not grow with N.
 */
export async function analyze(model: LlamaModel, tokenizer: Tokenizer, opts: AnalyzeOptions = {}): Promise<AnalysisResult> {
  const t0 = performance.now();
  const cfg = model.config;
  const L = cfg.numLayers;
  if (opts.seqs !== undefined && !(Number.isInteger(opts.seqs) && opts.seqs >= 1)) throw new OptionError('--seqs', `expected an integer >= 1, got ${opts.seqs}`);
  let seqLen = opts.seqLen ?? Math.min(DEFAULT_SEQ_LEN, cfg.maxPositions);
  if (!(Number.isInteger(seqLen) && seqLen >= 2)) throw new OptionError('--seq-len', `expected an integer >= 2, got ${seqLen}`);
  if (seqLen > cfg.maxPositions) throw new OptionError('--seq-len', `${seqLen} exceeds the model's max_position_embeddings ${cfg.maxPositions}`);
  const budget = opts.budget ?? DEFAULT_BUDGET;
  if (!(budget >= 0 && budget <= 1)) throw new OptionError('--budget', `expected a fraction in [0, 1], got ${budget}`);
  if (opts.threshold !== undefined && !Number.isFinite(opts.threshold)) throw new OptionError('--threshold', `expected a number, got ${opts.threshold}`);
  const cal = await loadCalibration(tokenizer, { ...opts, seqLen });
  const sequences = cal.sequences;
  seqLen = sequences[0].length;
  if (seqLen > cfg.maxPositions) throw new OptionError('data', `sequences of ${seqLen} tokens exceed max_position_embeddings ${cfg.maxPositions}`);
  const N = sequences.length;
  const critSeqs = Math.min(N, opts.criticalitySeqs ?? DEFAULT_CRITICALITY_SEQS);
  if (!(Number.isInteger(critSeqs) && critSeqs >= 0)) throw new OptionError('--criticality-seqs', `expected an integer >= 0, got ${opts.criticalitySeqs}`);

  const acc = new SimilarityAccumulator(L, cfg.numHeads, seqLen, { maxMapBytes: opts.maxMapBytes, headPairs: opts.headPairs, backend: model.backend });
  const critLayers = Math.max(0, L - 1);
  const total = N * acc.blocks.length + (critSeqs > 0 ? critSeqs * critLayers : 0);
  let done = 0;
  let tokens = 0;
  const tick = (phase: AnalysisProgress['phase']) => {
    done++;
    tokens += seqLen;
    opts.onProgress?.({ phase, done, total, tokens });
  };
  opts.onProgress?.({ phase: 'similarity', done, total, tokens });

  // Phase 1: similarity (+ teacher loss from the same forward pass).
  const ts = performance.now();
  const lossStat = new RunningStat(1);
  const losses: number[] = [];
  for (const ids of sequences) {
    const logits = acc.addSequence(model, ids, () => tick('similarity'));
    const loss = sequenceLoss(model.backend, logits, ids, cfg.vocabSize);
    losses.push(loss);
    lossStat.add([loss]);
    // Let the event loop breathe (progress output, signals).
    await new Promise((r) => setImmediate(r));
  }
  const similarityMs = performance.now() - ts;
  const similarity = acc.result();

  // Phase 2: criticality.
  const tc = performance.now();
  let criticality: CriticalityResult | null = null;
  if (critSeqs > 0 && L > 1) {
    const sub = sequences.slice(0, critSeqs);
    const base = losses.slice(0, critSeqs).reduce((a, b) => a + b, 0) / critSeqs;
    criticality = layerCriticality(model, sub, similarity.cosine, { baseLoss: base, onSequence: () => tick('criticality') });
  }
  const criticalityMs = performance.now() - tc;

  // Phase 3: plans.
  const anchors = criticality ? criticality.layers.map((c) => c.anchor) : mostSimilarEarlier(similarity.cosine);
  const plans = allStrategies(
    {
      config: cfg,
      seqLen,
      similarity: similarity.cosine.mean,
      ...(criticality ? { criticality: criticality.layers.map((c) => c.delta), criticalAnchor: anchors } : {}),
    },
    {
      echoatt: { threshold: opts.threshold, k: opts.k },
      span: { threshold: opts.threshold, length: opts.spanLength },
      budget: { fraction: budget, resource: opts.budgetResource },
    },
  );

  return {
    model: {
      name: opts.modelName ?? cfg.modelType,
      numLayers: L,
      numHeads: cfg.numHeads,
      numKvHeads: cfg.numKvHeads,
      headDim: cfg.headDim,
      hiddenSize: cfg.hiddenSize,
      parameters: model.parameterCount(),
    },
    data: {
      description: cal.description,
      sequences: N,
      seqLen,
      tokens: N * seqLen,
      ...(cal.requestedSeqs !== undefined ? { requestedSeqs: cal.requestedSeqs } : {}),
      ...(cal.documentsRead !== undefined ? { documentsRead: cal.documentsRead } : {}),
    },
    settings: {
      ...(opts.threshold !== undefined || (opts.k === undefined && opts.spanLength === undefined) ? { threshold: opts.threshold ?? DEFAULT_THRESHOLD } : {}),
      ...(opts.k !== undefined ? { k: opts.k } : {}),
      ...(opts.spanLength !== undefined ? { spanLength: opts.spanLength } : {}),
      budget,
      budgetResource: opts.budgetResource ?? 'flops',
      criticalitySeqs: critSeqs,
      ...(opts.maxMapBytes !== undefined ? { maxMapBytes: opts.maxMapBytes } : {}),
      backend: model.backend.name,
      threads: model.backend.threads,
    },
    similarity,
    teacherLoss: { mean: lossStat.mean[0], std: lossStat.std()[0] },
    criticality,
    plans,
    timing: {
      similarityMs,
      criticalityMs,
      totalMs: performance.now() - t0,
      similarityTokensPerSecond: (N * seqLen) / (similarityMs / 1000),
    },
  };
}

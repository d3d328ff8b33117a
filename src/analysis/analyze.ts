/**
 * The analysis entry point: which layers attend alike, how much each layer matters, and sharing plans.
 *
 * Runs the model over calibration sequences one at a time, accumulates layer-to-layer attention similarity
 * (cosine and Jensen–Shannon, per head and head-averaged, and head pairs; see `similarity.ts` for definitions and the
 * memory bound), measures each layer's criticality (loss rise when it reuses its most similar earlier layer, see
 * `criticality.ts`), proposes one plan per heuristic strategy (`echoatt`, `span`, `budget`, see `strategies.ts`) and
 * searches for the plan with the lowest measured loss under the budget (`search`, see `search.ts`; head-aligned by
 * default). Calibration text defaults to the teacher's own samples (in-domain for any model).
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
import type { TextEncoding } from '../tokenizer/lines.js';
import { OptionError } from '../errors.js';
import { calibrationSequences, type CalibrationData } from '../tokenizer/windows.js';
import { resolveCorpusSource } from '../io/corpus.js';
import { SimilarityAccumulator, RunningStat, type SimilarityStats } from './similarity.js';
import { layerCriticality, mostSimilarEarlier, sequenceLoss, type CriticalityResult } from './criticality.js';
import { allStrategies, budgetFraction, DEFAULT_THRESHOLD, STRATEGIES, type BudgetResource, type HeuristicName, type StrategyName, type StrategyOutcome } from './strategies.js';
import { searchPlans, type AlignMode, type SearchResult } from './search.js';
import { sampleSequences } from '../models/generate.js';
import { sharingCost } from '../sharing/cost.js';

export const DEFAULT_SEQS = 32;
export const DEFAULT_SEQ_LEN = 256;
export const DEFAULT_BUDGET = 0.25;
export const DEFAULT_CRITICALITY_SEQS = 8;
export const DEFAULT_SEARCH_SEQS = 16;

export interface AnalysisProgress {
  phase: 'samples' | 'similarity' | 'criticality' | 'search';
  /** Forward passes done / planned over the whole analysis. */
  done: number;
  total: number;
  /** Tokens processed so far (all phases). */
  tokens: number;
}

export interface AnalyzeOptions {
  /**
   * Calibration data: a path (text file, folder of .txt, .jsonl, .parquet; sequences spread over all of it) or ready
   * token sequences (each of the same length). Default: N sequences sampled from the model itself (seed `seed`).
   */
  data?: string | { sequences: readonly Int32Array[]; description?: string };
  /** Seed of the default teacher samples (default 1). */
  seed?: number;
  /** jsonl field / parquet column (default `text`). */
  field?: string;
  /** `lines`: calibration text is one paragraph per line, encoded line by line (default `joined`). */
  encoding?: TextEncoding;
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
  /**
   * The measured plan search (`plans.search`; false skips it). Its budget is `budget` of `budgetResource` unless
   * `maxShared` is given; it measures on the first `seqs` calibration sequences (default 16).
   */
  search?: false | { seqs?: number; align?: AlignMode; beam?: number; candidates?: number; maxShared?: number };
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
    /** Documents the sequences were spread over. */
    documentsSampled?: number;
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
  /** One plan per heuristic strategy, and `search` unless the search was skipped. */
  plans: Record<HeuristicName, StrategyOutcome> & { search?: StrategyOutcome };
  /** The measured search behind `plans.search` (null when skipped). */
  search: SearchResult | null;
  timing: {
    similarityMs: number;
    criticalityMs: number;
    searchMs: number;
    totalMs: number;
    /** Calibration tokens per second through the similarity phase (forward pass + statistics). */
    similarityTokensPerSecond: number;
  };
}


/** Resolve the calibration sequences of {@link AnalyzeOptions.data} (teacher samples by default). */
export async function loadCalibration(
  model: LlamaModel, tokenizer: Tokenizer, opts: Pick<AnalyzeOptions, 'data' | 'field' | 'seqs' | 'seed' | 'encoding'> & { seqLen: number },
): Promise<Pick<CalibrationData, 'sequences' | 'description' | 'requestedSeqs'> & { documentsRead?: number; documentsSampled?: number }> {
  const seqs = opts.seqs ?? DEFAULT_SEQS;
  if (typeof opts.data === 'object') {
    const list = opts.data.sequences.slice(0, seqs);
    if (list.length === 0) throw new OptionError('data', 'no sequences given');
    const T = list[0].length;
    if (!list.every((s) => s.length === T)) throw new OptionError('data', 'all sequences must have the same length');
    return { sequences: [...list], description: opts.data.description ?? `${list.length} given sequences` };
  }
  if (opts.data === undefined) {
    const bosId = tokenizer.bosId ?? tokenizer.eosIds[0];
    if (bosId === undefined) throw new OptionError('--data', 'the tokenizer has no BOS or EOS token to start teacher samples from; give calibration text');
    const seed = opts.seed ?? 1;
    const sequences = sampleSequences(model, { count: seqs, length: opts.seqLen, bosId, seed });
    return { sequences, description: `${seqs} samples of the model itself (temperature 1, seed ${seed})` };
  }
  const source = resolveCorpusSource(opts.data, { field: opts.field });
  return calibrationSequences(tokenizer, source, { seqs, seqLen: opts.seqLen, encoding: opts.encoding });
}

/**
 * Analyse `model` on calibration text: similarity statistics, criticality, heuristic plans and the measured search.
 * Pure computation (nothing is written; see `writeReport`). The similarity pass handles one sequence at a time, so
 * its memory does not grow with N.
 */
export async function analyze(model: LlamaModel, tokenizer: Tokenizer, opts: AnalyzeOptions = {}): Promise<AnalysisResult> {
  const t0 = performance.now();
  const o = resolveAnalyzeOptions(model, opts);
  const cal = await loadCalibration(model, tokenizer, { ...opts, seqLen: o.seqLen });
  const sequences = cal.sequences;
  const seqLen = sequences[0].length;
  if (seqLen > model.config.maxPositions) throw new OptionError('data', `sequences of ${seqLen} tokens exceed max_position_embeddings ${model.config.maxPositions}`);
  const N = sequences.length;
  const critSeqs = Math.min(N, o.criticalitySeqs);
  const progress = new Progress(opts.onProgress, seqLen);
  const sim = await similarityPhase(model, sequences, opts, progress);
  const tc = performance.now();
  const criticality = critSeqs > 0 && model.config.numLayers > 1
    ? layerCriticality(model, sequences.slice(0, critSeqs), sim.similarity.cosine, { baseLoss: mean(sim.losses.slice(0, critSeqs)), onSequence: () => progress.tick('criticality') })
    : null;
  const criticalityMs = performance.now() - tc;
  const plans = heuristicPlans(model, seqLen, sim.similarity, criticality, opts, o.budget);
  const ts = performance.now();
  const search = opts.search === false || model.config.numLayers < 2 ? null : runSearch(model, sequences, sim.similarity, opts, o.budget, progress);
  const searchMs = performance.now() - ts;
  const all = search ? { ...plans, search: searchOutcome(model, search, seqLen, sim.similarity.cosine.mean) } : plans;
  return {
    model: {
      name: opts.modelName ?? model.config.modelType, numLayers: model.config.numLayers, numHeads: model.config.numHeads, numKvHeads: model.config.numKvHeads,
      headDim: model.config.headDim, hiddenSize: model.config.hiddenSize, parameters: model.parameterCount(),
    },
    data: {
      description: cal.description, sequences: N, seqLen, tokens: N * seqLen,
      ...(cal.requestedSeqs !== undefined ? { requestedSeqs: cal.requestedSeqs } : {}),
      ...(cal.documentsRead !== undefined ? { documentsRead: cal.documentsRead, documentsSampled: cal.documentsSampled } : {}),
    },
    settings: {
      ...(opts.threshold !== undefined || (opts.k === undefined && opts.spanLength === undefined) ? { threshold: opts.threshold ?? DEFAULT_THRESHOLD } : {}),
      ...(opts.k !== undefined ? { k: opts.k } : {}),
      ...(opts.spanLength !== undefined ? { spanLength: opts.spanLength } : {}),
      budget: o.budget, budgetResource: opts.budgetResource ?? 'flops', criticalitySeqs: critSeqs,
      ...(opts.maxMapBytes !== undefined ? { maxMapBytes: opts.maxMapBytes } : {}),
      backend: model.backend.name, threads: model.backend.threads,
    },
    similarity: sim.similarity,
    teacherLoss: { mean: sim.lossStat.mean[0], std: sim.lossStat.std()[0] },
    criticality, plans: all, search,
    timing: {
      similarityMs: sim.ms, criticalityMs, searchMs, totalMs: performance.now() - t0,
      similarityTokensPerSecond: (N * seqLen) / (sim.ms / 1000),
    },
  };
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function resolveAnalyzeOptions(model: LlamaModel, opts: AnalyzeOptions) {
  const cfg = model.config;
  if (opts.seqs !== undefined && !(Number.isInteger(opts.seqs) && opts.seqs >= 1)) throw new OptionError('--seqs', `expected an integer >= 1, got ${opts.seqs}`);
  const seqLen = opts.seqLen ?? Math.min(DEFAULT_SEQ_LEN, cfg.maxPositions);
  if (!(Number.isInteger(seqLen) && seqLen >= 2)) throw new OptionError('--seq-len', `expected an integer >= 2, got ${seqLen}`);
  if (seqLen > cfg.maxPositions) throw new OptionError('--seq-len', `${seqLen} exceeds the model's max_position_embeddings ${cfg.maxPositions}`);
  const budget = opts.budget ?? DEFAULT_BUDGET;
  if (!(budget >= 0 && budget <= 1)) throw new OptionError('--budget', `expected a fraction in [0, 1], got ${budget}`);
  if (opts.threshold !== undefined && !Number.isFinite(opts.threshold)) throw new OptionError('--threshold', `expected a number, got ${opts.threshold}`);
  const criticalitySeqs = opts.criticalitySeqs ?? DEFAULT_CRITICALITY_SEQS;
  if (!(Number.isInteger(criticalitySeqs) && criticalitySeqs >= 0)) throw new OptionError('--criticality-seqs', `expected an integer >= 0, got ${opts.criticalitySeqs}`);
  return { seqLen, budget, criticalitySeqs };
}

/** Progress over the whole analysis: forward passes done, and tokens. */
class Progress {
  done = 0;
  total = 0;
  tokens = 0;
  constructor(private readonly cb: AnalyzeOptions['onProgress'], private readonly seqLen: number) {}
  tick(phase: AnalysisProgress['phase'], tokens = this.seqLen): void {
    this.done++;
    this.tokens += tokens;
    this.cb?.({ phase, done: this.done, total: Math.max(this.total, this.done), tokens: this.tokens });
  }
}

/** Phase 1: similarity statistics and the teacher's loss per sequence, from the same forward passes. */
async function similarityPhase(model: LlamaModel, sequences: readonly Int32Array[], opts: AnalyzeOptions, progress: Progress) {
  const t = performance.now();
  const cfg = model.config;
  const seqLen = sequences[0].length;
  const acc = new SimilarityAccumulator(cfg.numLayers, cfg.numHeads, seqLen, { maxMapBytes: opts.maxMapBytes, headPairs: opts.headPairs, backend: model.backend });
  const critLayers = Math.max(0, cfg.numLayers - 1);
  progress.total = sequences.length * acc.blocks.length + Math.min(sequences.length, opts.criticalitySeqs ?? DEFAULT_CRITICALITY_SEQS) * critLayers;
  const lossStat = new RunningStat(1);
  const losses: number[] = [];
  for (const ids of sequences) {
    const logits = acc.addSequence(model, ids, () => progress.tick('similarity'));
    const loss = sequenceLoss(model.backend, logits, ids, cfg.vocabSize);
    losses.push(loss);
    lossStat.add([loss]);
    await new Promise((r) => setImmediate(r)); // let the event loop breathe (progress output, signals)
  }
  return { similarity: acc.result(), losses, lossStat, ms: performance.now() - t };
}

/** Phase 3: the heuristic plans (criticality anchors when measured, else the most similar earlier layer). */
function heuristicPlans(model: LlamaModel, seqLen: number, similarity: SimilarityStats, criticality: CriticalityResult | null, opts: AnalyzeOptions, budget: number) {
  const anchors = criticality ? criticality.layers.map((c) => c.anchor) : mostSimilarEarlier(similarity.cosine);
  return allStrategies(
    {
      config: model.config, seqLen, similarity: similarity.cosine.mean,
      ...(criticality ? { criticality: criticality.layers.map((c) => c.delta), criticalAnchor: anchors } : {}),
    },
    {
      echoatt: { threshold: opts.threshold, k: opts.k },
      span: { threshold: opts.threshold, length: opts.spanLength },
      budget: { fraction: budget, resource: opts.budgetResource },
    },
  );
}

/** Phase 4: the measured search on the first `search.seqs` sequences. */
function runSearch(model: LlamaModel, sequences: readonly Int32Array[], similarity: SimilarityStats, opts: AnalyzeOptions, budget: number, progress: Progress): SearchResult {
  const s = opts.search || {};
  const seqs = sequences.slice(0, s.seqs ?? DEFAULT_SEARCH_SEQS);
  const align = s.align ?? (similarity.headPairs ? 'cosine' : 'none');
  return searchPlans(model, seqs, {
    budget: s.maxShared === undefined && budget > 0 ? budget : undefined, resource: opts.budgetResource, maxShared: s.maxShared,
    align, headPairs: similarity.headPairs, beam: s.beam, candidates: s.candidates,
    onProgress: () => progress.tick('search', 0),
  });
}

/** The search's choice as a strategy outcome, beside the heuristics. */
function searchOutcome(model: LlamaModel, r: SearchResult, seqLen: number, cosine: Float64Array): StrategyOutcome {
  const L = model.config.numLayers;
  const cost = sharingCost(model.config, r.chosen.plan, seqLen);
  const sims = r.chosen.moves.map((m) => cosine[m.anchor * L + m.layer]);
  const why = `lowest measured calibration loss (+${r.chosen.delta.toFixed(4)} nats/token) among ${r.cost.evaluations} plans measured` +
    `${r.budget !== null ? ` removing ≥ ${(100 * r.budget).toFixed(1)}% of ${r.resource}` : ''}${r.align === 'cosine' ? ', heads aligned by cosine' : ''}` +
    ` (beam search, ${r.cost.forwardPasses.toFixed(1)} forward passes, ${r.cost.seconds.toFixed(1)} s)`;
  return {
    strategy: 'search', plan: r.chosen.plan, meanSimilarity: sims.length ? mean(sims) : null, predictedLossDelta: r.chosen.delta,
    removed: budgetFraction(cost, model.config), cost, why,
  };
}

/** The strategies an analysis has a plan for, in the standard order. */
export function planNames(result: Pick<AnalysisResult, 'plans'>): StrategyName[] {
  return STRATEGIES.filter((k) => result.plans[k] !== undefined);
}

/**
 * Distillation set-up: the models (teacher and student, loaded or given), the training data (text and/or teacher
 * samples, reused from disk on resume) and the held-out evaluation sets.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LlamaModel } from '../models/llama.js';
import { loadModel, stopIdsOf } from '../models/load.js';
import { arraysOf, copyModel, withPlan } from '../models/surgery.js';
import { readPlanFile } from '../models/sharing-plan.js';
import { loadTokenizer } from '../tokenizer/index.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OptionError, PlanError } from '../errors.js';
import { checkVocab, fingerprint, joinDatasets, loadData, packDocuments, readSamples, sampleFromTeacher, writeSamples, type TokenDataset } from '../train/data.js';
import type { DistillOptions, DistillProgress, ResolvedDistill } from './options.js';

export interface DistillModels {
  teacher: LlamaModel;
  student: LlamaModel;
  tokenizer: Tokenizer;
  tokenizerPath?: string;
  stopIds: number[];
}

/** Load (or take) the teacher and the student; the student's arrays are its own, so training leaves the teacher alone. */
export function distillModels(opts: DistillOptions, r: ResolvedDistill): DistillModels {
  let tokenizer = typeof opts.tokenizer === 'object' ? opts.tokenizer : undefined;
  let tokenizerPath = typeof opts.tokenizer === 'string' ? opts.tokenizer : undefined;
  let teacher: LlamaModel;
  if (typeof opts.teacher === 'string') {
    const t = loadModel(opts.teacher, { backend: opts.backend, tokenizer: tokenizerPath });
    teacher = t.model;
    tokenizer ??= t.tokenizer;
    tokenizerPath ??= t.checkpoint.tokenizerPath;
  } else teacher = opts.teacher;
  if (teacher.plan) throw new OptionError('teacher', 'the teacher is a shared-attention student; pass the original model');
  if (opts.student !== undefined && opts.plan !== undefined) throw new OptionError('student', 'give a student or a plan, not both');
  let student: LlamaModel;
  if (typeof opts.student === 'string') student = loadModel(opts.student, { backend: teacher.backend, tokenizer: tokenizerPath }).model;
  else if (opts.student) student = opts.student;
  else if (opts.plan !== undefined) {
    const plan = typeof opts.plan === 'string' ? readPlanFile(opts.plan) : opts.plan;
    if (plan.groups.every((g) => g.shared.length === 0)) throw new PlanError(typeof opts.plan === 'string' ? opts.plan : 'plan', 'shares no layer (every group\'s "shared" is empty); there is nothing to distill');
    student = withPlan(teacher, plan);
  }
  else throw new OptionError('student', 'give a student (--student) or a plan (--plan)');
  student = copyModel(student, arraysOf(teacher)); // training the student leaves the teacher alone
  if (!tokenizer) {
    if (!tokenizerPath) throw new OptionError('tokenizer', 'no tokenizer: pass one (the teacher was given as a model)');
    tokenizer = loadTokenizer(tokenizerPath, { vocabSize: teacher.config.vocabSize });
  }
  const V = teacher.config.vocabSize;
  if (student.config.vocabSize !== V) throw new OptionError('student', `vocabulary ${student.config.vocabSize} differs from the teacher's ${V}`);
  const ctx = Math.min(teacher.config.maxPositions, student.config.maxPositions);
  if (r.seqLen > ctx) throw new OptionError('seq-len', `${r.seqLen} exceeds the models' context of ${ctx}`);
  return { teacher, student, tokenizer, tokenizerPath, stopIds: stopIdsOf(tokenizer) };
}

/** Files of a distillation output folder. */
export interface DistillFiles {
  out: string;
  checkpoint: string;
  metrics: string;
  samples: string;
  evalSamples: string;
}

export function distillFiles(out: string): DistillFiles {
  const dir = path.resolve(out);
  const at = (f: string) => path.join(dir, f);
  return { out: dir, checkpoint: at('checkpoint.safetensors'), metrics: at('metrics.jsonl'), samples: at('teacher-samples.jsonl'), evalSamples: at('eval-samples.jsonl') };
}

/** Teacher samples from `file` when resuming (the same data again), else freshly drawn and saved there. */
function teacherDocs(m: DistillModels, file: string, reuse: boolean, o: { count: number; length?: number; temperature?: number; topP?: number; seed: number }, onSample?: (done: number, total: number) => void): number[][] {
  if (reuse && fs.existsSync(file)) return readSamples(file);
  const docs = sampleFromTeacher(m.teacher, m.tokenizer, { ...o, stopIds: m.stopIds, onSample });
  writeSamples(file, docs, m.tokenizer);
  return docs;
}

/** The training sequences: text data and/or teacher samples. */
export async function distillData(
  opts: DistillOptions, r: ResolvedDistill, m: DistillModels, files: DistillFiles, resuming: boolean, maxDataTokens: number, emit: (p: DistillProgress) => void,
): Promise<TokenDataset> {
  const paths = opts.data === undefined ? [] : typeof opts.data === 'string' ? [opts.data] : [...opts.data];
  if (paths.length === 0 && !opts.generate) throw new OptionError('data', 'no training data: give --data and/or --generate');
  const parts: TokenDataset[] = [];
  if (paths.length) parts.push(await loadData(m.tokenizer, paths, { seqLen: r.seqLen, field: opts.dataField, maxTokens: maxDataTokens, encoding: opts.textEncoding, spread: opts.spreadData }));
  const gen = opts.generate;
  if (gen) {
    const count = gen.count;
    if (!(Number.isInteger(count) && count >= 0)) throw new OptionError('generate', `expected an integer >= 0, got ${count}`);
    const docs = teacherDocs(m, files.samples, resuming, { ...gen, seed: gen.seed ?? r.seed }, (done, total) => emit({ phase: 'generate', done, total }));
    const sequences = packDocuments(docs, r.seqLen);
    parts.push({ sequences, description: `${docs.length} teacher samples`, fingerprint: fingerprint(sequences) });
  }
  const data = joinDatasets(parts);
  checkVocab(data, m.teacher.config.vocabSize, 'data');
  if (data.sequences.length < r.batch) {
    throw new OptionError('data', `only ${data.sequences.length} sequences of ${r.seqLen + 1} tokens (need at least one batch of ${r.batch}); use more data, a shorter --seq-len or a smaller --batch`);
  }
  return data;
}

/** Held-out sets evaluated before and after training: text files, and teacher samples seeded apart from the training ones. */
export async function distillEvalSets(opts: DistillOptions, r: ResolvedDistill, m: DistillModels, files: DistillFiles, resuming: boolean, evalMax: number): Promise<{ name: string; seqs: Int32Array[] }[]> {
  const sets: { name: string; seqs: Int32Array[] }[] = [];
  const evalPaths = opts.eval === undefined ? [] : typeof opts.eval === 'string' ? [opts.eval] : [...opts.eval];
  for (const p of evalPaths) {
    const ds = await loadData(m.tokenizer, [p], { seqLen: r.seqLen, field: opts.dataField, maxTokens: evalMax * (r.seqLen + 1), encoding: opts.textEncoding, spread: opts.spreadData });
    if (ds.sequences.length) sets.push({ name: path.basename(p), seqs: ds.sequences.slice(0, evalMax) });
  }
  if (opts.evalGenerate) {
    const gen = opts.generate;
    const docs = teacherDocs(m, files.evalSamples, resuming, {
      count: opts.evalGenerate, length: gen?.length, temperature: gen?.temperature, topP: gen?.topP, seed: (gen?.seed ?? r.seed) + 1_000_003,
    });
    sets.push({ name: 'teacher samples (held out)', seqs: packDocuments(docs, r.seqLen).slice(0, evalMax) });
  }
  return sets;
}

/** Layers whose hidden states enter the MSE term (γ > 0): the given ones, else the shared layers, else all. */
export function hiddenLayersOf(opts: DistillOptions, r: ResolvedDistill, m: DistillModels): number[] {
  if (!(r.loss.gamma > 0)) return [];
  const { student, teacher } = m;
  const shared = student.sharedLayers();
  const layers = [...(opts.hiddenLayers ?? (shared.length ? shared : [...Array(student.config.numLayers).keys()]))];
  if (student.config.hiddenSize !== teacher.config.hiddenSize || student.config.numLayers !== teacher.config.numLayers) {
    throw new OptionError('gamma', 'hidden-state MSE needs a student with the teacher\'s hidden size and layer count');
  }
  for (const l of layers) if (!(Number.isInteger(l) && l >= 0 && l < student.config.numLayers)) throw new OptionError('hidden-layers', `layer ${l} does not exist`);
  return layers;
}

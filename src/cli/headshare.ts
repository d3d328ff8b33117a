/**
 * `echoatt headshare`: head-wise weight sharing across layers (DirectShare; PostShare with `--post-train`), save the
 * shared model (each shared weight stored once, head map in config.json) and report what it saved.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { loadModel, saveModel } from '../models/load.js';
import { directShare, formatHeadShareReport, HEAD_SHARE_SAVES_NOTE, HEAD_SHARE_STRATEGIES, validateHeadShareOptions, writeHeadShareFigures } from '../sharing/headshare.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from './defaults.js';
import { backendFromOptions, floatOption, intOption, THREADS_FLAG } from './options.js';
import { postShare, type PenaltyKind } from '../sharing/postshare.js';
import { OutputFolder } from '../io/output.js';

interface HeadshareFlags {
  model: string;
  shareRate: number;
  strategy: string;
  out: string;
  tokenizer?: string;
  report?: string;
  force?: boolean;
  figures: boolean;
  json?: boolean;
  postTrain?: boolean;
  data?: string;
  steps?: number;
  lambda: number;
  penalty: string;
  includeO?: boolean;
  seqLen?: number;
  batch: number;
  lr: number;
  seed: number;
  checkpoint?: string;
  resume?: boolean;
  backend?: string;
  threads?: number;
}

/** `--share-rate`: a number in [0, 1) (the model-dependent upper bound is checked once the model is loaded). */
function shareRateOption(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) throw new OptionError('--share-rate', `expected a number in [0, 1), got '${v}'`);
  return n;
}

function strategyOption(v: string): string {
  if (!(HEAD_SHARE_STRATEGIES as readonly string[]).includes(v)) throw new OptionError('--strategy', `expected one of ${HEAD_SHARE_STRATEGIES.join(', ')}, got '${v}'`);
  return v;
}

export function registerHeadshare(program: Command): void {
  program
    .command('headshare')
    .description('share attention-head weights across layers by weight similarity (DirectShare / PostShare); saves weight memory only')
    .option('-m, --model <path>', 'model: llama2.c .bin or Hugging Face directory', DEFAULT_MODEL)
    .requiredOption('--share-rate <r>', 'fraction of all (layer, K/V group) units to share, in [0, 1)', shareRateOption)
    .option('--strategy <s>', `weights compared: ${HEAD_SHARE_STRATEGIES.join(' | ')}`, strategyOption, 'qk')
    .requiredOption('-o, --out <dir>', 'output directory (Hugging Face layout, head map in config.json)')
    .option('--tokenizer <path>', 'tokenizer to save with the model (default: the model\'s)')
    .option('--report <dir>', 'where the figures and report JSON go (default: <out>/headshare-report)')
    .option('--force', 'replace an earlier headshare output in --out / --report (only the files it wrote)')
    .option('--no-figures', 'skip the heat map / histogram figures')
    .option('--json', 'print the report as JSON on stdout')
    .option('--post-train', 'PostShare: post-train with a penalty pulling matched heads together, then share')
    .option('--data <path>', 'PostShare: training text')
    .option('--steps <n>', 'PostShare: optimizer steps', intOption('--steps', 1))
    .option('--lambda <x>', 'PostShare: penalty weight λ', floatOption('--lambda', 0), 0.1)
    .option('--penalty <kind>', 'PostShare: fro (Σ‖ΔW‖_F over q, k, v; the paper\'s) | mse', 'fro')
    .option('--include-o', 'PostShare: also pull the o_proj columns together')
    .option('--seq-len <T>', 'PostShare: training sequence length (default min(256, context))', intOption('--seq-len', 2))
    .option('--batch <n>', 'PostShare: sequences per step', intOption('--batch', 1), 8)
    .option('--lr <x>', 'PostShare: peak learning rate (AdamW, warmup + cosine)', floatOption('--lr', 0), 1e-3)
    .option('--seed <n>', 'PostShare: data-order seed', intOption('--seed'), 1)
    .option('--checkpoint <file>', 'PostShare: training checkpoint (.safetensors), written every 50 steps and at the end')
    .option('--resume', 'PostShare: continue from --checkpoint')
    .option('--backend <name>', 'native | reference')
    .option(...THREADS_FLAG)
    .action(async (f: HeadshareFlags) => {
      if (f.postTrain) {
        if (!f.data) throw new OptionError('--data', 'PostShare (--post-train) needs training text: pass --data PATH');
        if (f.steps === undefined) throw new OptionError('--steps', 'PostShare (--post-train) needs the number of training steps: pass --steps N');
        if (f.penalty !== 'fro' && f.penalty !== 'mse') throw new OptionError('--penalty', `expected fro or mse, got '${f.penalty}'`);
        if (f.resume && !f.checkpoint) throw new OptionError('--resume', 'needs --checkpoint FILE');
      } else {
        const stray = ['data', 'steps', 'includeO', 'seqLen', 'checkpoint', 'resume'].find((k) => f[k as keyof HeadshareFlags] !== undefined);
        if (stray) throw new OptionError(`--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, 'only used with --post-train (PostShare)');
      }
      const backend = backendFromOptions(f);
      const policy = { command: 'headshare', force: f.force, resume: f.resume, resumable: Boolean(f.postTrain), inputs: [f.model, f.tokenizer, f.data] };
      const out = OutputFolder.open(f.out, policy);
      const reportDir = f.report ? path.resolve(f.report) : out.file('headshare-report');
      const inOut = reportDir === out.dir || reportDir.startsWith(out.dir + path.sep);
      const reportOut = inOut ? undefined : OutputFolder.open(reportDir, { ...policy, flag: '--report' });
      const { model, tokenizer, checkpoint } = loadModel(f.model, { backend });
      const opts = validateHeadShareOptions({ shareRate: f.shareRate, strategy: f.strategy }, model.config);
      let res;
      if (f.postTrain) {
        const t0 = performance.now();
        const ps = await postShare(model, tokenizer, {
          ...opts, data: [f.data!], steps: f.steps!, lambda: f.lambda, penalty: f.penalty as PenaltyKind, includeO: f.includeO ?? false,
          seqLen: f.seqLen, batch: f.batch, lr: f.lr, seed: f.seed, checkpoint: f.checkpoint, resume: f.resume ?? false,
          onStep: (s) => {
            if (s.step === 1 || s.step % 10 === 0 || s.step === s.steps) {
              process.stderr.write(`step ${s.step}/${s.steps}  loss ${s.loss.toFixed(4)}  lm ${s.lm.toFixed(4)}  penalty ${s.penalty.toFixed(4)}  lr ${s.lr.toExponential(2)}  ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
            }
          },
        });
        process.stderr.write(`PostShare: penalty ${ps.penaltyBefore.toFixed(4)} -> ${ps.penaltyAfter.toFixed(4)} after ${ps.steps} steps\n`);
        res = ps;
      } else {
        res = directShare(model, opts);
      }
      saveModel(out.dir, res.model, f.tokenizer ?? checkpoint.tokenizerPath);
      const figures = f.figures ? await writeHeadShareFigures(res.report, reportDir) : [];
      out.close();
      reportOut?.close();
      if (f.json) {
        process.stdout.write(`${JSON.stringify(res.report, null, 2)}\n`);
      } else {
        process.stdout.write(`wrote head-shared model to ${f.out}\n${formatHeadShareReport(res.report)}\n`);
        if (figures.length) process.stdout.write(`figures: ${figures.filter((p) => !p.endsWith('.json')).join(', ')}\n`);
      }
      process.stderr.write(`echoatt headshare: note: ${HEAD_SHARE_SAVES_NOTE}\n`);
    });
}

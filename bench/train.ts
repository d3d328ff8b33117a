/**
 * `npm run bench:train` — training-step throughput of a full model vs its shared-attention student, side by side on
 * the same data, with peak memory. One training step = forward through the autograd, cross-entropy, backward, global
 * norm clip and AdamW update (a distillation step adds one teacher inference forward, the same for both).
 *   1. stories260K (real weights): T=256, batch 8; student shares layers 2,3 with anchor 1;
 *   2. a random Llama at "mid size": 6 layers, hidden 1024, 16 heads / 4 KV heads, FFN 2816, vocab 8192; T=256,
 *      batch 2; student shares 2,3 with anchor 1 and 5 with anchor 4.
 * Each row also shows the student trained with `--train shared` (only shared layers' parameters: the backward
 * stops at the first trainable layer).
 * Each configuration runs in its own child process, so "peak RSS" is that configuration's own high-water mark.
 * Options: `--threads N` (default: the backend's), `--steps N` (timed steps, default 3), `--skip-mid`.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { configFromJson } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { buildStudent } from '../src/sharing/student.js';
import { apply, OPS, Tape } from '../src/autograd/index.js';
import { AdamW, clipGradNorm, selectTrainable } from '../src/distill/index.js';
import { SHARED_DIR } from '../src/cli/defaults.js';
import { forwardTrain, modelParams } from '../src/models/tape-ops.js';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

interface Setup {
  label: string;
  make: () => LlamaModel;
  groups: { anchor: number; shared: number[] }[];
  t: number;
  batch: number;
}

const SETUPS: Record<string, Setup> = {
  stories260K: {
    label: 'stories260K (5L, d64)',
    make: () => loadModel(path.join(SHARED_DIR, 'models/stories260K/stories260K.bin')).model,
    groups: [{ anchor: 1, shared: [2, 3] }],
    t: 256,
    batch: 8,
  },
  mid: {
    label: 'random 6L d1024 (84M)',
    make: () => {
      const cfg = configFromJson({
        architectures: ['LlamaForCausalLM'], hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: 6, num_attention_heads: 16,
        num_key_value_heads: 4, vocab_size: 8192, max_position_embeddings: 1024, rms_norm_eps: 1e-5, tie_word_embeddings: false,
      }, 'bench-mid');
      return LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 7 }));
    },
    groups: [{ anchor: 1, shared: [2, 3] }, { anchor: 4, shared: [5] }],
    t: 256,
    batch: 2,
  },
};

type Variant = 'full' | 'student' | 'student-shared-only';

function child(setupName: string, variant: Variant, steps: number, threads: number): void {
  const be = getBackend();
  be.setThreads(threads);
  const s = SETUPS[setupName];
  const teacher = s.make();
  const model = variant === 'full' ? teacher : buildStudent(teacher, makePlan('manual', s.groups));
  const params = modelParams(model);
  const trainable = selectTrainable(model, params, variant === 'student-shared-only' ? 'shared' : 'all', false);
  const opt = new AdamW(trainable);
  const V = model.config.vocabSize;
  const n = s.t * s.batch;
  let seed = 12345;
  const ids = new Int32Array(n);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    ids[i] = 1 + (seed % (V - 1));
    targets[i] = ids[(i + 1) % n];
  }
  const step = () => {
    const tape = new Tape(model.backend);
    const { logits } = forwardTrain(model, params, ids, { batch: s.batch, tape });
    const loss = apply(tape, OPS.crossEntropy, { logits, targets, rows: n, cols: V });
    tape.backward(loss);
    clipGradNorm(trainable, 1);
    opt.step(1e-4);
    opt.zeroGrad();
  };
  step(); // warm-up (allocates optimizer state and gradients)
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const trainableCount = trainable.reduce((a, p) => a + p.data.length, 0);
  process.stdout.write(JSON.stringify({
    ms: median, tokPerS: (n * 1000) / median, peakRssMiB: process.resourceUsage().maxRSS / 1024,
    params: model.parameterCount(), trainable: trainableCount, tokens: n,
  }));
}

function main(): void {
  if (process.argv.includes('--child')) {
    const [setup, variant, steps, threads] = process.argv.slice(process.argv.indexOf('--child') + 1);
    child(setup, variant as Variant, Number(steps), Number(threads));
    return;
  }
  const be = getBackend();
  const threads = Number(arg('threads', String(be.threads)));
  const steps = Number(arg('steps', '3'));
  const setups = ['stories260K', ...(process.argv.includes('--skip-mid') ? [] : ['mid'])];
  const self = fileURLToPath(import.meta.url);
  process.stdout.write(`bench:train — backend ${be.name}, ${threads} thread(s), median of ${steps} timed steps after 1 warm-up\n`);
  process.stdout.write('step = autograd forward + cross-entropy + backward + clip + AdamW; peak RSS per configuration (own process)\n\n');
  const header = ['model', 'T×B', 'variant', 'params', 'trainable', 'ms/step', 'tok/s', 'vs full', 'peak RSS MiB'];
  const rows: string[][] = [];
  for (const name of setups) {
    const s = SETUPS[name];
    let fullTps = NaN;
    for (const variant of ['full', 'student', 'student-shared-only'] as Variant[]) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', name, variant, String(steps), String(threads)], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(`${name}/${variant} failed: ${r.stderr}`);
      const o = JSON.parse(r.stdout) as { ms: number; tokPerS: number; peakRssMiB: number; params: number; trainable: number };
      if (variant === 'full') fullTps = o.tokPerS;
      rows.push([
        s.label, `${s.t}×${s.batch}`, variant === 'student-shared-only' ? 'student, --train shared' : variant,
        `${(o.params / 1e6).toFixed(2)}M`, `${(o.trainable / 1e6).toFixed(2)}M`, o.ms.toFixed(1), o.tokPerS.toFixed(0),
        variant === 'full' ? '1.00×' : `${(o.tokPerS / fullTps).toFixed(2)}×`, o.peakRssMiB.toFixed(0),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  process.stdout.write(`${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(fmt).join('\n')}\n`);
}

main();

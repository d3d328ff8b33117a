/**
 * Child process of bench/vs-llamacpp.ts for one thread count: llama.cpp (node-llama-cpp, from bench/.llamacpp), echoatt's
 * F16 model and its shared student, all in this one process, measured in alternating rounds so that every round
 * sees the same machine (a noisy neighbour slows all three alike). Prints one `RESULT {json}` line:
 *   prefill[runtime]: tok/s @T per round (fresh prefill each round)
 *   decode[ctx][runtime]: tok/s of a window of `steps` tokens ending at ctx, per round (the window is rewound after)
 *   gbps[ctx]: the memory streaming rate (bench/common.ts streamingRate: f16 weights of 8 FFN-sized matrices through
 *   matmulHalf) measured in each decode round, and
 *   bytes[ctx][runtime]: what one decode step must read (weights + the KV it attends over); a round's ceiling is
 *   its rate / those bytes, so a noisy phase lowers the ceiling and the runtimes of that round alike.
 * Usage: node --import tsx bench/llamacpp/duel.ts <gguf> <hfDir> <threads> <T> <ctxs,comma> <steps> <rounds>
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../../src/backend/index.js';
import { loadNativeBackend } from '../../src/backend/native.js';
import { loadModel } from '../../src/models/load.js';
import type { LlamaModel } from '../../src/models/llama.js';
import { buildStudent } from '../../src/sharing/student.js';
import { benchPlan, streamingRate, tokens } from '../common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const [gguf, hfDir, threadsS, TS, ctxsS, stepsS, roundsS] = process.argv.slice(2);
const threads = Number(threadsS), T = Number(TS), steps = Number(stepsS), rounds = Number(roundsS);
const ctxs = ctxsS.split(',').map(Number);

interface Side {
  name: string;
  prefill(ids: Int32Array): Promise<void>;
  /** Fill the context to `upto` tokens of `toks` (once per ctx). */
  fill(toks: Int32Array, upto: number, ctx: number): Promise<void>;
  /** Decode toks[from..to) one at a time, then rewind to `from`. */
  window(toks: Int32Array, from: number, to: number): Promise<void>;
  /** Bytes one decode step reads with `s` positions cached. */
  bytesPerStep(s: number): number;
}

function echoSide(name: string, model: LlamaModel): Side {
  let cache = model.newCache(1, 1);
  const c = model.config;
  let weightBytes = model.params.lmHead.byteLength;
  for (const layer of model.params.layers) {
    for (const key of ['wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'] as const) {
      const w = layer[key];
      if (w) weightBytes += w.byteLength;
    }
  }
  const kvRow = c.numKvHeads * c.headDim * 4;
  return {
    name,
    async prefill(ids) {
      model.forward(ids, { lastOnly: true });
    },
    async fill(toks, upto, ctx) {
      cache = model.newCache(1, ctx);
      for (let i = 0; i < upto; i += 512) model.forward(toks.subarray(i, Math.min(upto, i + 512)), { cache, lastOnly: true });
    },
    async window(toks, from, to) {
      cache.length = from;
      for (let i = from; i < to; i++) model.forward(toks.subarray(i, i + 1), { cache, lastOnly: true });
    },
    bytesPerStep: (s) => weightBytes + s * kvRow * c.attention.reduce((n, k) => n + (k.kind === 'echo' ? 1 : 2), 0),
  };
}

async function llamaSide(echoBytes: (s: number) => number): Promise<Side> {
  const req = createRequire(path.join(here, '..', '.llamacpp', 'package.json'));
  const { getLlama } = await import(pathToFileURL(req.resolve('node-llama-cpp')).href);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0, useMmap: true });
  // F32 KV cache and no flash attention: the plain attention path, as echoatt's f32 cache. 64 spare positions: a
  // context about to fill up is shifted (erased and re-evaluated) by node-llama-cpp, which would be timed.
  const context = (size: number) => model.createContext({
    contextSize: size + 64, threads, batchSize: 512, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  const pre = await context(T + 8);
  const preSeq = pre.getSequence();
  let ctx: Awaited<ReturnType<typeof context>> | null = null;
  let seq: ReturnType<typeof pre.getSequence> | null = null;
  return {
    name: 'llama.cpp F16',
    async prefill(ids) {
      await preSeq.clearHistory();
      await preSeq.evaluateWithoutGeneratingNewTokens([...ids]);
    },
    async fill(toks, upto, size) {
      await ctx?.dispose();
      ctx = await context(size);
      seq = ctx.getSequence();
      await seq.evaluateWithoutGeneratingNewTokens([...toks.subarray(0, upto)]);
    },
    async window(toks, from, to) {
      if (seq!.nextTokenIndex !== from) throw new Error(`llama.cpp sequence at ${seq!.nextTokenIndex}, expected ${from}`);
      for (let i = from; i < to; i++) await seq!.evaluateWithoutGeneratingNewTokens([toks[i]]);
      await seq!.eraseContextTokenRanges([{ start: from, end: to }]);
    },
    bytesPerStep: echoBytes, // echoatt's teacher's weights and KV layout, less the LM head it is not asked to run
  };
}

const pause = () => new Promise((r) => setTimeout(r, 50)); // let the other runtime's spinning threads go idle

async function main(): Promise<void> {
  const be = getBackend();
  be.setThreads(threads);
  const teacher = loadModel(hfDir, { backend: be, weights: 'as-stored' }).model;
  const student = buildStudent(teacher, benchPlan(teacher.config.numLayers));
  const echo = echoSide('echoatt F16', teacher);
  const headBytes = teacher.params.lmHead.byteLength;
  const sides = [await llamaSide((s) => echo.bytesPerStep(s) - headBytes), echo, echoSide(`echoatt student ${student.sharedLayers().length}/${teacher.config.numLayers} F16`, student)];
  const V = teacher.config.vocabSize;
  const nb = loadNativeBackend()!;
  nb.setThreads(threads);
  const rate = streamingRate(nb);
  const res = {
    runtimes: sides.map((s) => s.name),
    prefill: Object.fromEntries(sides.map((s) => [s.name, [] as number[]])),
    decode: {} as Record<number, Record<string, number[]>>,
    gbps: {} as Record<number, number[]>,
    bytes: {} as Record<number, Record<string, number>>,
  };
  const order = (r: number) => sides.map((_, i) => sides[(i + r) % sides.length]); // each runtime takes each slot in turn
  const prompt = tokens(T, V, 2);
  for (const s of sides) await s.prefill(tokens(8, V, 1)); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const s of order(r)) {
      await pause();
      const t0 = performance.now();
      await s.prefill(prompt);
      res.prefill[s.name].push((T * 1000) / (performance.now() - t0));
    }
  }
  for (const c of ctxs) {
    const toks = tokens(c, V, 3);
    res.decode[c] = Object.fromEntries(sides.map((s) => [s.name, [] as number[]]));
    res.bytes[c] = Object.fromEntries(sides.map((s) => [s.name, s.bytesPerStep(c - steps / 2)]));
    res.gbps[c] = [];
    for (const s of sides) await s.fill(toks, c - steps, c);
    for (let r = 0; r < rounds; r++) {
      res.gbps[c].push(rate());
      for (const s of order(r)) {
        await pause();
        const t0 = performance.now();
        await s.window(toks, c - steps, c);
        res.decode[c][s.name].push((steps * 1000) / (performance.now() - t0));
      }
    }
  }
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
  process.exit(0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();

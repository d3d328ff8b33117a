// Child process of bench/vs-llamacpp.ts: runs llama.cpp (through node-llama-cpp, installed in bench/.llamacpp) on a GGUF
// file and prints one JSON line. Modes:
//   speed  <gguf> <threads> <prefillT> <decodeCtxs,comma> <decodeSteps> [reps]  → best-of-reps prefill and decode tok/s, decode tok/s per ctx, peak RSS
//   logits <gguf> <threads> <idsJsonFile> <outJsonFile>                  → full next-token log-softmax rows for the ids
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const req = createRequire(path.join(here, '..', '.llamacpp', 'package.json'));
const { getLlama } = await import(pathToFileURL(req.resolve('node-llama-cpp')).href);

const [mode, gguf, threadsS, ...rest] = process.argv.slice(2);
const threads = Number(threadsS);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0, useMmap: true });

function ids(n, vocab, seed) {
  const out = [];
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push(1 + (s % (vocab - 1)));
  }
  return out;
}

// Peak resident memory of this process: VmHWM (unlike getrusage's maxrss, it is not inherited across exec).
function peakRssGiB() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 / 1024 : process.resourceUsage().maxRSS / 1024 / 1024;
}

async function ctxFor(size) {
  // F32 KV cache and no flash attention: the plain attention path, comparable to echoatt's f32 cache.
  // 64 spare positions: node-llama-cpp shifts (erases and re-evaluates) a context that is about to fill up, which
  // would be timed as decode.
  return model.createContext({
    contextSize: size + 64, threads, batchSize: 512, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
}

if (mode === 'speed') {
  const [prefillT, ctxsS, stepsS, repsS] = rest;
  const reps = Math.max(1, Number(repsS ?? 1));
  const T = Number(prefillT);
  const ctxs = ctxsS.split(',').map(Number);
  const steps = Number(stepsS);
  const vocab = model.tokens.vocabSize ?? 32000;
  const res = { prefill: {}, decode: {} };
  {
    const ctx = await ctxFor(T + 8);
    const seq = ctx.getSequence();
    await seq.evaluateWithoutGeneratingNewTokens(ids(8, vocab, 1)); // warm-up
    // Best of `reps` runs, each from an empty history (as on the echoatt side; decode windows likewise).
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      await seq.clearHistory();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(ids(T, vocab, 2));
      best = Math.min(best, performance.now() - t0);
    }
    res.prefill[T] = (T * 1000) / best;
    await ctx.dispose();
  }
  for (const c of ctxs) {
    // Decode the last `steps` positions before context c, as the echoatt side does.
    const ctx = await ctxFor(c);
    const seq = ctx.getSequence();
    const toks = ids(c, vocab, 3);
    await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, c - steps));
    // Best of `reps` windows: the window's tokens are erased from the KV cache and decoded again.
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      if (r > 0) await seq.eraseContextTokenRanges([{ start: c - steps, end: c }]);
      if (seq.nextTokenIndex !== c - steps) throw new Error(`sequence at ${seq.nextTokenIndex}, expected ${c - steps}`);
      const t0 = performance.now();
      for (let i = c - steps; i < c; i++) await seq.evaluateWithoutGeneratingNewTokens([toks[i]]);
      best = Math.min(best, performance.now() - t0);
    }
    res.decode[c] = (steps * 1000) / best;
    await ctx.dispose();
  }
  res.peakRssGiB = peakRssGiB();
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
} else if (mode === 'logits') {
  const [idsFile, outFile] = rest;
  const toks = JSON.parse(fs.readFileSync(idsFile, 'utf8'));
  const ctx = await ctxFor(toks.length + 1);
  const seq = ctx.getSequence();
  const out = await seq.controlledEvaluate(toks.map((t) => [t, { generateNext: { logits: true } }]));
  const rows = out.map((o) => {
    const row = new Float64Array(model.tokens.vocabSize ?? o.next.logits.size);
    for (const [tok, v] of o.next.logits) row[tok] = v;
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    return Array.from(row, (v) => v - lse);
  });
  fs.writeFileSync(outFile, JSON.stringify(rows));
  process.stdout.write('RESULT {"ok":true}\n');
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.exit(0);

/**
 * GEMM and decode-matvec throughput of the native backend, with OpenBLAS measured in the same run as the yardstick.
 *
 *   npm run bench:gemm            (node --import tsx bench/gemm.ts)
 *
 * SGEMM 512×2048×2048 in the three layouts a Linear layer uses (NN: dx = dy·W, NT: y = x·Wᵀ, TN: dW = dyᵀ·x) on
 * 1 and 2 threads. OpenBLAS runs in a separate process (bench/openblas_gemm.c, compiled here against Debian's
 * libopenblas-dev) with OPENBLAS_NUM_THREADS set; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are passed through as found.
 * Matvec 1×2048×5632 rotates through weight matrices totalling more than the last-level cache, so it measures
 * DRAM streaming, next to the copy bandwidth of the same machine.
 * matmulHalf (weights kept as f16 / bf16 bits, widened in registers): decode 1×2048×5632 in GB/s of W read (2 bytes
 * per weight) beside the f32 matvec (4 bytes per weight), measured in alternating rounds with it; prefill
 * 512×2048×2048 in GFLOP/s beside f32 SGEMM in the same layout (NT, y = x·Wᵀ).
 * Env: BENCH_REPS (timed repetitions per round, default 7), BENCH_ROUNDS (alternating rounds, default 3).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend, nativeLoadError } from '../src/backend/native.js';
import { f32ToBf16, f32ToF16 } from '../src/tensor/dtype.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cacheDir = path.join(here, '.cache');
const REPS = Number(process.env.BENCH_REPS ?? 7);
const THREADS = [1, 2];
const [M, N, K] = [512, 2048, 2048];
const LAYOUTS = [
  { name: 'NN', transA: false, transB: false },
  { name: 'NT', transA: false, transB: true },
  { name: 'TN', transA: true, transB: false },
] as const;

const be = loadNativeBackend();
if (!be) {
  console.error(`native backend unavailable: ${nativeLoadError()}`);
  process.exit(1);
}

function randomArray(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/** Best wall time in seconds of `reps` runs after `warm` untimed ones. */
function best(fn: () => void, reps = REPS, warm = 2): number {
  for (let i = 0; i < warm; i++) fn();
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t = Math.min(t, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return t;
}

/** Compiles the OpenBLAS driver once; returns its path, or the reason it cannot be used. */
function buildOpenBlas(): { exe?: string; why?: string } {
  const src = path.join(here, 'openblas_gemm.c');
  const exe = path.join(cacheDir, 'openblas_gemm');
  fs.mkdirSync(cacheDir, { recursive: true });
  if (fs.existsSync(exe) && fs.statSync(exe).mtimeMs > fs.statSync(src).mtimeMs) return { exe };
  const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', exe, src, '-lopenblas'], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    return { why: 'OpenBLAS not found (install Debian libopenblas-dev: apt-get install -y libopenblas-dev)' };
  }
  return { exe };
}

function openBlasGflops(exe: string, layout: string, threads: number): number | undefined {
  const r = spawnSync(exe, [String(M), String(N), String(K), layout, String(REPS)], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads) },
  });
  const v = Number.parseFloat(r.stdout);
  return r.status === 0 && Number.isFinite(v) ? v : undefined;
}

const fmt = (v: number | undefined, d = 1) => (v === undefined ? '—' : v.toFixed(d));
const pad = (s: string, w: number) => s.padStart(w);

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : pad(c, widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

console.log(`echoatt native GEMM / matvec benchmark`);
console.log(`cpu: ${os.cpus()[0]?.model ?? 'unknown'} (${os.cpus().length} logical), simd: ${be.simd}, node ${process.version}`);
console.log(
  `OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'} OPENBLAS_L2_SIZE=${process.env.OPENBLAS_L2_SIZE ?? '(unset)'}` +
    ` (passed through unchanged); best of ${REPS} runs after warm-up, ${process.env.BENCH_ROUNDS ?? 3} alternating rounds per table\n`,
);

// ---- SGEMM ------------------------------------------------------------------------------------------------------
const ob = buildOpenBlas();
if (ob.why) console.log(`OpenBLAS column skipped: ${ob.why}\n`);
const a = randomArray(M * K, 1);
const b = randomArray(K * N, 2);
const c = new Float32Array(M * N);
const flops = 2 * M * N * K;
// Several rounds alternating echoatt and OpenBLAS, keeping each side's best, so a burst of background load on a
// shared machine hits both columns rather than whichever happened to run during it.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const gemmRows: string[][] = [];
for (const t of THREADS) {
  for (const l of LAYOUTS) {
    let ours = 0;
    let theirs: number | undefined;
    for (let r = 0; r < ROUNDS; r++) {
      be.setThreads(t);
      const secs = best(() => be.gemm({ m: M, n: N, k: K, a, b, c, transA: l.transA, transB: l.transB }));
      ours = Math.max(ours, flops / secs / 1e9);
      const o = ob.exe ? openBlasGflops(ob.exe, l.name, t) : undefined;
      if (o !== undefined) theirs = Math.max(theirs ?? 0, o);
    }
    gemmRows.push([`${l.name} ${M}x${N}x${K}`, String(t), fmt(ours), fmt(theirs), theirs ? `${(ours / theirs).toFixed(2)}x` : '—']);
  }
}
console.log('SGEMM (GFLOP/s)');
table(['layout m×n×k', 'threads', 'echoatt', 'OpenBLAS', 'ratio'], gemmRows);

// ---- Decode matvec ------------------------------------------------------------------------------------------------
// W is (n=5632, k=2048): the FFN up-projection of a 2048-wide model, one token at a time.
const [MN, MK] = [5632, 2048];
const wBytes = MN * MK * 4;
/** Largest cache the OS reports (sysfs), at least 64 MiB: some server parts have 260 MiB of L3. */
function lastLevelCacheBytes(): number {
  let most = 64 * 1024 * 1024;
  const dir = '/sys/devices/system/cpu/cpu0/cache';
  try {
    for (const idx of fs.readdirSync(dir).filter((d) => d.startsWith('index'))) {
      const m = /^(\d+)([KMG]?)/.exec(fs.readFileSync(path.join(dir, idx, 'size'), 'utf8').trim());
      if (m) most = Math.max(most, Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2]]);
    }
  } catch {
    // no sysfs (not Linux): keep the default
  }
  return most;
}
const llcBytes = lastLevelCacheBytes();
const nW = Math.max(3, Math.ceil((2 * llcBytes) / wBytes));
const ws = Array.from({ length: nW }, (_, i) => randomArray(MN * MK, 10 + i));
const x = randomArray(MK, 3);
const y = new Float32Array(MN);
let next = 0;
const matvecOnce = () => be.matvec(ws[next++ % nW], x, y, MN, MK);

// Copy bandwidth: TypedArray.set on buffers far larger than the cache is a plain memmove in V8 (glibc, streaming
// stores). Its DRAM traffic is every byte read once and written once, so the yardstick is (read + written) bytes
// per second, the STREAM convention, against the matvec's bytes read per second.
const copyN = (nW * wBytes) / 4 / 2;
const src = new Float32Array(copyN).fill(1);
const dst = new Float32Array(copyN);
const copySecs = best(() => dst.set(src), REPS, 1);
const copyGBs = (2 * copyN * 4) / copySecs / 1e9;

// Half-precision copies of the same kind of weights: as many matrices again as needed to exceed the cache.
const hBytes = MN * MK * 2;
const nH = Math.max(3, Math.ceil((2 * llcBytes) / hBytes));
const halves = {
  f16: Array.from({ length: nH }, (_, i) => f32ToF16(randomArray(MN * MK, 40 + i))),
  bf16: Array.from({ length: nH }, (_, i) => f32ToBf16(randomArray(MN * MK, 40 + i))),
};
let nextH = 0;

const mvRows: string[][] = [];
const halfRows: string[][] = [];
for (const t of THREADS) {
  be.setThreads(t);
  // One "rep" sweeps every matrix once so each call streams cold weights. Rounds alternate f32 / f16 / bf16 so a
  // burst of background load hits all three; each keeps its best.
  let f32Secs = Infinity;
  const halfSecs = { f16: Infinity, bf16: Infinity };
  for (let r = 0; r < ROUNDS; r++) {
    f32Secs = Math.min(f32Secs, best(() => {
      for (let i = 0; i < nW; i++) matvecOnce();
    }) / nW);
    for (const dt of ['f16', 'bf16'] as const) {
      halfSecs[dt] = Math.min(halfSecs[dt], best(() => {
        for (let i = 0; i < nH; i++) be.matmulHalf(x, halves[dt][nextH++ % nH], dt, y, 1, MN, MK);
      }) / nH);
    }
  }
  const gbs = wBytes / f32Secs / 1e9;
  mvRows.push([`1x${MK}x${MN} (${nW} × ${(wBytes / 2 ** 20).toFixed(0)} MiB)`, String(t), fmt(gbs), fmt(copyGBs), `${(gbs / copyGBs).toFixed(2)}x`, fmt(f32Secs * 1e3, 2)]);
  halfRows.push([`f32 matvec (${nW} × ${(wBytes / 2 ** 20).toFixed(0)} MiB)`, String(t), fmt(gbs), '1.00x', fmt(f32Secs * 1e3, 3), '1.00x']);
  for (const dt of ['f16', 'bf16'] as const) {
    const hgbs = hBytes / halfSecs[dt] / 1e9;
    halfRows.push([
      `${dt} matmulHalf (${nH} × ${(hBytes / 2 ** 20).toFixed(0)} MiB)`, String(t), fmt(hgbs), `${(hgbs / gbs).toFixed(2)}x`,
      fmt(halfSecs[dt] * 1e3, 3), `${(f32Secs / halfSecs[dt]).toFixed(2)}x`,
    ]);
  }
}
console.log('\nDecode matvec, W (5632, 2048) streamed from DRAM (GB/s = bytes of W read per second)');
table(['shape', 'threads', 'GB/s', 'copy r+w GB/s', 'ratio', 'ms/call'], mvRows);
console.log(`copy: ${(copyN * 4 / 2 ** 20).toFixed(0)} MiB TypedArray.set, ${fmt(copyGBs / 2)} GB/s copied = ${fmt(copyGBs)} GB/s of read + write traffic`);

console.log(`\nDecode matmulHalf 1x${MK}x${MN}, half-precision W widened in registers (GB/s = bytes of W read per second)`);
table(['kernel', 'threads', 'GB/s', 'GB/s vs f32', 'ms/call', 'tokens/s vs f32'], halfRows);

// ---- Prefill matmulHalf -------------------------------------------------------------------------------------------
// y = x·Wᵀ with W (N, K) as half bits: the SGEMM driver widens W while packing its B panels.
const wPre = randomArray(N * K, 2);
const wPreHalf = { f16: f32ToF16(wPre), bf16: f32ToBf16(wPre) };
const preRows: string[][] = [];
for (const t of THREADS) {
  be.setThreads(t);
  let f32 = 0;
  const half = { f16: 0, bf16: 0 };
  for (let r = 0; r < ROUNDS; r++) {
    f32 = Math.max(f32, flops / best(() => be.gemm({ m: M, n: N, k: K, a, b: wPre, c, transB: true })) / 1e9);
    for (const dt of ['f16', 'bf16'] as const) {
      half[dt] = Math.max(half[dt], flops / best(() => be.matmulHalf(a, wPreHalf[dt], dt, c, M, N, K)) / 1e9);
    }
  }
  preRows.push([
    `${M}x${N}x${K}`, String(t), fmt(f32), fmt(half.f16), fmt(half.bf16), `${(half.f16 / f32).toFixed(2)}x`,
    `${(half.bf16 / f32).toFixed(2)}x`,
  ]);
}
console.log(`\nPrefill matmulHalf (GFLOP/s), y = x·Wᵀ: f32 SGEMM NT vs W as f16 / bf16 (widened while packing B)`);
table(['m×n×k', 'threads', 'f32 NT', 'f16', 'bf16', 'f16/f32', 'bf16/f32'], preRows);

/**
 * GEMM and decode-matvec throughput of the native backend, with OpenBLAS measured in the same run as the yardstick.
 *
 *   npm run bench:gemm            (node --import tsx bench/gemm.ts)
 *
 * Header: CPU model (/proc/cpuinfo "model name") and whether it has AVX-512, echoatt's SIMD level (simdLevel: the
 * native addon's avx512 / avx2 / portable kernel set), and the OpenBLAS the peer links against: its
 * openblas_get_config() string and the core it picked (openblas_get_corename(), cross-checked with the "Core: …"
 * line OpenBLAS prints on stderr under OPENBLAS_VERBOSE=2). If the CPU has AVX-512 but OpenBLAS picked a core
 * without AVX-512 kernels (an old distro build that does not know the CPU), the header says so.
 *
 * SGEMM 512×2048×2048 in the three layouts a Linear layer uses (NN: dx = dy·W, NT: y = x·Wᵀ, TN: dW = dyᵀ·x) on
 * 1 and 2 threads. OpenBLAS runs in a separate process (bench/openblas_gemm.c, compiled here against Debian's
 * libopenblas-dev) with OPENBLAS_NUM_THREADS set and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from its
 * environment only, so OpenBLAS runs its own CPU detection and its best kernels for this CPU (those variables,
 * set for old OpenBLAS builds, would pin it to e.g. Haswell AVX2 kernels; this process, the tests and the shell keep
 * them). Each of BENCH_ROUNDS rounds times both sides back to back, alternating which goes first (echoatt then
 * OpenBLAS, then OpenBLAS then echoatt, …), each side's round figure being its best of BENCH_REPS runs after
 * warm-up; a table cell is the median over rounds with the min–max beside it, and the ratio is the median of the
 * per-round ratios, so a burst of background load on a shared machine moves one round, not the verdict.
 * Matvec 1×2048×5632 rotates through weight matrices totalling more than the last-level cache, so it measures
 * DRAM streaming, next to the copy bandwidth of the same machine.
 * matmulHalf (weights kept as f16 / bf16 bits, widened in registers): decode 1×2048×5632 in GB/s of W read (2 bytes
 * per weight) beside the f32 matvec (4 bytes per weight); prefill 512×2048×2048 in GFLOP/s beside f32 SGEMM in the
 * same layout (NT, y = x·Wᵀ). These are measured the same way: alternating rounds, medians, ratios as the median of
 * per-round ratios with min–max.
 * Env: BENCH_REPS (timed repetitions per side per round, default 7), BENCH_ROUNDS (alternating rounds, default 5;
 * fewer than 5 is for quick checks and the header flags it).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { simdLevel } from '../src/backend/index.js';
import { loadNativeBackend, nativeLoadError } from '../src/backend/native.js';
import { f32ToBf16, f32ToF16 } from '../src/tensor/dtype.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cacheDir = path.join(here, '.cache');
const REPS = Number(process.env.BENCH_REPS ?? 7);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
if (!Number.isInteger(REPS) || REPS < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`BENCH_REPS and BENCH_ROUNDS must be positive integers (got ${REPS}, ${ROUNDS})`);
  process.exit(2);
}
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

/** Median, min and max of per-round values. */
interface Spread {
  med: number;
  min: number;
  max: number;
}
function spread(xs: number[]): Spread {
  const s = [...xs].sort((p, q) => p - q);
  const h = s.length >> 1;
  return { med: s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2, min: s[0], max: s[s.length - 1] };
}
/** Runs the thunks once each in round `r`'s order: as given on even rounds, reversed on odd ones. */
function alternate(r: number, sides: (() => void)[]): void {
  for (const f of r % 2 === 0 ? sides : [...sides].reverse()) f();
}

// ---- Machine and OpenBLAS identity --------------------------------------------------------------------------------
function cpuInfo(): { model: string; flags: Set<string> } {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
    const name = field('model name') || (os.cpus()[0]?.model ?? 'unknown');
    // Virtual machines often report a bare "AMD EPYC": family / model / stepping say which generation it is.
    const fms = ['cpu family', 'model', 'stepping'].map(field);
    const model = fms.every((v) => v !== undefined) ? `${name} (family ${fms[0]}, model ${fms[1]}, stepping ${fms[2]})` : name;
    return { model, flags: new Set(field('flags')?.split(/\s+/) ?? []) };
  } catch {
    return { model: os.cpus()[0]?.model ?? 'unknown', flags: new Set() }; // not Linux
  }
}

/** Set for old OpenBLAS builds; they pin the kernel choice, so the peer runs without them. */
const PEER_STRIPPED = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;
function peerEnv(extra: Record<string, string>, strip = true): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (strip) for (const k of PEER_STRIPPED) delete env[k];
  delete env.OPENBLAS_VERBOSE;
  return { ...env, ...extra };
}

/** OpenBLAS core names whose SGEMM kernels use AVX-512 (kernel/x86_64/KERNEL.<core>). */
const AVX512_CORES = new Set(['skylakex', 'cooperlake', 'sapphirerapids']);

interface Peer {
  exe: string;
  config: string;
  core: string;
  /** The core named by OPENBLAS_VERBOSE=2 on stderr, when it printed one. */
  verboseCore?: string;
  /** The core it would pick with this process's environment unchanged, when that differs. */
  inheritedCore?: string;
}

/** Compiles the OpenBLAS driver once and asks it what it runs as; returns that, or the reason it cannot be used. */
function openBlasPeer(): Peer | { why: string } {
  const src = path.join(here, 'openblas_gemm.c');
  const exe = path.join(cacheDir, 'openblas_gemm');
  fs.mkdirSync(cacheDir, { recursive: true });
  if (!(fs.existsSync(exe) && fs.statSync(exe).mtimeMs > fs.statSync(src).mtimeMs)) {
    const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', exe, src, '-lopenblas'], { encoding: 'utf8' });
    if (cc.error || cc.status !== 0) {
      return { why: 'OpenBLAS not found (install Debian libopenblas-dev: apt-get install -y libopenblas-dev)' };
    }
  }
  const info = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(exe, ['info'], { encoding: 'utf8', env });
    if (r.error || r.status !== 0) return undefined;
    const field = (name: string) => new RegExp(`^${name} (.*)$`, 'm').exec(r.stdout)?.[1]?.trim();
    return { config: field('config') ?? '?', core: field('core') ?? '?', verbose: /Core:\s*(\S+)/.exec(r.stderr)?.[1] };
  };
  const mine = info(peerEnv({ OPENBLAS_VERBOSE: '2' }));
  if (!mine) return { why: `${exe} info failed` };
  const inherited = PEER_STRIPPED.some((k) => process.env[k] !== undefined) ? info(peerEnv({}, false)) : undefined;
  return {
    exe,
    config: mine.config.replace(/^OpenBLAS\s+/, ''),
    core: mine.core,
    verboseCore: mine.verbose,
    inheritedCore: inherited && inherited.core !== mine.core ? inherited.core : undefined,
  };
}

/** One OpenBLAS timing: GFLOP/s and the core that produced it, or why it failed. */
function openBlasGflops(exe: string, layout: string, threads: number): { gflops: number; core: string } | { why: string } {
  const r = spawnSync(exe, [String(M), String(N), String(K), layout, String(REPS)], {
    encoding: 'utf8',
    env: peerEnv({ OPENBLAS_NUM_THREADS: String(threads) }),
  });
  const [v, core] = (r.stdout ?? '').trim().split('\t');
  const g = Number.parseFloat(v);
  if (r.error || r.status !== 0 || !Number.isFinite(g)) {
    return { why: `${layout} ${threads}t: ${r.error?.message ?? `exit ${r.status}`} ${(r.stderr ?? '').trim()}`.trim() };
  }
  return { gflops: g, core: core ?? '?' };
}

const fmt = (v: number | undefined, d = 1) => (v === undefined ? '—' : v.toFixed(d));
const pad = (s: string, w: number) => s.padStart(w);
/** "median (min–max)", or just the value for a single round. */
function fmtSpread(s: Spread | undefined, d = 1, unit = ''): string {
  if (!s) return '—';
  return ROUNDS === 1 ? `${s.med.toFixed(d)}${unit}` : `${s.med.toFixed(d)}${unit} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : pad(c, widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

const cpu = cpuInfo();
const cpuAvx512 = cpu.flags.has('avx512f');
const ob = openBlasPeer();
console.log(`echoatt native GEMM / matvec benchmark`);
console.log(
  `cpu: ${cpu.model} (${os.cpus().length} logical, ${cpuAvx512 ? 'AVX-512' : cpu.flags.has('avx2') ? 'AVX2, no AVX-512' : 'no AVX2'})` +
    `, echoatt simd: ${simdLevel(be)}` +
    (process.env.ECHOATT_NATIVE_SIMD ? ` (ECHOATT_NATIVE_SIMD=${process.env.ECHOATT_NATIVE_SIMD})` : '') +
    `, node ${process.version}`,
);
if ('why' in ob) {
  console.log(`OpenBLAS: column skipped: ${ob.why}`);
} else {
  const peerAvx512 = AVX512_CORES.has(ob.core.toLowerCase());
  console.log(
    `OpenBLAS ${ob.config}, core ${ob.core}${peerAvx512 ? ' (AVX-512 kernels)' : ' (no AVX-512 kernels)'}` +
      ` [openblas_get_corename; OPENBLAS_VERBOSE=2: ${ob.verboseCore ? `"Core: ${ob.verboseCore}"` : 'no core line'}]`,
  );
  if (cpuAvx512 && !peerAvx512) {
    console.log(
      `  note: this CPU has AVX-512 but this OpenBLAS build picked ${ob.core}, which has no AVX-512 SGEMM kernels ` +
        `(it does not recognise the CPU); the OpenBLAS column is this distro build at its best, not OpenBLAS at its best`,
    );
  }
  const found = PEER_STRIPPED.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  if (found.length) {
    console.log(
      `  ${found.join(' ')} removed from the OpenBLAS process's environment only` +
        (ob.inheritedCore ? ` (with them it would run ${ob.inheritedCore} kernels)` : ''),
    );
  }
}
console.log(
  `best of ${REPS} runs after warm-up per side per round; ${ROUNDS} alternating round${ROUNDS === 1 ? '' : 's'}, ` +
    `cells are median (min–max) over rounds, ratios the median of per-round ratios` +
    (ROUNDS < 5 ? ` — fewer than 5 rounds: a quick check, not a result` : '') +
    '\n',
);

// ---- SGEMM ------------------------------------------------------------------------------------------------------
const a = randomArray(M * K, 1);
const b = randomArray(K * N, 2);
const c = new Float32Array(M * N);
const flops = 2 * M * N * K;
const gemmRows: string[][] = [];
const peerErrors: string[] = [];
const peerCores = new Set<string>();
for (const t of THREADS) {
  for (const l of LAYOUTS) {
    const ours: number[] = [];
    const theirs: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let o: number | undefined;
      let p: number | undefined;
      alternate(r, [
        () => {
          be.setThreads(t);
          o = flops / best(() => be.gemm({ m: M, n: N, k: K, a, b, c, transA: l.transA, transB: l.transB })) / 1e9;
        },
        () => {
          if ('why' in ob) return;
          const res = openBlasGflops(ob.exe, l.name, t);
          if ('why' in res) peerErrors.push(res.why);
          else {
            p = res.gflops;
            peerCores.add(res.core);
          }
        },
      ]);
      ours.push(o!);
      if (p !== undefined) {
        theirs.push(p);
        ratios.push(o! / p);
      }
    }
    gemmRows.push([
      `${l.name} ${M}x${N}x${K}`, String(t), fmtSpread(spread(ours)), theirs.length ? fmtSpread(spread(theirs)) : '—',
      ratios.length ? fmtSpread(spread(ratios), 2, 'x') + (ratios.length < ROUNDS ? ` [${ratios.length} rounds]` : '') : '—',
    ]);
  }
}
console.log('SGEMM (GFLOP/s, median (min–max) over rounds; ratio = echoatt / OpenBLAS)');
table(['layout m×n×k', 'threads', 'echoatt', 'OpenBLAS', 'ratio'], gemmRows);
if (!('why' in ob) && [...peerCores].some((x) => x !== ob.core)) {
  console.log(`OpenBLAS timing runs reported core(s) ${[...peerCores].join(', ')}, not ${ob.core}`);
}
if (peerErrors.length) console.log(`OpenBLAS runs failed ${peerErrors.length}×, first: ${peerErrors[0]}`);

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
  // One "rep" sweeps every matrix once so each call streams cold weights. Rounds alternate the order of f32 / f16 /
  // bf16 so a burst of background load hits all three; ratios are taken per round, then the median.
  const secs = { f32: [] as number[], f16: [] as number[], bf16: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    alternate(r, [
      () => secs.f32.push(best(() => {
        for (let i = 0; i < nW; i++) matvecOnce();
      }) / nW),
      ...(['f16', 'bf16'] as const).map((dt) => () => secs[dt].push(best(() => {
        for (let i = 0; i < nH; i++) be.matmulHalf(x, halves[dt][nextH++ % nH], dt, y, 1, MN, MK);
      }) / nH)),
    ]);
  }
  const gbs = spread(secs.f32.map((s) => wBytes / s / 1e9));
  const f32Ms = spread(secs.f32.map((s) => s * 1e3));
  mvRows.push([
    `1x${MK}x${MN} (${nW} × ${(wBytes / 2 ** 20).toFixed(0)} MiB)`, String(t), fmtSpread(gbs), fmt(copyGBs),
    `${(gbs.med / copyGBs).toFixed(2)}x`, fmt(f32Ms.med, 2),
  ]);
  halfRows.push([`f32 matvec (${nW} × ${(wBytes / 2 ** 20).toFixed(0)} MiB)`, String(t), fmtSpread(gbs), '1.00x', fmt(f32Ms.med, 3), '1.00x']);
  for (const dt of ['f16', 'bf16'] as const) {
    const h = secs[dt];
    halfRows.push([
      `${dt} matmulHalf (${nH} × ${(hBytes / 2 ** 20).toFixed(0)} MiB)`, String(t), fmtSpread(spread(h.map((s) => hBytes / s / 1e9))),
      fmtSpread(spread(h.map((s, r) => (hBytes / s) / (wBytes / secs.f32[r]))), 2, 'x'), fmt(spread(h).med * 1e3, 3),
      fmtSpread(spread(h.map((s, r) => secs.f32[r] / s)), 2, 'x'),
    ]);
  }
}
console.log('\nDecode matvec, W (5632, 2048) streamed from DRAM (GB/s = bytes of W read per second; median (min–max) over rounds)');
table(['shape', 'threads', 'GB/s', 'copy r+w GB/s', 'ratio', 'ms/call'], mvRows);
console.log(`copy: ${(copyN * 4 / 2 ** 20).toFixed(0)} MiB TypedArray.set, ${fmt(copyGBs / 2)} GB/s copied = ${fmt(copyGBs)} GB/s of read + write traffic`);

console.log(`\nDecode matmulHalf 1x${MK}x${MN}, half-precision W widened in registers (GB/s = bytes of W read per second; ratios per round, median (min–max))`);
table(['kernel', 'threads', 'GB/s', 'GB/s vs f32', 'ms/call', 'tokens/s vs f32'], halfRows);

// ---- Prefill matmulHalf -------------------------------------------------------------------------------------------
// y = x·Wᵀ with W (N, K) as half bits: the SGEMM driver widens W while packing its B panels.
const wPre = randomArray(N * K, 2);
const wPreHalf = { f16: f32ToF16(wPre), bf16: f32ToBf16(wPre) };
const preRows: string[][] = [];
for (const t of THREADS) {
  be.setThreads(t);
  const gf = { f32: [] as number[], f16: [] as number[], bf16: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    alternate(r, [
      () => gf.f32.push(flops / best(() => be.gemm({ m: M, n: N, k: K, a, b: wPre, c, transB: true })) / 1e9),
      ...(['f16', 'bf16'] as const).map((dt) => () => gf[dt].push(flops / best(() => be.matmulHalf(a, wPreHalf[dt], dt, c, M, N, K)) / 1e9)),
    ]);
  }
  preRows.push([
    `${M}x${N}x${K}`, String(t), fmtSpread(spread(gf.f32)), fmtSpread(spread(gf.f16)), fmtSpread(spread(gf.bf16)),
    fmtSpread(spread(gf.f16.map((v, r) => v / gf.f32[r])), 2, 'x'), fmtSpread(spread(gf.bf16.map((v, r) => v / gf.f32[r])), 2, 'x'),
  ]);
}
console.log(`\nPrefill matmulHalf (GFLOP/s, median (min–max) over rounds), y = x·Wᵀ: f32 SGEMM NT vs W as f16 / bf16 (widened while packing B)`);
table(['m×n×k', 'threads', 'f32 NT', 'f16', 'bf16', 'f16/f32', 'bf16/f32'], preRows);

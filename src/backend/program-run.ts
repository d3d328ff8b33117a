/**
 * Checking and interpreting {@link StepProgram}s. {@link checkProgram} proves once, when a program is made, that every
 * instruction stays inside its arrays at every position it may run at (extents only grow with `pos`, so checking at
 * `maxPos − 1` covers all), which is what lets the native runner skip per-op checks. {@link interpretProgram} is the
 * plain implementation: it runs each instruction as the matching {@link Backend} call, so any backend can run
 * programs and tests hold the native runner against it. Instructions that run one op-table kernel are checked and
 * run from its entry (operand sizes by its size rules); the others are written out here.
 */
import { gatherHeads } from './gather-heads.js';
import type { Backend } from './backend.js';
import { decodeProgram, type Decoded, type ProgramArray, type Ref, type StepProgram, type StepRunner } from './program.js';
import { ShapeError } from '../errors.js';
import { stepEntries, type AnyOpEntry, type TableOp } from './ops/index.js';
import { isArrayOperand, type StepContext } from './ops/spec.js';
import { bf16ToF32, f16ToF32 } from '../tensor/dtype.js';

type Kind = 'f32' | 'u16' | 'i32';
const KIND_OF = (a: ProgramArray): Kind => (a instanceof Float32Array ? 'f32' : a instanceof Uint16Array ? 'u16' : 'i32');

/** Throws a ShapeError naming the instruction if any access could fall outside its array, or a type is wrong. */
export function checkProgram(p: StepProgram): void {
  if (!(Number.isInteger(p.maxPos) && p.maxPos >= 1)) throw new ShapeError('stepProgram', `maxPos must be a positive integer, got ${p.maxPos}`);
  if (!(Number.isInteger(p.vocab) && p.vocab >= 1)) throw new ShapeError('stepProgram', `vocab must be a positive integer, got ${p.vocab}`);
  const S = p.maxPos;
  decodeProgram(p).forEach((d, i) => {
    const at = `instruction ${i} (${d.op})`;
    const need = (name: string, kind: Kind, extent: number, optional = false): void => {
      const r = d[name] as Ref;
      if (optional && r.array === -1) return;
      const a = p.arrays[r.array];
      if (a === undefined) throw new ShapeError('stepProgram', `${at}: ${name} names array ${r.array}, which does not exist`);
      if (KIND_OF(a) !== kind) throw new ShapeError('stepProgram', `${at}: ${name} must be ${kind}, got ${KIND_OF(a)}`);
      if (!(Number.isInteger(r.offset) && r.offset >= 0 && extent >= 0 && r.offset + extent <= a.length)) {
        throw new ShapeError('stepProgram', `${at}: ${name} needs ${extent} elements from offset ${r.offset}, array has ${a.length}`);
      }
    };
    const n = (name: string): number => {
      const v = d[name] as number;
      if (!(Number.isInteger(v) && v >= 0)) throw new ShapeError('stepProgram', `${at}: ${name} must be a non-negative integer, got ${v}`);
      return v;
    };
    const table = STEPS.get(d.op);
    if (table) checkTableStep(table.entry, d, need, n);
    else checkOne(d, need, n, S, p.vocab, at, p);
  });
}

/** A table op's instruction: each ref the entry's size rule long, with the instruction's integers (and `fixed`). */
function checkTableStep(e: AnyOpEntry, d: Decoded, need: (name: string, kind: Kind, extent: number) => void, n: (name: string) => number): void {
  const spec = e.step!;
  const s: Record<string, number> = { ...spec.fixed };
  for (const kind of spec.operands) if (!kind.includes(':')) s[kind] = n(kind);
  for (const o of e.operands) {
    if (isArrayOperand(o) && spec.operands.includes(`r:${o.name}`)) need(o.name, o.kind as Kind, o.size(s, noLen));
  }
}

/** Run a table op's instruction as its method: refs as views of their size, the rest by name, `bind` where given. */
function tableStep(be: Backend, op: TableOp, e: AnyOpEntry, d: Decoded, ctx: StepContext): void {
  const spec = e.step!;
  const s: Record<string, number> = { ...spec.fixed };
  for (const kind of spec.operands) if (!kind.includes(':')) s[kind] = d[kind] as number;
  const args = e.operands.map((o) => {
    const bind = spec.bind?.[o.name];
    if (bind) return bind(d, ctx);
    if (o.name in s) return s[o.name];
    const v = d[o.name];
    return isArrayOperand(o) && v !== undefined ? ctx.view(v as Ref, o.size(s, noLen)) : v;
  });
  (be[op] as (...a: unknown[]) => unknown).apply(be, args);
}

const STEPS = stepEntries();

function noLen(name: string): number {
  throw new ShapeError('stepProgram', `a step instruction's sizes cannot follow the length of ${name}`);
}

function checkOne(
  d: Decoded, need: (name: string, kind: Kind, extent: number, optional?: boolean) => void, n: (name: string) => number,
  S: number, vocab: number, at: string, p: StepProgram,
): void {
  switch (d.op) {
    case 'embed':
      need('table', n('dtype') === 0 ? 'f32' : 'u16', vocab * n('dim'));
      need('out', 'f32', n('dim'));
      return;
    case 'gemvAdd':
      if (n('ldb') < n('k')) throw new ShapeError('stepProgram', `${at}: ldb ${n('ldb')} < k ${n('k')}`);
      need('x', 'f32', n('k'));
      need('w', 'f32', n('n') === 0 ? 0 : (n('n') - 1) * n('ldb') + n('k'));
      need('y', 'f32', n('n'));
      return;
    case 'zero':
      need('out', 'f32', n('n'));
      return;
    case 'rope':
      need('x', 'f32', n('heads') * n('headDim'));
      need('cos', 'f32', S * (n('headDim') >> 1));
      need('sin', 'f32', S * (n('headDim') >> 1));
      return;
    case 'store':
      need('src', 'f32', n('row'));
      need('cache', 'f32', S * n('row'));
      return;
    case 'attend':
    case 'probsV': {
      const [H, Hkv, D] = [n('heads'), n('kvHeads'), n('headDim')];
      if (Hkv === 0 || H % Hkv !== 0) throw new ShapeError('stepProgram', `${at}: ${H} heads are not a multiple of ${Hkv} KV heads`);
      if (n('kvStride') < S * Hkv * D) throw new ShapeError('stepProgram', `${at}: kvStride ${n('kvStride')} < ${S} positions × ${Hkv * D}`);
      need('v', 'f32', S * Hkv * D);
      need('out', 'f32', H * D);
      if (d.op === 'attend') {
        n('window');
        need('q', 'f32', H * D);
        need('k', 'f32', S * Hkv * D);
        need('probs', 'f32', H * S, true);
      } else {
        need('probs', 'f32', H * S);
        need('map', 'i32', H, true);
        const map = d.map as Ref;
        if (map.array !== -1) {
          need('scratch', 'f32', H * S);
          const m = (p.arrays[map.array] as Int32Array).subarray(map.offset, map.offset + H);
          if (m.some((h) => !(h >= 0 && h < H))) throw new ShapeError('stepProgram', `${at}: head map entries must lie in [0, ${H})`);
        }
      }
      return;
    }
  }
}

/** Run `p` through `be`'s ordinary calls, one instruction at a time. `p` must have passed {@link checkProgram}. */
export function interpretProgram(be: Backend, p: StepProgram): StepRunner {
  const code = decodeProgram(p);
  const posArr = new Int32Array(1);
  const view = (r: Ref, n: number): Float32Array => (p.arrays[r.array] as Float32Array).subarray(r.offset, r.offset + n);
  const ctx: StepContext = { arrays: p.arrays, view };
  let ns: Float64Array | null = null;
  const run = (token: number, pos: number) => {
    checkStep(p, token, pos);
    posArr[0] = pos;
    const s = pos + 1;
    code.forEach((d, i) => {
      const t0 = ns ? performance.now() : 0;
      const table = STEPS.get(d.op);
      if (table) tableStep(be, table.op, table.entry, d, ctx);
      else step(be, p, d, view, token, pos, s, posArr);
      if (ns) ns[i] += (performance.now() - t0) * 1e6;
    });
  };
  return Object.assign(run, {
    profile(on: boolean): Float64Array {
      const out = ns ? ns.slice() : new Float64Array(code.length);
      ns = on ? new Float64Array(code.length) : null;
      return out;
    },
  });
}

/** The per-step checks every runner makes: the token and position are the only inputs a program has. */
export function checkStep(p: StepProgram, token: number, pos: number): void {
  if (!(Number.isInteger(token) && token >= 0 && token < p.vocab)) throw new ShapeError('stepProgram', `token id ${token} is outside [0, ${p.vocab})`);
  if (!(Number.isInteger(pos) && pos >= 0 && pos < p.maxPos)) throw new ShapeError('stepProgram', `position ${pos} is outside [0, ${p.maxPos})`);
}

function step(
  be: Backend, p: StepProgram, d: Decoded, view: (r: Ref, n: number) => Float32Array, token: number, pos: number, s: number, posArr: Int32Array,
): void {
  const r = (name: string) => d[name] as Ref;
  const n = (name: string) => d[name] as number;
  switch (d.op) {
    case 'embed': {
      const dim = n('dim');
      const t = p.arrays[r('table').array];
      const out = view(r('out'), dim);
      if (t instanceof Float32Array) be.embedding(t, Int32Array.of(token), out, p.vocab, dim);
      else (n('dtype') === 2 ? bf16ToF32 : f16ToF32)((t as Uint16Array).subarray(token * dim, (token + 1) * dim), out);
      return;
    }
    case 'gemvAdd':
      be.gemm({
        m: 1, n: n('n'), k: n('k'), a: p.arrays[r('x').array] as Float32Array, aOff: r('x').offset, lda: n('lda'),
        b: p.arrays[r('w').array] as Float32Array, bOff: r('w').offset, ldb: n('ldb'), transB: true,
        c: p.arrays[r('y').array] as Float32Array, cOff: r('y').offset, ldc: n('ldc'), beta: 1,
      });
      return;
    case 'zero':
      view(r('out'), n('n')).fill(0);
      return;
    case 'rope': {
      const x = view(r('x'), n('heads') * n('headDim'));
      const cos = p.arrays[r('cos').array] as Float32Array;
      const sin = p.arrays[r('sin').array] as Float32Array;
      be.rope(x, 1, n('heads'), n('headDim'), posArr, cos.subarray(r('cos').offset), sin.subarray(r('sin').offset), n('half') ? 'half' : 'interleaved');
      return;
    }
    case 'store': {
      const row = n('row');
      view(r('cache'), p.maxPos * row).set(view(r('src'), row), pos * row);
      return;
    }
    case 'attend':
    case 'probsV':
      attendStep(be, p, d, view, pos, s);
      return;
  }
}

function attendStep(be: Backend, p: StepProgram, d: Decoded, view: (r: Ref, n: number) => Float32Array, pos: number, s: number): void {
  const r = (name: string) => d[name] as Ref;
  const n = (name: string) => d[name] as number;
  const [H, Hkv, D, kvStride] = [n('heads'), n('kvHeads'), n('headDim'), n('kvStride')];
  const kv = (name: string) => view(r(name), p.maxPos * Hkv * D);
  const shape = { batch: 1, tq: 1, s, nHeads: H, nKvHeads: Hkv, headDim: D, kvBatchStride: kvStride };
  if (d.op === 'attend') {
    const probs = r('probs').array === -1 ? undefined : view(r('probs'), H * s);
    be.attention({ ...shape, q: view(r('q'), H * D), k: kv('k'), v: kv('v'), out: view(r('out'), H * D), probs, qPos0: pos, scale: n('scale'), window: n('window') });
    return;
  }
  let probs = view(r('probs'), H * s);
  if (r('map').array !== -1) {
    const map = (p.arrays[r('map').array] as Int32Array).subarray(r('map').offset, r('map').offset + H);
    probs = gatherHeads(probs, map, 1, s, view(r('scratch'), H * s));
  }
  be.probsTimesV({ ...shape, probs, v: kv('v'), out: view(r('out'), H * D) });
}

/**
 * Step programs: one decode step of a whole model (one token, one sequence) as a list of kernel calls over fixed
 * buffers, run by the backend in ONE call. On a small model a step is mostly overhead — a JS → native crossing,
 * argument checks and fresh arrays per op, dozens of ops per layer — not arithmetic; a program pays the checks once,
 * when it is made ({@link checkProgram}), and a step costs one crossing.
 *
 * A program is data: `code` is a sequence of instructions (an opcode and its fixed operands, see {@link OPS}); an
 * operand that names memory is a ref `(array, offset)` into `arrays` (weights, the KV cache, activation scratch and
 * the logits); `consts` holds the floating-point operands (norm eps, attention scale) as doubles, exactly as the
 * op-by-op path passes them. Only the token and its position change between steps: RoPE rotates by `pos`, K/V rows
 * are stored at `pos`, attention sees `s = pos + 1` positions. The same kernel calls in the same order as the
 * op-by-op decoder, so a program's logits equal `LlamaModel.forward`'s bit for bit on every backend.
 *
 * @example
 * ```ts
 * const b = new ProgramBuilder();
 * const x = b.scratch(dim);
 * b.emit('embed', b.ref(table), 0, x, dim);
 * const run = backend.stepProgram(b.finish({ maxPos: 256, vocab }));
 * run(tokenId, pos);
 * ```
 */
import { ShapeError } from '../errors.js';
import { stepEntries, type TableStepName } from './ops/index.js';
import type { Ref } from './ops/spec.js';
import type { ProgramArray, StepProgram } from './program-types.js';

export type { ProgramArray, StepProgram, StepRunner } from './program-types.js';
export type { Ref } from './ops/spec.js';

/**
 * The instruction set: each instruction's operands after the opcode, in order; `r:` a ref (2 ints), `c:` an index
 * into `consts`, the rest plain integers. Semantics are those of the {@link Backend} method named in the comment, at
 * batch 1, T = 1. The instructions that run one table op (`rmsnorm`, `matvec`, `matmulHalf`, `add`, `siluMul`,
 * `geluMul`, `scale`) take their opcode and operands from its entry's `step` (`ops/`); the others are listed here.
 * Opcodes are those native/program.cc decodes.
 */
const OWN_OPS = {
  /** out[0:dim] = row `token` of table (dtype 0 f32, 1 f16, 2 bf16: widened). */
  embed: { opcode: 0, operands: ['r:table', 'dtype', 'r:out', 'dim'] },
  /** gemm m = 1, transB, beta = 1: y[0:n] += x[0:k] · W(n, k; row stride ldb)ᵀ, with lda / ldc as given. */
  gemvAdd: { opcode: 4, operands: ['r:x', 'r:w', 'r:y', 'n', 'k', 'lda', 'ldb', 'ldc'] },
  /** rope(x, 1, heads, headDim, [pos], cos, sin, style (0 interleaved, 1 half)). */
  rope: { opcode: 6, operands: ['r:x', 'heads', 'headDim', 'half', 'r:cos', 'r:sin'] },
  /** cache[pos·row : (pos+1)·row] = src[0:row]. */
  store: { opcode: 7, operands: ['r:src', 'r:cache', 'row'] },
  /**
   * attention over cache positions 0..pos (q_pos0 = pos, s = pos + 1); probs `(H, s)` when the ref is not none;
   * `window` > 0 a sliding window (0: none).
   */
  attend: { opcode: 8, operands: ['r:q', 'r:k', 'r:v', 'r:out', 'r:probs', 'heads', 'kvHeads', 'headDim', 'c:scale', 'kvStride', 'window'] },
  /** probsTimesV over s = pos + 1; with a head map, head h reads probability head map[h] (gathered into scratch). */
  probsV: { opcode: 9, operands: ['r:probs', 'r:v', 'r:out', 'r:map', 'r:scratch', 'heads', 'kvHeads', 'headDim', 'kvStride'] },
  /** out[0:n] = 0. */
  zero: { opcode: 11, operands: ['r:out', 'n'] },
} as const;

export type OpName = keyof typeof OWN_OPS | TableStepName;

/** Every instruction's operands, in opcode order. */
export const OPS: Readonly<Record<OpName, readonly string[]>> = instructionSet();

function instructionSet(): Record<OpName, readonly string[]> {
  const own = Object.entries(OWN_OPS).map(([name, o]) => ({ name, opcode: o.opcode as number, operands: o.operands as readonly string[] }));
  const all = [...own, ...[...stepEntries().values()].map(({ entry }) => entry.step!)].sort((a, b) => a.opcode - b.opcode);
  all.forEach((o, i) => {
    if (o.opcode !== i) throw new Error(`step-program opcodes must run 0..${all.length - 1} without gaps or repeats (${o.name}: ${o.opcode})`);
  });
  return Object.fromEntries(all.map((o) => [o.name, o.operands])) as Record<OpName, readonly string[]>;
}

/** Opcode of each instruction: its index in {@link OPS} (native/program.cc keeps the same numbering). */
export const OPCODES: readonly OpName[] = Object.keys(OPS) as OpName[];
type Operand = Ref | number;

export const NONE: Ref = { array: -1, offset: 0 };

/** Collects instructions, arrays (each once) and an activation arena. */
export class ProgramBuilder {
  private readonly code: number[] = [];
  private readonly consts: number[] = [];
  private readonly arrays: ProgramArray[] = [];
  private readonly index = new Map<ProgramArray, number>();
  private readonly labels: string[] = [];
  private arenaSize = 0;
  private arenaIndex = -1;
  /** Label given to the instructions emitted from now on. */
  label = '';

  /** A ref to `a` at `offset`. */
  ref(a: ProgramArray, offset = 0): Ref {
    let i = this.index.get(a);
    if (i === undefined) {
      i = this.arrays.push(a) - 1;
      this.index.set(a, i);
    }
    return { array: i, offset };
  }

  /** `n` floats of activation scratch (64-byte aligned within one arena allocated at {@link finish}). */
  scratch(n: number): Ref {
    if (this.arenaIndex < 0) this.arenaIndex = this.arrays.push(new Float32Array(0)) - 1;
    const offset = this.arenaSize;
    this.arenaSize += Math.ceil(n / 16) * 16;
    return { array: this.arenaIndex, offset };
  }

  emit(op: OpName, ...operands: Operand[]): void {
    const spec = OPS[op];
    if (operands.length !== spec.length) throw new ShapeError('ProgramBuilder', `${op} takes ${spec.length} operands, got ${operands.length}`);
    this.code.push(OPCODES.indexOf(op));
    this.labels.push(this.label ? `${this.label} ${op}` : op);
    spec.forEach((kind, i) => {
      const v = operands[i];
      if (kind.startsWith('r:')) {
        const r = v as Ref;
        this.code.push(r.array, r.offset);
      } else if (kind.startsWith('c:')) {
        this.code.push(this.consts.push(v as number) - 1);
      } else {
        this.code.push(v as number);
      }
    });
  }

  finish(limits: { maxPos: number; vocab: number }): StepProgram {
    if (this.arenaIndex >= 0) this.arrays[this.arenaIndex] = new Float32Array(this.arenaSize);
    return { code: Int32Array.from(this.code), consts: Float64Array.from(this.consts), arrays: this.arrays.slice(), labels: this.labels.slice(), ...limits };
  }
}

/** One decoded instruction: operands by name (refs as {@link Ref}, consts resolved). */
export type Decoded = { op: OpName } & Record<string, Ref | number>;

/** The instructions of a program, decoded (for checking, interpreting and printing). */
export function decodeProgram(p: StepProgram): Decoded[] {
  const out: Decoded[] = [];
  for (let i = 0; i < p.code.length;) {
    const op = OPCODES[p.code[i++]];
    if (op === undefined) throw new ShapeError('stepProgram', `unknown opcode ${p.code[i - 1]} at ${i - 1}`);
    const d: Decoded = { op } as Decoded;
    for (const kind of OPS[op]) {
      const name = kind.replace(/^[rc]:/, '');
      if (i >= p.code.length) throw new ShapeError('stepProgram', `${op}: program ends inside its operands`);
      if (kind.startsWith('r:')) {
        d[name] = { array: p.code[i], offset: p.code[i + 1] };
        i += 2;
      } else if (kind.startsWith('c:')) {
        const c = p.consts[p.code[i++]];
        if (c === undefined) throw new ShapeError('stepProgram', `${op}: constant index out of range`);
        d[name] = c;
      } else {
        d[name] = p.code[i++];
      }
    }
    out.push(d);
  }
  return out;
}

/**
 * The op table: one entry per kernel whose operands are plain arrays and numbers (see `spec.ts` for what an entry
 * holds). The entries are the `Backend` methods of those kernels: `backend.ts` takes their types from the
 * entries' references and their docs from the doc comments on the entries' keys. From here also follow the checked
 * wrapper, the native and reference backends' methods and, for step instructions, the program's operands, checks
 * and interpreter.
 *
 * Adding a kernel (one whose JS arguments are its C++ parameters) touches three files:
 * 1. its entry, with its doc comment and its reference, in one of the family files below (`linear.ts`, `rows.ts`,
 *    `pointwise.ts`, `stats.ts`), wrapped in `op`;
 * 2. its line in `native/kernel_list.h` (JS name, C++ name, C++ parameters), which makes its `Kernels` member, its
 *    place in every ISA's table and its addon export;
 * 3. its native body, in one of `native/*_body.h`.
 * A kernel whose native arguments differ from its JS ones maps them with the entry's `native`; one that needs its
 * own N-API glue (an argument struct, a return value) is written out in `native/addon.cc` and `native/kernels.h`.
 */
import type { AnyOpEntry } from './spec.js';
import { LINEAR_OPS } from './linear.js';
import { ROW_OPS } from './rows.js';
import { POINTWISE_OPS } from './pointwise.js';
import { STATS_OPS } from './stats.js';

export type { AnyOpEntry, OpEntry, StepSpec } from './spec.js';

const ENTRIES = { ...LINEAR_OPS, ...ROW_OPS, ...POINTWISE_OPS, ...STATS_OPS };
type Entries = typeof ENTRIES;

/** The `Backend` methods the table describes. */
export type TableOp = keyof Entries;

/** The names of the step-program instructions that table entries define. */
export type TableStepName = { [K in TableOp]: Entries[K] extends { readonly step?: { readonly name: infer N } } ? N : never }[TableOp];

/** Every table entry, each typed from its reference. */
export const OP_TABLE: Entries = ENTRIES;

/**
 * The methods of `Backend` that the table describes: each the type of its entry's reference, with the doc
 * comment of its entry's key (a mapped type over `keyof`, so editors show that comment on `Backend` methods).
 */
export type TableMethods = { [K in keyof Entries]: Entries[K]['reference'] };

export const TABLE_OPS = Object.keys(OP_TABLE) as TableOp[];

/** One method per table op, each made by `make` from its entry (how every backend gets its table methods). */
export function tableMethods(make: (op: TableOp, e: AnyOpEntry) => (...args: never[]) => unknown): TableMethods {
  return Object.fromEntries(TABLE_OPS.map((op) => [op, make(op, OP_TABLE[op])])) as unknown as TableMethods;
}

/** The entries that are step-program instructions, by instruction name. */
export function stepEntries(): ReadonlyMap<string, { op: TableOp; entry: AnyOpEntry }> {
  const out = new Map<string, { op: TableOp; entry: AnyOpEntry }>();
  for (const op of TABLE_OPS) {
    const entry: AnyOpEntry = OP_TABLE[op];
    if (entry.step) out.set(entry.step.name, { op, entry });
  }
  return out;
}

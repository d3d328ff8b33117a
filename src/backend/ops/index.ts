/**
 * The op table: one entry per kernel whose operands are plain arrays and numbers (see `spec.ts` for what an entry
 * holds). Adding such a kernel is its signature and doc on {@link Backend}, its entry (with the reference) in one of
 * the family files below, and its native body and addon export; the checked wrapper, the native and reference
 * backends' methods and, for step instructions, the program's operands, checks and interpreter follow from here.
 */
import type { Backend } from '../backend.js';
import type { AnyOpEntry, OpTable } from './spec.js';
import { LINEAR_OPS } from './linear.js';
import { ROW_OPS } from './rows.js';
import { POINTWISE_OPS } from './pointwise.js';
import { STATS_OPS } from './stats.js';

export type { AnyOpEntry, OpEntry, StepSpec } from './spec.js';

const ENTRIES = { ...LINEAR_OPS, ...ROW_OPS, ...POINTWISE_OPS, ...STATS_OPS };

/** The {@link Backend} methods the table describes. */
export type TableOp = keyof typeof ENTRIES;

/** The names of the step-program instructions that table entries define. */
export type TableStepName = { [K in TableOp]: (typeof ENTRIES)[K] extends { readonly step: { readonly name: infer N } } ? N : never }[TableOp];

/** Every table entry, each typed against its `Backend` method. */
export const OP_TABLE: OpTable<TableOp> = ENTRIES;

/** The methods of {@link Backend} that the table describes. */
export type TableMethods = Pick<Backend, TableOp>;

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

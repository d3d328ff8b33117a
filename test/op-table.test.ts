/** The op table (`src/backend/ops/`) is consistent with the methods and instructions it drives. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OP_TABLE, TABLE_OPS, type AnyOpEntry } from '../src/backend/ops/index.js';
import { OPCODES, OPS } from '../src/backend/program.js';
import { getBackend } from '../src/backend/index.js';
import { DTypeError } from '../src/errors.js';

test('op table: each entry lists at least the reference\'s required parameters, and its step instruction is in OPS', () => {
  for (const op of TABLE_OPS) {
    const e: AnyOpEntry = OP_TABLE[op];
    assert.ok(e.operands.length >= e.reference.length, `${op}: ${e.operands.length} operands, reference takes ${e.reference.length}`);
    assert.equal(new Set(e.operands.map((o) => o.name)).size, e.operands.length, `${op}: operand names repeat`);
    if (e.step) {
      assert.equal(OPCODES[e.step.opcode], e.step.name, `${op}: opcode ${e.step.opcode}`);
      assert.deepEqual(OPS[e.step.name as keyof typeof OPS], e.step.operands);
    }
  }
});

test('op table: the checked backend rejects a wrongly typed array operand of every table op by name', () => {
  const be = getBackend('reference');
  for (const op of TABLE_OPS) {
    const e: AnyOpEntry = OP_TABLE[op];
    const i = e.operands.findIndex((o) => 'size' in o);
    const args: unknown[] = e.operands.map((o) => ('size' in o ? new Float32Array(0) : 1));
    args[i] = [];
    assert.throws(() => (be[op] as (...a: unknown[]) => unknown)(...args), (err: unknown) => err instanceof DTypeError && err.message.includes(e.operands[i].name), op);
  }
});

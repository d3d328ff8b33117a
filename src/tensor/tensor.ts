/**
 * A small dense tensor: contiguous row-major f32 data plus a shape.
 * Views along the leading axis share memory (`rows`, `row`), so slicing a batch or a layer costs nothing.
 */
import { ShapeError } from '../errors.js';

export type Shape = readonly number[];

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeToString(shape: Shape): string {
  return `(${shape.join(', ')})`;
}

function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(op, `invalid shape ${shapeToString(shape)}`);
  }
}

export class Tensor {
  readonly data: Float32Array;
  readonly shape: Shape;

  /** Wrap `data` (not copied). Throws {@link ShapeError} if its length does not match the shape. */
  constructor(data: Float32Array, shape: Shape) {
    checkShape('Tensor', shape);
    if (data.length !== numel(shape)) {
      throw new ShapeError('Tensor', `data has ${data.length} elements but shape ${shapeToString(shape)} needs ${numel(shape)}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  static zeros(shape: Shape): Tensor {
    checkShape('Tensor.zeros', shape);
    return new Tensor(new Float32Array(numel(shape)), shape);
  }

  static from(values: ArrayLike<number>, shape: Shape): Tensor {
    return new Tensor(Float32Array.from(values), shape);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Same data, new shape with the same element count; one dimension may be -1. */
  reshape(shape: Shape): Tensor {
    const known = shape.filter((d) => d !== -1);
    const free = shape.length - known.length;
    if (free > 1) throw new ShapeError('reshape', `more than one -1 in ${shapeToString(shape)}`);
    let resolved = shape;
    if (free === 1) {
      const k = numel(known);
      if (k === 0 || this.size % k !== 0) {
        throw new ShapeError('reshape', `cannot reshape ${shapeToString(this.shape)} to ${shapeToString(shape)}`);
      }
      resolved = shape.map((d) => (d === -1 ? this.size / k : d));
    }
    if (numel(resolved) !== this.size) {
      throw new ShapeError('reshape', `cannot reshape ${shapeToString(this.shape)} to ${shapeToString(shape)}`);
    }
    return new Tensor(this.data, resolved);
  }

  /** View of rows `[start, end)` along axis 0, sharing memory. */
  rows(start: number, end: number): Tensor {
    if (this.rank === 0) throw new ShapeError('rows', 'cannot slice a scalar');
    const n = this.shape[0];
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= n)) {
      throw new ShapeError('rows', `range [${start}, ${end}) out of bounds for axis 0 of ${shapeToString(this.shape)}`);
    }
    const inner = numel(this.shape.slice(1));
    return new Tensor(this.data.subarray(start * inner, end * inner), [end - start, ...this.shape.slice(1)]);
  }

  /** View of row `i` along axis 0 (rank drops by one), sharing memory. */
  row(i: number): Tensor {
    return this.rows(i, i + 1).reshape(this.shape.slice(1));
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  toString(): string {
    return `Tensor${shapeToString(this.shape)}`;
  }
}

/** A tensor as stored in a checkpoint: f32 data, or raw f16/bf16 bits in a Uint16Array. */
export interface StoredTensor {
  dtype: import('./dtype.js').DType;
  shape: number[];
  data: Float32Array | Uint16Array;
}

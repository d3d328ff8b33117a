/**
 * The loop's batch source: sequences of a dataset in a seeded random order per epoch. The whole position (epoch,
 * cursor, RNG state now and at the epoch's start) lives in the checkpoint state, so a resumed run continues the
 * exact same order: the epoch's permutation is regenerated from the RNG state at its start.
 */
import { CheckpointStateError } from '../errors.js';
import { Rng32 } from './rng.js';
import type { TrainState } from './checkpoint.js';
import type { TokenDataset } from './data.js';

/** One micro-batch: inputs `(B, T)` and next-token targets `(B, T)`, and which sequences they are. */
export interface Batch {
  ids: Int32Array;
  targets: Int32Array;
  /** Dataset indices of the batch's sequences. */
  idxs: number[];
  batch: number;
  seqLen: number;
}

export class EpochBatches {
  private readonly rng: Rng32;
  private order: Int32Array;
  private epoch: number;
  private cursor: number;
  private epochRng: number;

  /** Continue at `state`'s position (checked against its RNG state when `resumed`). */
  constructor(private readonly data: TokenDataset, seed: number, state: TrainState, resumed: boolean, where: string) {
    this.rng = new Rng32(seed);
    this.rng.state = state.epochRng;
    this.order = this.rng.permutation(data.sequences.length);
    if (resumed && this.rng.state !== state.rng) throw new CheckpointStateError(where, 'RNG state does not match the data order (corrupt checkpoint?)');
    this.epoch = state.epoch;
    this.cursor = state.cursor;
    this.epochRng = state.epochRng;
    state.rng = this.rng.state;
  }

  private nextIndex(): number {
    if (this.cursor >= this.order.length) {
      this.epoch++;
      this.cursor = 0;
      this.epochRng = this.rng.state;
      this.order = this.rng.permutation(this.data.sequences.length);
    }
    return this.order[this.cursor++];
  }

  /** The next `batch` sequences, cut into inputs (first `seqLen` ids) and targets (last `seqLen`). */
  next(batch: number, seqLen: number): Batch {
    const idxs = Array.from({ length: batch }, () => this.nextIndex());
    const ids = new Int32Array(batch * seqLen);
    const targets = new Int32Array(batch * seqLen);
    idxs.forEach((i, b) => {
      const s = this.data.sequences[i];
      ids.set(s.subarray(0, seqLen), b * seqLen);
      targets.set(s.subarray(1, seqLen + 1), b * seqLen);
    });
    return { ids, targets, idxs, batch, seqLen };
  }

  /** Write the position into `state` (done after every optimizer step). */
  saveTo(state: TrainState): void {
    Object.assign(state, { epoch: this.epoch, cursor: this.cursor, rng: this.rng.state, epochRng: this.epochRng });
  }
}

/**
 * Continuous batching: requests decode together, one batched step at a time; sequences join when a slot of the KV
 * cache is free and leave when they finish, between steps. The slot cache is laid out by the model's attention kinds
 * (a student's echo layers keep V only), so the same memory holds more of a student's sequences. Requests beyond the
 * slots wait in a bounded queue; beyond that, {@link QueueFullError}.
 *
 * @example
 * ```ts
 * const engine = new Engine(model, tokenizer, { slots: 16, capacity: 256, maxQueue: 64 });
 * engine.submit({ prompt: tokenizer.encode('Once', { bos: true }), maxTokens: 32, sampler: { temperature: 0 },
 *   stopIds: stopIdsOf(tokenizer), stop: [], onText: (t) => process.stdout.write(t), onDone: (r) => console.log(r) });
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import type { SlotCache } from '../models/slot-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Sampler, type SamplerOptions } from '../models/sampler.js';
import { EchoattError } from '../errors.js';
import { StopMatcher } from './stop.js';

/** The queue of waiting requests is full: the HTTP layer answers 429. */
export class QueueFullError extends EchoattError {
  constructor(queued: number) {
    super('E_QUEUE_FULL', `the server is at capacity (${queued} requests waiting); retry later`);
  }
}

export interface EngineRequest {
  /** Prompt token ids (BOS included when wanted). */
  prompt: readonly number[];
  maxTokens: number;
  sampler: SamplerOptions;
  /** Token ids that end the sequence (not part of the output). */
  stopIds: readonly number[];
  /** Strings that end the sequence (the text up to the first one is returned). */
  stop: readonly string[];
  /** Aborted (client gone): the sequence is dropped at the next step. */
  signal?: AbortSignal;
  onText(text: string): void;
  onDone(result: EngineResult): void;
}

export interface EngineResult {
  finishReason: 'stop' | 'length' | 'cancelled';
  promptTokens: number;
  completionTokens: number;
  /** Milliseconds from submit to the first generated token, and to the end. */
  firstTokenMs: number;
  totalMs: number;
}

interface Live {
  req: EngineRequest;
  slot: number;
  sampler: Sampler;
  stopIds: Set<number>;
  matcher: StopMatcher;
  decoder: TextDecoder;
  prev: number;
  /** The token to feed at the next step. */
  next: number;
  generated: number;
  t0: number;
  firstTokenMs: number;
}

export interface EngineOptions {
  slots: number;
  /** Tokens per sequence (prompt + completion); at most the model's context. */
  capacity: number;
  /** Waiting requests beyond the slots; more are refused. */
  maxQueue: number;
}

export class Engine {
  readonly cache: SlotCache;
  private readonly queue: { req: EngineRequest; t0: number }[] = [];
  private readonly live: Live[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Batched decode steps run, and rows decoded (for the bench and /health). */
  steps = 0;
  rows = 0;

  constructor(readonly model: LlamaModel, readonly tokenizer: Tokenizer, readonly opts: EngineOptions) {
    this.cache = model.newSlotCache(opts.slots, opts.capacity);
  }

  get active(): number {
    return this.live.length;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Queue a request; it starts at the next step with a free slot. */
  submit(req: EngineRequest): void {
    if (this.queue.length >= this.opts.maxQueue && this.cache.free === 0) throw new QueueFullError(this.queue.length);
    this.queue.push({ req, t0: performance.now() });
    this.kick();
  }

  /** Resolves when no request is running or waiting. */
  idle(): Promise<void> {
    if (!this.live.length && !this.queue.length) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Finish every running and waiting request now (reason `cancelled`). */
  cancelAll(): void {
    for (const q of this.queue.splice(0)) q.req.onDone({ finishReason: 'cancelled', promptTokens: q.req.prompt.length, completionTokens: 0, firstTokenMs: NaN, totalMs: performance.now() - q.t0 });
    for (const s of [...this.live]) this.finish(s, 'cancelled');
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => this.loop());
  }

  private loop(): void {
    try {
      this.step();
    } catch (e) {
      // A failed step fails its sequences, not the server.
      for (const s of [...this.live]) this.finish(s, 'cancelled');
      process.stderr.write(`echoatt serve: decode step failed: ${(e as Error).message}\n`);
    }
    if (this.live.length || this.queue.length) {
      setImmediate(() => this.loop()); // let the HTTP layer read and write between steps
      return;
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Admit waiting requests into free slots (prefill), then one batched decode step of every running sequence. */
  private step(): void {
    for (const s of [...this.live]) if (s.req.signal?.aborted) this.finish(s, 'cancelled');
    while (this.queue.length && this.cache.free > 0) {
      const { req, t0 } = this.queue.shift()!;
      if (req.signal?.aborted) {
        req.onDone({ finishReason: 'cancelled', promptTokens: req.prompt.length, completionTokens: 0, firstTokenMs: NaN, totalMs: performance.now() - t0 });
        continue;
      }
      this.alone(() => this.admit(req, t0), () => this.live.find((s) => s.req === req), req, t0);
    }
    const rows = this.live.filter((s) => s.next >= 0);
    if (!rows.length) return;
    const V = this.model.config.vocabSize;
    const logits = this.model.decodeSlots(Int32Array.from(rows, (s) => s.next), Int32Array.from(rows, (s) => s.slot), this.cache);
    this.steps++;
    this.rows += rows.length;
    rows.forEach((s, b) => this.alone(() => this.take(s, logits.subarray(b * V, (b + 1) * V)), () => s, s.req, s.t0));
  }

  /**
   * Run one sequence's own work (its prefill and sampling, its text): if it throws, that sequence alone ends
   * (`cancelled`, logged) and every other sequence of the batch goes on.
   */
  private alone(work: () => void, live: () => Live | undefined, req: EngineRequest, t0: number): void {
    try {
      work();
    } catch (e) {
      process.stderr.write(`echoatt serve: a request failed: ${(e as Error).message}\n`);
      const s = live();
      if (s) this.finish(s, 'cancelled');
      else req.onDone({ finishReason: 'cancelled', promptTokens: req.prompt.length, completionTokens: 0, firstTokenMs: NaN, totalMs: performance.now() - t0 });
    }
  }

  private admit(req: EngineRequest, t0: number): void {
    const sampler = new Sampler(req.sampler); // before taking a slot: a bad option must not leak one
    const slot = this.cache.acquire()!;
    const s: Live = {
      req, slot, sampler, stopIds: new Set(req.stopIds), matcher: new StopMatcher(req.stop),
      decoder: new TextDecoder('utf-8'), prev: req.prompt[req.prompt.length - 1], next: -1, generated: 0, t0, firstTokenMs: NaN,
    };
    this.live.push(s);
    const logits = this.model.forward(Int32Array.from(req.prompt), { cache: this.cache.view(slot), lastOnly: true });
    this.cache.commit(slot, req.prompt.length);
    this.take(s, logits);
  }

  /** Sample the next token of `s` from its logits row and stream it, or finish the sequence. */
  private take(s: Live, row: Float32Array): void {
    s.next = -1;
    const id = s.sampler.sample(row); // may modify the row: each step's logits are fresh and read only here
    if (!(Number.isInteger(id) && id >= 0 && id < row.length)) throw new Error(`sampling gave no valid token (${id})`);
    if (s.stopIds.has(id)) return this.finish(s, 'stop');
    s.generated++;
    if (s.generated === 1) s.firstTokenMs = performance.now() - s.t0;
    const text = s.decoder.decode(this.tokenizer.decodePiece(s.prev, id), { stream: true });
    s.prev = id;
    const { emit, stopped } = s.matcher.push(text);
    if (emit) s.req.onText(emit);
    if (stopped) return this.finish(s, 'stop');
    const full = this.cache.lengths[s.slot] + 1 > this.cache.capacity;
    if (s.generated >= s.req.maxTokens || full) return this.finish(s, 'length');
    s.next = id;
  }

  private finish(s: Live, reason: EngineResult['finishReason']): void {
    const i = this.live.indexOf(s);
    if (i < 0) return;
    this.live.splice(i, 1);
    this.cache.release(s.slot);
    if (reason !== 'cancelled') {
      const tail = s.matcher.flush(s.decoder.decode());
      if (tail) s.req.onText(tail);
    }
    s.req.onDone({ finishReason: reason, promptTokens: s.req.prompt.length, completionTokens: s.generated, firstTokenMs: s.firstTokenMs, totalMs: performance.now() - s.t0 });
  }
}

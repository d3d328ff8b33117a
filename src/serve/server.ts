/**
 * `echoatt serve`: an OpenAI-compatible HTTP server (fastify) over one model — teacher or any student — with continuous
 * batching ({@link Engine}). Endpoints: `POST /v1/completions`, `POST /v1/chat/completions` (both with `stream: true`
 * as Server-Sent Events ending in `data: [DONE]`), `GET /v1/models`, `GET /health`. Errors have OpenAI's shape
 * `{"error": {"message", "type", "param", "code"}}`. One JSON log line per request on stderr.
 *
 * @example
 * ```ts
 * const server = await startServer({ loaded: loadModel('runs/x/distill/student'), modelPath: 'runs/x/distill/student', port: 8080 });
 * // curl http://127.0.0.1:8080/v1/completions -d '{"model":"student","prompt":"Once","max_tokens":20}'
 * await server.close();
 * ```
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { LoadedModel } from '../models/load.js';
import { modelName } from '../models/load.js';
import { Engine, QueueFullError, type EngineResult } from './engine.js';
import { loadChatTemplate, type ChatTemplate } from './chat.js';
import { ApiError, chatChunk, chatCompletion, chatParams, completionChunk, completionParams, usageOf, type GenerationParams } from './openai.js';

export interface ServeOptions {
  loaded: LoadedModel;
  modelPath: string;
  /** The id clients pass as `model` (default: the model's folder / file name). */
  name?: string;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Sequences decoded together (slots of the KV cache). */
  slots?: number;
  /** Tokens per sequence (default: the model's context). */
  capacity?: number;
  maxQueue?: number;
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /**
   * Time a client has to send its whole request, headers and body (default 30 s; 408 after). Receiving only: a
   * response streams as long as it needs.
   */
  requestTimeoutMs?: number;
  log?: (line: Record<string, unknown>) => void;
}

export interface RunningServer {
  url: string;
  engine: Engine;
  name: string;
  /** Stop accepting, let running requests finish (up to `graceMs`, then cancel them), close. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const { model, tokenizer, stopIds } = o.loaded;
  const name = o.name ?? modelName(o.modelPath);
  const capacity = Math.min(o.capacity ?? model.config.maxPositions, model.config.maxPositions);
  const engine = new Engine(model, tokenizer, { slots: o.slots ?? 16, capacity, maxQueue: o.maxQueue ?? 64 });
  const template = loadChatTemplate(o.modelPath);
  const log = o.log ?? ((l) => process.stderr.write(`${JSON.stringify(l)}\n`));
  let draining = false;
  // forceCloseConnections: after the drain, close() ends every connection still open — a client holding a half-sent
  // request must not keep the process alive after SIGTERM.
  const requestTimeout = o.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    logger: false, bodyLimit: o.bodyLimit ?? 1 << 20, forceCloseConnections: true,
    // Node checks request timeouts every connectionsCheckingInterval (30 s by default): check often enough to honour ours.
    serverFactory: (handler) => http.createServer({
      requestTimeout, headersTimeout: Math.min(requestTimeout, 60_000), connectionsCheckingInterval: Math.min(1000, requestTimeout),
    }, handler),
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    const e = toApiError(err);
    logRequest(log, req, e.status, { error: e.code ?? e.type });
    void reply.status(e.status).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new ApiError(404, `no route ${req.method} ${req.url}`, 'invalid_request_error', 'not_found').body());
  });
  const keyCheck = o.apiKey ? bearerCheck(o.apiKey) : null;
  app.addHook('onRequest', async (req) => {
    if (draining) throw new ApiError(503, 'the server is shutting down', 'server_error', 'shutting_down');
    // Decided on the route the router matched (it decodes the path: `/%76%31/…` is `/v1/…`), never on the raw URL;
    // with a key, everything but the health check needs it, unmatched paths included.
    if (keyCheck && req.routeOptions.url !== '/health' && !keyCheck(req.headers.authorization)) {
      throw new ApiError(401, 'invalid or missing API key (Authorization: Bearer <key>)', 'invalid_request_error', 'invalid_api_key');
    }
  });

  app.get('/health', async () => ({
    status: draining ? 'draining' : 'ok', model: name, slots: engine.cache.slots, free_slots: engine.cache.free, active: engine.active,
    queued: engine.waiting, capacity, kv_bytes_per_token: engine.cache.bytesPerToken(), kv_bytes: engine.cache.bytes(),
  }));
  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: name, object: 'model', created: 0, owned_by: 'echoatt' }] }));
  const pending = new Set<Promise<void>>();
  const served: Served = { engine, name, capacity, tokenizer, stopIds, template, log, draining: () => draining, pending };
  app.post('/v1/completions', generationHandler(served, 'completion'));
  app.post('/v1/chat/completions', generationHandler(served, 'chat'));

  const url = await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 8080 });
  return {
    url, engine, name,
    async close(graceMs = 30_000) {
      draining = true;
      const timer = setTimeout(() => engine.cancelAll(), graceMs);
      await engine.idle();
      clearTimeout(timer);
      // Every request has its answer by now (a 503 for those the deadline cut): let them reach their clients
      // (at most 2 s) before the connections still open are closed.
      await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 2000).unref())]);
      await app.close();
    },
  };
}

/** Compares an Authorization header with `Bearer <key>` in constant time (digests of equal length, timingSafeEqual). */
function bearerCheck(key: string): (header: string | undefined) => boolean {
  const digest = (v: string) => createHash('sha256').update(v).digest();
  const want = digest(`Bearer ${key}`);
  return (header) => header !== undefined && timingSafeEqual(digest(header), want);
}

/** What the route handlers need of the running server. */
interface Served {
  engine: Engine;
  name: string;
  capacity: number;
  tokenizer: LoadedModel['tokenizer'];
  stopIds: readonly number[];
  template: ChatTemplate | null;
  log: (line: Record<string, unknown>) => void;
  /** Whether the server is shutting down (a cancelled request was then cut by the drain deadline, not by its client). */
  draining: () => boolean;
  /** One promise per answer being written, settled when its response has finished or its connection closed. */
  pending: Set<Promise<void>>;
}

/** `POST /v1/completions` or `/v1/chat/completions`: check, queue on the engine, answer whole or as a stream. */
function generationHandler(sv: Served, kind: 'completion' | 'chat') {
  const { engine, name, capacity, stopIds, log } = sv;
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const p = kind === 'chat' ? chatParams(req.body) : completionParams(req.body);
    if (p.model !== name) throw new ApiError(404, `The model '${p.model}' does not exist; this server serves '${name}'`, 'invalid_request_error', 'model_not_found', 'model');
    refuseHopelessPrompt(sv, kind, p);
    const prompt = promptIds(sv, kind, p);
    const maxTokens = p.maxTokens ?? Math.max(1, capacity - prompt.length);
    if (prompt.length + maxTokens > capacity) {
      throw new ApiError(400, `This model's maximum context length is ${capacity} tokens; the prompt has ${prompt.length} tokens and max_tokens is ${maxTokens} ` +
        `(${prompt.length + maxTokens} in all)`, 'invalid_request_error', 'context_length_exceeded', 'max_tokens');
    }
    const ctx = { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`, created: Math.floor(Date.now() / 1000) };
    let stream: ReturnType<typeof sse> | null = null; // taken over only once the request is queued (a 429 is still a plain reply)
    const ac = new AbortController();
    reply.raw.on('close', () => ac.abort()); // client gone: its sequence is dropped at the next step
    const written = new Promise<void>((r) => {
      reply.raw.on('finish', r);
      reply.raw.on('close', r);
    });
    sv.pending.add(written);
    void written.then(() => sv.pending.delete(written));
    return new Promise<void>((resolve, reject) => {
      let text = '';
      const emit = (t: string) => {
        if (!stream) text += t;
        else stream.send(kind === 'chat' ? chatChunk(ctx.id, ctx.created, name, { content: t }, null) : completionChunk(ctx.id, ctx.created, name, t, null));
      };
      const done = (r: EngineResult) => {
        const finish = r.finishReason === 'cancelled' ? null : r.finishReason;
        const usage = usageOf(r.promptTokens, r.completionTokens);
        const cut = finish === null && sv.draining() && !ac.signal.aborted; // the drain deadline, not the client
        logRequest(log, req, cut ? 503 : 200, { model: name, stream: p.stream, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, finish_reason: cut ? 'shutdown' : r.finishReason, ttft_ms: round(r.firstTokenMs), total_ms: round(r.totalMs) });
        if (cut) {
          const e = new ApiError(503, `the server shut down before this request finished (${r.completionTokens} tokens generated)`, 'server_error', 'shutting_down');
          if (stream) {
            stream.send(e.body());
            stream.end();
            resolve();
          } else reject(e);
        } else if (stream) {
          if (finish) {
            stream.send(kind === 'chat' ? chatChunk(ctx.id, ctx.created, name, {}, finish, usage) : completionChunk(ctx.id, ctx.created, name, '', finish, usage));
            stream.end();
          } else stream.abort();
          resolve();
        } else if (kind === 'chat') resolve(void reply.send(chatCompletion(ctx.id, ctx.created, name, text, finish, usage)));
        else resolve(void reply.send({ ...completionChunk(ctx.id, ctx.created, name, text, finish), usage }));
      };
      try {
        engine.submit({ prompt, maxTokens, sampler: { temperature: p.temperature, topP: p.topP, seed: p.seed ?? Math.floor(Math.random() * 2 ** 31) }, stopIds, stop: p.stop, signal: ac.signal, onText: emit, onDone: done });
      } catch (e) {
        reject(e);
        return;
      }
      if (p.stream) stream = sse(reply);
      if (stream && kind === 'chat') stream.send(chatChunk(ctx.id, ctx.created, name, { role: 'assistant', content: '' }, null));
    });
  };
}

/**
 * A prompt whose text is longer than `capacity` tokens of the tokenizer's longest entry cannot fit, whatever it
 * encodes to: refused before tokenizing, so no request holds the event loop with a huge prompt (a 1 MB prompt took
 * 0.6–0.9 s to tokenize, stalling every other client).
 */
function refuseHopelessPrompt(sv: Served, kind: 'completion' | 'chat', p: GenerationParams): void {
  const texts = kind === 'completion' ? [p.prompt ?? ''] : (p.messages ?? []).map((m) => String(m.content ?? ''));
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const most = sv.capacity * sv.tokenizer.maxTokenLength;
  if (bytes > most) {
    throw new ApiError(400, `This model's maximum context length is ${sv.capacity} tokens; the prompt has ${bytes} bytes of text, more than ${sv.capacity} ` +
      `tokens can hold (${sv.tokenizer.maxTokenLength} bytes at most each)`, 'invalid_request_error', 'context_length_exceeded', kind === 'chat' ? 'messages' : 'prompt');
  }
}

/** Prompt token ids: the completion prompt, or the chat messages through the model's template. */
function promptIds(sv: Served, kind: 'completion' | 'chat', p: GenerationParams): number[] {
const { tokenizer, template, name } = sv;
  if (kind === 'completion') return tokenizer.encode(p.prompt!, { bos: true, eos: false });
  if (!template) {
    throw new ApiError(400, `model '${name}' has no chat template (no 'chat_template' in a tokenizer_config.json beside it); use /v1/completions`, 'invalid_request_error', 'no_chat_template', 'messages');
  }
  return tokenizer.encode(template.render(p.messages!), { bos: true, eos: false });
}

/** A Server-Sent Events stream on the raw response (taken over from fastify). */
function sse(reply: FastifyReply): { send(obj: unknown): void; end(): void; abort(): void } {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  return {
    send: (obj) => void (res.writable && res.write(`data: ${JSON.stringify(obj)}\n\n`)),
    end: () => {
      if (res.writable) res.end('data: [DONE]\n\n');
    },
    abort: () => res.destroy(),
  };
}

/** Fastify's own failures (bad JSON, body too large) and ours, in OpenAI's error shape. */
function toApiError(err: Error & { code?: string; statusCode?: number }): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof QueueFullError) return new ApiError(429, err.message, 'rate_limit_error', 'rate_limit_exceeded');
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(413, `request body too large (${err.message})`, 'invalid_request_error', 'request_too_large');
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ApiError(415, err.message, 'invalid_request_error', 'unsupported_media_type');
  if (err.statusCode === 400 || err instanceof SyntaxError) return new ApiError(400, `invalid JSON body (${err.message})`, 'invalid_request_error', 'invalid_json');
  if (err.code?.startsWith('E_')) return new ApiError(400, err.message, 'invalid_request_error', 'invalid_value');
  return new ApiError(500, `internal error: ${err.message}`, 'server_error', 'internal_error');
}

function logRequest(log: (l: Record<string, unknown>) => void, req: FastifyRequest, status: number, extra: Record<string, unknown>): void {
  log({ time: new Date().toISOString(), method: req.method, path: req.url, status, ...extra });
}

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);

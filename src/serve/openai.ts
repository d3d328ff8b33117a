/**
 * The OpenAI API's request and response shapes for `/v1/completions` and `/v1/chat/completions`: request bodies are
 * checked field by field into one typed {@link GenerationParams}; every refusal is an {@link ApiError} that the server
 * sends as `{"error": {"message", "type", "param", "code"}}` with its HTTP status.
 */
import type { ChatMessage } from './chat.js';

export class ApiError extends Error {
  constructor(
    readonly status: number, message: string, readonly type = 'invalid_request_error',
    readonly code: string | null = null, readonly param: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface GenerationParams {
  model: string;
  /** The prompt text (completions) or the chat messages (chat). */
  prompt?: string;
  messages?: ChatMessage[];
  maxTokens: number | null;
  temperature: number;
  topP: number;
  seed: number | null;
  stop: string[];
  stream: boolean;
}

const bad = (param: string, message: string) => new ApiError(400, message, 'invalid_request_error', 'invalid_value', param);

function num(body: Record<string, unknown>, key: string, def: number, lo: number, hi: number, loOpen = false): number {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || v > hi) {
    throw bad(key, `'${key}' must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function int(body: Record<string, unknown>, key: string, lo: number): number | null {
  const v = body[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < lo) throw bad(key, `'${key}' must be an integer >= ${lo}, got ${JSON.stringify(v)}`);
  return v;
}

function stopList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw bad('stop', "'stop' must be a non-empty string or a list of up to 4 of them");
  }
  return list as string[];
}

function common(body: unknown): { b: Record<string, unknown>; p: Omit<GenerationParams, 'prompt' | 'messages'> } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request_error', 'invalid_json');
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || !b.model) throw bad('model', "'model' is required (a string; see GET /v1/models)");
  const n = int(b, 'n', 1);
  if (n !== null && n !== 1) throw bad('n', `only n = 1 is supported, got ${n}`);
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw bad('stream', "'stream' must be true, false or null");
  return {
    b,
    p: {
      model: b.model, maxTokens: int(b, 'max_tokens', 1) ?? int(b, 'max_completion_tokens', 1), temperature: num(b, 'temperature', 1, 0, 2),
      topP: num(b, 'top_p', 1, 0, 1, true), seed: int(b, 'seed', 0), stop: stopList(b.stop), stream: b.stream === true,
    },
  };
}

/** `/v1/completions`: `prompt` is a string (or a list holding one string: n = 1). `max_tokens` defaults to 16 there. */
export function completionParams(body: unknown): GenerationParams {
  const { b, p } = common(body);
  let prompt = b.prompt;
  if (Array.isArray(prompt) && prompt.length === 1) prompt = prompt[0];
  if (typeof prompt !== 'string') throw bad('prompt', "'prompt' must be a string (token-id prompts and batches of prompts are not supported)");
  return { ...p, prompt, maxTokens: p.maxTokens ?? 16 };
}

/** `/v1/chat/completions`: `messages` of `{role, content}` with text content. */
export function chatParams(body: unknown): GenerationParams {
  const { b, p } = common(body);
  const msgs = b.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) throw bad('messages', "'messages' must be a non-empty list of {role, content}");
  const messages = msgs.map((m: unknown, i): ChatMessage => {
    const o = m as Record<string, unknown> | null;
    if (!o || typeof o.role !== 'string') throw bad(`messages[${i}].role`, `messages[${i}] needs a string 'role'`);
    const c = o.content;
    const text = typeof c === 'string' ? c
      : Array.isArray(c) && c.every((x) => x && (x as { type?: string }).type === 'text') ? c.map((x) => String((x as { text: unknown }).text)).join('')
        : null;
    if (text === null) throw bad(`messages[${i}].content`, `messages[${i}].content must be text`);
    return { role: o.role, content: text };
  });
  return { ...p, messages };
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const usageOf = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

type Finish = 'stop' | 'length' | null;

export function completionChunk(id: string, created: number, model: string, text: string, finish: Finish, usage?: Usage) {
  return { id, object: 'text_completion', created, model, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }], ...(usage ? { usage } : {}) };
}

export function chatChunk(id: string, created: number, model: string, delta: { role?: string; content?: string }, finish: Finish, usage?: Usage) {
  return { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(usage ? { usage } : {}) };
}

export function chatCompletion(id: string, created: number, model: string, content: string, finish: Finish, usage: Usage) {
  return { id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: finish }], usage };
}

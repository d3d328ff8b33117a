/**
 * `echoatt serve` over real sockets on loopback, with the official `openai` client: completions and chat, streaming
 * and not, against stories260K and a saved student; greedy output over HTTP equals `echoatt generate` byte for byte;
 * 16 simultaneous streams each equal their single-request output, with one aborted mid-stream; the error shapes and
 * statuses (400 bad JSON, 404 unknown model, 400 context naming both numbers, 413, 429, 401); SIGTERM finishes running
 * streams and exits 0; `--model` as a Hugging Face repo id resolved in a cache layout written here.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { loadModel, saveModel } from '../src/models/load.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { withPlan } from '../src/models/surgery.js';
import { startServer, type RunningServer } from '../src/serve/server.js';
import { resolveModelSpec } from '../src/io/hub.js';
import { StopMatcher } from '../src/serve/stop.js';
import { repoRoot, sharedDir } from './helpers.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-serve-'));
const STUDENT = path.join(root, 'student');
const CHAT = path.join(root, 'chat-model');
const TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
const PROMPTS = ['Once upon a time', 'The cat', 'Lily and Ben went to the park', 'One day, a little bird', 'Tom had a red ball',
  'The sun was', 'A big dog', 'Mom said', 'There was a girl named Sue', 'The boy saw a', 'In the forest', 'Once there was a frog',
  'She wanted to', 'The little car', 'He was very happy', 'The old tree'];

let teacher: RunningServer;
let student: RunningServer;
const logs: Record<string, unknown>[] = [];

function cli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { cwd: repoRoot, env, timeout: 120_000 });
}

const client = (s: RunningServer, apiKey = 'none') => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });

before(async () => {
  const t = loadModel(STORIES);
  saveModel(STUDENT, withPlan(t.model, makePlan('manual', [{ anchor: 1, shared: [2, 3] }])), t.checkpoint.tokenizerPath);
  fs.writeFileSync(path.join(STUDENT, 'tokenizer_config.json'), JSON.stringify({ chat_template: TEMPLATE }));
  fs.mkdirSync(CHAT);
  for (const f of ['stories260K.bin', 'tok512.bin']) fs.copyFileSync(path.join(sharedDir, 'models/stories260K', f), path.join(CHAT, f));
  fs.writeFileSync(path.join(CHAT, 'tokenizer_config.json'), JSON.stringify({ chat_template: TEMPLATE }));
  teacher = await startServer({ loaded: loadModel(STORIES), modelPath: STORIES, port: 0, slots: 8, maxQueue: 64, log: (l) => logs.push(l) });
  student = await startServer({ loaded: loadModel(STUDENT), modelPath: STUDENT, port: 0, slots: 4, log: () => {} });
});
after(async () => {
  await teacher?.close();
  await student?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

/** What `echoatt generate` prints for a greedy run (the prompt echoed, then the completion), as text. */
function generated(model: string, prompt: string, maxTokens: number): string {
  const r = cli(['generate', '--model', model, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(maxTokens)]);
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout.toString('utf8');
}

async function streamText(c: OpenAI, model: string, prompt: string, maxTokens: number, signal?: AbortSignal): Promise<{ text: string; finish: string | null }> {
  const stream = await c.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true }, { signal });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  return { text, finish };
}

test('completions, streaming and not: greedy output equals `echoatt generate` byte for byte (teacher and saved student)', async () => {
  for (const [server, model] of [[teacher, STORIES], [student, STUDENT]] as const) {
    const c = client(server);
    const ref = generated(model, 'Once upon a time', 60);
    const r = await c.completions.create({ model: server.name, prompt: 'Once upon a time', max_tokens: 60, temperature: 0 });
    assert.equal(`Once upon a time${r.choices[0].text}`, ref, `${server.name}: non-streaming`);
    assert.equal(r.usage?.prompt_tokens, 5);
    assert.ok(r.choices[0].finish_reason === 'length' || r.choices[0].finish_reason === 'stop');
    const s = await streamText(c, server.name, 'Once upon a time', 60);
    assert.equal(`Once upon a time${s.text}`, ref, `${server.name}: streaming`);
    assert.equal(s.finish, r.choices[0].finish_reason);
  }
  const models = await client(teacher).models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['stories260K']);
  assert.ok(logs.some((l) => l.path === '/v1/completions' && l.status === 200 && typeof l.total_ms === 'number'), 'one JSON log line per request');
});

test('chat completions through the model\'s chat template (Jinja), streaming and not, on a teacher copy and the saved student; a clear error without a template', async () => {
  const chat = await startServer({ loaded: loadModel(path.join(CHAT, 'stories260K.bin')), modelPath: path.join(CHAT, 'stories260K.bin'), port: 0, slots: 2, log: () => {} });
  try {
    for (const server of [chat, student]) await chatMatchesCompletion(server);
  } finally {
    await chat.close();
  }
  await assert.rejects(client(teacher).chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content: 'hi' }] }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /has no chat template/.test(e.message));
});

/** Chat through the template equals a completion of the rendered prompt, streaming and not. */
async function chatMatchesCompletion(chat: RunningServer): Promise<void> {
  {
    const c = client(chat);
    const messages = [{ role: 'user' as const, content: 'Tell me a story' }];
    const prompt = 'user: Tell me a story\nassistant:';
    const viaCompletion = await c.completions.create({ model: chat.name, prompt, max_tokens: 30, temperature: 0 });
    const r = await c.chat.completions.create({ model: chat.name, messages, max_tokens: 30, temperature: 0 });
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, viaCompletion.choices[0].text);
    assert.equal(r.usage?.prompt_tokens, viaCompletion.usage?.prompt_tokens);
    const stream = await c.chat.completions.create({ model: chat.name, messages, max_tokens: 30, temperature: 0, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, r.choices[0].message.content);
    assert.ok(text.length > 0, `${chat.name}: some text`);
  }
}

test('16 simultaneous streams each equal their single-request output; an aborted one does not disturb the others', async () => {
  const c = client(teacher);
  const alone: string[] = [];
  for (const p of PROMPTS) alone.push((await c.completions.create({ model: 'stories260K', prompt: p, max_tokens: 40, temperature: 0 })).choices[0].text);
  const ac = new AbortController();
  const [steps0, rows0] = [teacher.engine.steps, teacher.engine.rows];
  const runs = PROMPTS.map((p, i) => streamText(c, 'stories260K', p, i === 3 ? 400 : 40, i === 3 ? ac.signal : undefined));
  setTimeout(() => ac.abort(), 30);
  const results = await Promise.allSettled(runs);
  results.forEach((r, i) => {
    if (i === 3) return;
    assert.equal(r.status, 'fulfilled');
    assert.equal((r as PromiseFulfilledResult<{ text: string }>).value.text, alone[i], `stream ${i}`);
  });
  await new Promise((r) => setTimeout(r, 50));
  const health = await (await fetch(`${teacher.url}/health`)).json() as { active: number; free_slots: number; status: string };
  assert.deepEqual([health.status, health.active, health.free_slots], ['ok', 0, 8], 'the aborted sequence was freed');
  const [steps, rows] = [teacher.engine.steps - steps0, teacher.engine.rows - rows0];
  assert.ok(steps > 0 && rows / steps > 4, `streams decoded together in batched steps (${rows} rows in ${steps} steps)`);
});

test('errors in OpenAI\'s shape: bad JSON 400, unknown model 404, context 400 naming both numbers, body too large 413', async () => {
  const post = (body: string) => fetch(`${teacher.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const badJson = await post('{"model": "stories260K", "prompt": ');
  assert.equal(badJson.status, 400);
  const e1 = await badJson.json() as { error: { message: string; type: string; code: string } };
  assert.equal(e1.error.type, 'invalid_request_error');
  assert.equal(e1.error.code, 'invalid_json');
  const c = client(teacher);
  await assert.rejects(c.completions.create({ model: 'gpt-9', prompt: 'x' }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 404 && e.code === 'model_not_found');
  await assert.rejects(c.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 510 }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /maximum context length is 512 tokens; the prompt has 5 tokens and max_tokens is 510/.test(e.message));
  await assert.rejects(c.completions.create({ model: 'stories260K', prompt: 'x', temperature: 7 }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && e.param === 'temperature');
  const big = await post(JSON.stringify({ model: 'stories260K', prompt: 'a'.repeat(2 << 20) }));
  assert.equal(big.status, 413);
  assert.equal((await big.json() as { error: { code: string } }).error.code, 'request_too_large');
  assert.equal((await fetch(`${teacher.url}/health`)).status, 200, 'still up');
});

/** Status of one request sent exactly as written (like `curl --path-as-is`), no key. */
function rawStatus(base: string, target: string, body: string | undefined): Promise<number> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: body ? 'POST' : 'GET', path: target, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a full queue answers 429; an API key is checked', async () => {
  const s = await startServer({ loaded: loadModel(STORIES), modelPath: STORIES, port: 0, slots: 1, maxQueue: 1, apiKey: 'sekret', log: () => {} });
  try {
    await assert.rejects(client(s, 'wrong').models.list(), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 401 && e.code === 'invalid_api_key');
    // Every spelling of a routed path needs the key: percent-encoded segments, an absolute-form target, unknown paths.
    const body = JSON.stringify({ model: 'stories260K', prompt: 'Once', max_tokens: 2 });
    for (const target of ['/%76%31/completions', '/v%31/completions', '/v1/%63ompletions', `${s.url}/v1/completions`, '/v1/nothing', '/%2e/v1/models']) {
      assert.equal(await rawStatus(s.url, target, body), 401, target);
    }
    assert.equal(await rawStatus(s.url, '/health', undefined), 200, 'the health check stays open');
    const c = client(s, 'sekret');
    const ac = new AbortController();
    const first = await c.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 500, temperature: 0, stream: true }, { signal: ac.signal });
    const it = first[Symbol.asyncIterator]();
    await it.next(); // running: the one slot is taken
    const queued = c.completions.create({ model: 'stories260K', prompt: 'The cat', max_tokens: 5, temperature: 0 });
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(c.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: 5 }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 429 && e.code === 'rate_limit_exceeded');
    ac.abort();
    assert.equal((await queued).choices[0].text.length > 0, true, 'the queued request ran once the slot was free');
  } finally {
    await s.close();
  }
});

test('echoatt serve: SIGTERM lets a running stream finish, then exits 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--max-batch', '2'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  while (!/on (http:\/\/\S+)/.test(out)) {
    if (child.exitCode !== null) assert.fail(`serve exited early: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const url = /on (http:\/\/\S+)/.exec(out)![1];
  const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  const stream = await c.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 300, temperature: 0, stream: true });
  const it = stream[Symbol.asyncIterator]();
  let text = (await it.next()).value!.choices[0].text;
  child.kill('SIGTERM');
  let finish: string | null = null;
  for (let r = await it.next(); !r.done; r = await it.next()) {
    text += r.value.choices[0].text;
    finish = r.value.choices[0].finish_reason ?? finish;
  }
  assert.ok(finish === 'length' || finish === 'stop', 'the running stream finished normally');
  assert.ok(text.length > 20);
  assert.equal(await exited, 0);
});

test('--model takes a Hugging Face repo id, resolved offline in the local cache layout', () => {
  const hub = path.join(root, 'hub');
  const hash = 'a'.repeat(40);
  const snap = path.join(hub, 'models--echoatt-test--stories260K', 'snapshots', hash);
  const conv = cli(['convert', '--model', STORIES, '--out', snap]);
  assert.equal(conv.status, 0, String(conv.stderr));
  fs.mkdirSync(path.join(hub, 'models--echoatt-test--stories260K', 'refs'));
  fs.writeFileSync(path.join(hub, 'models--echoatt-test--stories260K', 'refs', 'main'), `${hash}\n`);
  fs.writeFileSync(path.join(hub, 'models--echoatt-test--stories260K', 'refs', 'v1'), hash);
  const env = { ...process.env, HF_HUB_CACHE: hub };
  assert.equal(resolveModelSpec('echoatt-test/stories260K', env), snap);
  assert.equal(resolveModelSpec('echoatt-test/stories260K@v1', env), snap);
  assert.equal(resolveModelSpec(`echoatt-test/stories260K@${hash}`, env), snap);
  assert.throws(() => resolveModelSpec('echoatt-test/stories260K', { HF_HOME: path.join(root, 'elsewhere') }), /looked in \S+\/elsewhere\/hub\/models--echoatt-test--stories260K,/, 'HF_HOME/hub when HF_HUB_CACHE is unset');
  const viaId = cli(['generate', '--model', 'echoatt-test/stories260K', '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '30'], env);
  assert.equal(viaId.status, 0, String(viaId.stderr));
  assert.equal(viaId.stdout.toString(), generated(STORIES, 'Once upon a time', 30));
  const missing = cli(['generate', '--model', 'nobody/nothing@dev', '--max-tokens', '1'], env);
  assert.equal(missing.status, 2);
  assert.match(String(missing.stderr), new RegExp(`nobody/nothing@dev: not a file or folder, and not in the local Hugging Face cache \\(looked in ${hub.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/models--nobody--nothing, .*refs/dev`));
});

test('stop strings end a completion before the stop text, also across streamed pieces', () => {
  const m = new StopMatcher(['\n\n', 'END']);
  assert.deepEqual(m.push('Hello\n'), { emit: 'Hello', stopped: false });
  assert.deepEqual(m.push('\nWorld'), { emit: '', stopped: true });
  const n = new StopMatcher(['END']);
  assert.deepEqual(n.push('abcE'), { emit: 'abc', stopped: false });
  assert.deepEqual(n.push('Nx'), { emit: 'ENx', stopped: false });
  assert.deepEqual(n.push('yEN'), { emit: 'y', stopped: false });
  assert.equal(n.flush('!'), 'EN!');
  const o = new StopMatcher(['END']);
  assert.deepEqual(o.push('abcEN'), { emit: 'abc', stopped: false });
  assert.deepEqual(o.push('D and more'), { emit: '', stopped: true });
  assert.equal(o.flush('tail'), '');
});

test('one request that fails on its own (a sampler option the engine refuses) ends alone; the batch it shared goes on', { timeout: 60_000 }, async () => {
  const { Engine } = await import('../src/serve/engine.js');
  const loaded = loadModel(STORIES);
  const engine = new Engine(loaded.model, loaded.tokenizer, { slots: 2, capacity: 64, maxQueue: 4 });
  const run = (temperature: number) => new Promise<{ text: string; reason: string }>((resolve) => {
    let text = '';
    engine.submit({
      prompt: [1, ...loaded.tokenizer.encode('Once upon')], maxTokens: 20, sampler: { temperature, seed: 1 }, stopIds: [], stop: [],
      onText: (t) => (text += t), onDone: (r) => resolve({ text, reason: r.finishReason }),
    });
  });
  const alone = await run(0);
  const [good, bad] = await Promise.all([run(0), run(-1)]);
  assert.equal(bad.reason, 'cancelled');
  assert.deepEqual(good, alone, 'the good request is unaffected');
  assert.equal(engine.cache.free, 2, 'no slot leaked');
});

test('clients that send part of a request: a 408 once the request timeout passes, and close() does not wait for them', { timeout: 60_000 }, async () => {
  const s = await startServer({ loaded: loadModel(STORIES), modelPath: STORIES, port: 0, slots: 1, requestTimeoutMs: 1500, log: () => {} });
  const u = new URL(s.url);
  const half = (body: boolean) => new Promise<{ sock: net.Socket; got: Promise<string> }>((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname, () => {
      sock.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${body ? 'Content-Length: 100\r\n\r\n{"model":' : ''}`);
      let text = '';
      const got = new Promise<string>((r) => { sock.on('data', (d) => (text += d)); sock.on('close', () => r(text)); sock.on('error', () => r(text)); });
      resolve({ sock, got });
    });
  });
  try {
    const slow = await half(true);
    const t0 = Date.now();
    assert.match(await slow.got, /^HTTP\/1\.1 408/, 'a body that never completes gets 408');
    assert.ok(Date.now() - t0 < 10_000);
    const stuck = [await half(true), await half(false)];
    const t1 = Date.now();
    await s.close(1000);
    assert.ok(Date.now() - t1 < 5_000, `close() took ${Date.now() - t1} ms with half-sent requests open`);
    for (const c of stuck) c.sock.destroy();
  } finally {
    await s.close(0).catch(() => {});
  }
});

test('a drain that reaches its deadline answers every request: 503 for queued and unfinished ones, an error event ending a stream', { timeout: 60_000 }, async () => {
  // gutenberg16 decodes its 250 tokens slowly enough (~1000 tok/s) that the drain deadline always cuts the stream.
  const model = path.join(sharedDir, 'models/gutenberg16/model.bin');
  const s = await startServer({ loaded: loadModel(model), modelPath: model, name: 'g16', port: 0, slots: 1, maxQueue: 4, log: () => {} });
  const c = client(s);
  const streamed = await c.completions.create({ model: 'g16', prompt: 'It was', max_tokens: 250, temperature: 0, stream: true });
  const it = streamed[Symbol.asyncIterator]();
  await it.next(); // running in the one slot
  const queued = [0, 1].map(() => c.completions.create({ model: 'g16', prompt: 'The', max_tokens: 5, temperature: 0 }).then(() => 0, (e: InstanceType<typeof OpenAI.APIError>) => e.status));
  for (let waited = 0; (await (await fetch(`${s.url}/health`)).json() as { queued: number }).queued < 2; waited++) {
    assert.ok(waited < 2000, 'the two requests were queued');
    await new Promise((r) => setTimeout(r, 1));
  }
  const closing = s.close(0);
  let streamError: unknown = null;
  try {
    for (let r = await it.next(); !r.done; r = await it.next());
  } catch (e) {
    streamError = e;
  }
  assert.deepEqual(await Promise.all(queued), [503, 503], 'queued requests are answered 503');
  assert.ok(streamError instanceof OpenAI.APIError && /shut down/.test(streamError.message), `the stream ends with the server's error, got ${String(streamError)}`);
  await closing;
});

test('a prompt longer than any context could hold is refused before it is tokenized (400 naming its bytes)', async () => {
  const loaded = loadModel(STORIES);
  const s = await startServer({ loaded, modelPath: STORIES, port: 0, slots: 1, log: () => {} });
  try {
    const huge = 'Once upon a time. '.repeat(40_000); // 720 KB
    let tokenized = 0;
    const encode = loaded.tokenizer.encode.bind(loaded.tokenizer);
    loaded.tokenizer.encode = (t, o) => (tokenized += t.length, encode(t, o));
    await assert.rejects(client(s).completions.create({ model: 'stories260K', prompt: huge, max_tokens: 5 }),
      (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && e.code === 'context_length_exceeded' && /720000 bytes of text/.test(e.message));
    assert.equal(tokenized, 0, 'the huge prompt was never tokenized');
    // `stream: null` is "not streaming", as OpenAI's API reads it.
    const ok = await client(s).completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, stream: null });
    assert.ok(ok.choices[0].text.length > 0);
  } finally {
    await s.close();
  }
});

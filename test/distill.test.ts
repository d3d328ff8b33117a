/**
 * Distillation: optimizer and schedule against hand-computed values, data packing, checkpoints, a short end-to-end
 * run of the library and of the CLI, and crash safety: a run killed with SIGKILL after a checkpoint and resumed ends
 * with weights bit-identical to an uninterrupted run; so does one stopped with SIGINT (which saves a checkpoint and
 * exits cleanly).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AdamW, clipGradNorm, lrAt, packDocuments, Rng32, readCheckpointState, distill, DEFAULT_LOSS } from '../src/distill/index.js';
import { Param } from '../src/autograd/tape.js';
import { loadModel } from '../src/models/load.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { repoRoot, sharedDir } from './helpers.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const TEXT = path.join(sharedDir, 'data/corpus/tinystories_sample.txt');
const tmp = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `echoatt-${name}-`));

describe('optimizer, schedule, RNG, packing', () => {
  test('AdamW step matches hand computation (decoupled decay on matrices only)', () => {
    const w = new Param('w', Float32Array.of(1, -2), [1, 2]);
    const b = new Param('b', Float32Array.of(0.5), [1]);
    w.grad = Float32Array.of(0.1, -0.3);
    b.grad = Float32Array.of(0.2);
    const opt = new AdamW([w, b], { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    opt.step(0.01);
    // First step: m̂ = g, v̂ = g², so the update is lr·sign(g) (up to eps), plus lr·λ·w for matrices.
    assert.ok(Math.abs(w.data[0] - (1 * (1 - 0.001) - 0.01)) < 1e-6);
    assert.ok(Math.abs(w.data[1] - (-2 * (1 - 0.001) + 0.01)) < 1e-6);
    assert.ok(Math.abs(b.data[0] - (0.5 - 0.01)) < 1e-6);
    opt.zeroGrad();
    assert.deepEqual([...w.grad], [0, 0]);
  });

  test('warmup + cosine schedule and gradient clipping', () => {
    assert.equal(lrAt(1, 100, 1, 0.1, 10), 0.1);
    assert.equal(lrAt(10, 100, 1, 0.1, 10), 1);
    assert.ok(Math.abs(lrAt(55, 100, 1, 0.1, 10) - 0.55) < 1e-12);
    assert.ok(Math.abs(lrAt(100, 100, 1, 0.1, 10) - 0.1) < 1e-12);
    const p = new Param('p', new Float32Array(2), [2]);
    p.grad = Float32Array.of(3, 4);
    assert.equal(clipGradNorm([p], 1), 5);
    assert.ok(Math.abs(Math.hypot(p.grad[0], p.grad[1]) - 1) < 1e-5);
  });

  test('Rng32 is reproducible from its state; packing cuts T+1 windows', () => {
    const r = new Rng32(7);
    r.u32();
    const saved = r.state;
    const a = r.permutation(10);
    r.state = saved;
    assert.deepEqual(r.permutation(10), a);
    assert.deepEqual([...a].sort((x, y) => x - y), [...Array(10).keys()]);
    const seqs = packDocuments([[1, 2, 3], [1, 4, 5, 6], [1, 7]], 3);
    assert.deepEqual(seqs.map((s) => [...s]), [[1, 2, 3, 1], [4, 5, 6, 1]]);
  });
});

/** Run a script with tsx in a child process; `onLine` sees each stdout line (and gets the child to kill it). */
function runChild(args: string[], onLine?: (line: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let buf = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.stdout.on('data', (d) => {
      buf += String(d);
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        onLine?.(line, (sig) => child.kill(sig));
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** A child running distill() from the library; at step `hangAt` it reports and hangs (to be killed), or sends itself `selfSignal`. */
function libraryChild(out: string, extra: Record<string, unknown>, hangAt = 0, selfSignal = ''): string[] {
  const opts = {
    teacher: STORIES, plan: { groups: [{ anchor: 1, shared: [2, 3] }], format: 'echoatt-plan', version: 1, strategy: 'manual' },
    data: TEXT, maxDataTokens: 170, generate: { count: 6, length: 40 }, steps: 12, seqLen: 16, batch: 2, accum: 2,
    checkpointEvery: 3, lr: 3e-3, loss: { alpha: 0.5, beta: 0.5, temperature: 2, gamma: 0.1 }, out, plot: false, ...extra,
  };
  const code = `
    import { distill } from './src/distill/index.js';
    const opts = ${JSON.stringify(opts)};
    const res = await distill({ ...opts, handleSigint: true, onStep: (s) => {
      process.stdout.write('step ' + s.step + (s.checkpointed ? ' ckpt' : '') + '\\n');
      if (s.step === ${hangAt}) {
        ${selfSignal ? `process.kill(process.pid, '${selfSignal}');` : `process.stdout.write('hang\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);`}
      }
    } });
    process.stdout.write('done ' + res.step + ' ' + res.interrupted + '\\n');
  `;
  return ['--input-type=module', '-e', code];
}

function bytesOf(file: string): Buffer {
  return fs.readFileSync(file);
}

/** Every tensor (params, Adam moments) bit-identical, and the same step, RNG state and data position. */
function assertSameCheckpoint(a: string, b: string): void {
  const sa = openSafetensors(a);
  const sb = openSafetensors(b);
  try {
    assert.deepEqual([...sa.tensors.keys()].sort(), [...sb.tensors.keys()].sort());
    for (const name of sa.tensors.keys()) {
      const x = sa.read(name).data;
      const y = sb.read(name).data;
      assert.ok(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)), `${name} bit-identical`);
    }
    const ja = JSON.parse(sa.metadata.state) as Record<string, unknown>;
    const jb = JSON.parse(sb.metadata.state) as Record<string, unknown>;
    for (const k of ['step', 'adamT', 'epoch', 'cursor', 'rng', 'epochRng', 'tokens']) assert.equal(ja[k], jb[k], k);
    assert.ok((ja.epoch as number) >= 1, 'the run went through more than one epoch');
  } finally {
    sa.close();
    sb.close();
  }
}

function lossesOf(metrics: string): number[] {
  return fs.readFileSync(metrics, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { loss: number }).loss);
}

describe('distill: crash safety and resume', () => {
  const ref = tmp('ref');
  let refDone: Promise<void> | undefined;
  const uninterrupted = () => (refDone ??= runChild(libraryChild(ref, {})).then((r) => assert.equal(r.code, 0, r.stderr)));

  test('SIGKILL after a checkpoint, then --resume: bit-identical final weights', async () => {
    await uninterrupted();
    const out = tmp('kill');
    const lines: string[] = [];
    const killed = await runChild(libraryChild(out, {}, 7), (line, kill) => {
      lines.push(line);
      if (line === 'hang') kill('SIGKILL');
    });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.ok(lines.includes('step 6 ckpt') && lines.includes('step 7'));
    assert.equal(readCheckpointState(path.join(out, 'checkpoint.safetensors'))!.step, 6);
    assert.ok(!fs.existsSync(path.join(out, 'student')), 'the killed run never finished');
    assert.ok(!fs.readdirSync(out).some((f) => f.endsWith('.tmp')), 'no temp files left visible as checkpoints');
    const resumed = await runChild(libraryChild(out, { resume: true }));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(bytesOf(path.join(out, 'student/model.safetensors')).equals(bytesOf(path.join(ref, 'student/model.safetensors'))), 'final weights bit-identical');
    assertSameCheckpoint(path.join(out, 'checkpoint.safetensors'), path.join(ref, 'checkpoint.safetensors'));
    assert.deepEqual(lossesOf(path.join(out, 'metrics.jsonl')), lossesOf(path.join(ref, 'metrics.jsonl')), 'same per-step losses, steps 1..12 once each');
  });

  test('SIGINT saves a checkpoint and stops cleanly; resuming is bit-identical too', async () => {
    await uninterrupted();
    const out = tmp('int');
    const lines: string[] = [];
    const stopped = await runChild(libraryChild(out, {}, 4, 'SIGINT'), (line) => lines.push(line));
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(lines.includes('done 4 true'), lines.join('|'));
    assert.equal(readCheckpointState(path.join(out, 'checkpoint.safetensors'))!.step, 4);
    const resumed = await runChild(libraryChild(out, { resume: true }));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(bytesOf(path.join(out, 'student/model.safetensors')).equals(bytesOf(path.join(ref, 'student/model.safetensors'))));
  });

  test('CLI: Ctrl-C (SIGINT) saves a checkpoint at the step boundary and exits with code 130', async () => {
    const out = tmp('cli-int');
    const plan = path.join(tmp('plan'), 'in-plan.json'); // inputs live outside the output folder
    fs.writeFileSync(plan, JSON.stringify({ groups: [{ anchor: 1, shared: [2] }] }));
    const metrics = path.join(out, 'metrics.jsonl');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'distill', '--teacher', STORIES, '--plan', plan, '--data', TEXT,
      '--steps', '100000', '--seq-len', '16', '--batch', '2', '--checkpoint-every', '100000', '--out', out, '--no-plot'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    while (!(fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length >= 3)) {
      if (child.exitCode !== null) assert.fail(`distill exited (${child.exitCode}) before training: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGINT');
    assert.equal(await done, 130, stderr);
    const state = readCheckpointState(path.join(out, 'checkpoint.safetensors'))!;
    assert.ok(state.step >= 3 && state.step < 100000);
    assert.equal(lossesOf(metrics).length, state.step, 'checkpoint taken at the last logged step');
    assert.match(stderr, /interrupted at step \d+\/100000; checkpoint saved/);
  });

  test('resume refuses changed options', async () => {
    await uninterrupted();
    await assert.rejects(
      distill({ teacher: STORIES, plan: { format: 'echoatt-plan', version: 1, strategy: 'manual', groups: [{ anchor: 1, shared: [2, 3] }] }, data: TEXT, maxDataTokens: 170, generate: { count: 6, length: 40 }, steps: 12, seqLen: 16, batch: 2, accum: 2, checkpointEvery: 3, lr: 1e-2, loss: { alpha: 0.5, beta: 0.5, temperature: 2, gamma: 0.1 }, out: ref, plot: false, resume: true }),
      /lr \(was 0.003, now 0.01\)/,
    );
  });
});

describe('distill: end to end', () => {
  test('library: trains only the shared layers, lowers the loss, saves a loadable student with its plan, plots', async () => {
    const out = tmp('e2e');
    const res = await distill({
      teacher: STORIES, plan: { format: 'echoatt-plan', version: 1, strategy: 'manual', groups: [{ anchor: 1, shared: [2, 3] }] },
      generate: { count: 24, length: 64 }, steps: 25, seqLen: 32, batch: 4, lr: 1e-3, train: 'shared', out, checkpointEvery: 10,
      evalGenerate: 6, loss: { ...DEFAULT_LOSS, alpha: 0 },
    });
    assert.equal(res.step, 25);
    assert.ok(res.evalBefore && res.evalAfter);
    const before = res.evalBefore[0].student.loss;
    const after = res.evalAfter[0].student.loss;
    assert.ok(after < before, `held-out loss ${before} -> ${after}`);
    const { model } = loadModel(res.studentDir);
    assert.ok(model.plan, 'a shared-attention student');
    assert.deepEqual(model.plan.groups, [{ anchor: 1, shared: [2, 3] }]);
    // Only shared layers changed: layer 0 is the teacher's, layer 2's MLP is not.
    const teacher = loadModel(STORIES).model;
    assert.deepEqual(model.params.layers[0].wGate, teacher.params.layers[0].wGate);
    assert.notDeepEqual(model.params.layers[2].wGate, teacher.params.layers[2].wGate);
    for (const f of ['loss.svg', 'loss.png', 'metrics.jsonl', 'summary.json', 'plan.json', 'teacher-samples.jsonl']) assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.equal(lossesOf(path.join(out, 'metrics.jsonl')).length, 25);
    const st = openSafetensors(path.join(out, 'checkpoint.safetensors'));
    try {
      assert.ok(st.tensors.has('adam_m.model.layers.2.mlp.up_proj.weight'));
      assert.ok(!st.tensors.has('adam_m.model.layers.0.mlp.up_proj.weight'), 'frozen params have no optimizer state');
    } finally {
      st.close();
    }
  });

  test('CLI: runs, checkpoints, resumes a finished run as a no-op, and reports bad options', async () => {
    const out = tmp('cli');
    const plan = path.join(tmp('plan'), 'in-plan.json'); // inputs live outside the output folder
    fs.writeFileSync(plan, JSON.stringify({ groups: [{ anchor: 1, shared: [2] }] }));
    const base = ['src/cli/main.ts', 'distill', '--teacher', STORIES, '--plan', plan, '--data', TEXT, '--max-data-tokens', '136', '--steps', '8',
      '--seq-len', '16', '--batch', '2', '--checkpoint-every', '2', '--no-plot', '--quiet', '--json'];
    const args = [...base, '--out', out, '--teacher-cache', path.join(out, 'cache')];
    let json = '';
    const r = await runChild(args, (l) => (json += `${l}\n`));
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(json) as { step: number; studentDir: string };
    assert.equal(res.step, 8);
    assert.ok(fs.existsSync(path.join(res.studentDir, 'config.json')));
    const [cacheDir] = fs.readdirSync(path.join(out, 'cache'));
    assert.equal(fs.readdirSync(path.join(out, 'cache', cacheDir)).length, 8, 'one cached logits file per sequence');
    // Two epochs over 8 sequences: the second reads the cache, and the result is the same as without one.
    const noCache = tmp('cli-nocache');
    const r2 = await runChild([...base, '--out', noCache]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(bytesOf(path.join(noCache, 'student/model.safetensors')).equals(bytesOf(path.join(res.studentDir, 'model.safetensors'))));
    const again = await runChild([...args, '--resume']);
    assert.equal(again.code, 0, again.stderr);
    const bad = await runChild(['src/cli/main.ts', 'distill', '--teacher', STORIES, '--data', TEXT, '--steps', '2', '--out', tmp('cli-bad')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /give a student \(--student\) or a plan \(--plan\)/);
  });
});

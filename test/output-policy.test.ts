/**
 * Nothing a user wrote is ever lost: every writing command (convert, share, headshare, distill, analyze, eval,
 * pipeline) is driven through the output policy's cases — an existing user file as --out, a folder echoatt did not
 * write, --out equal to the model's folder, a rerun without --resume, --force on a folder holding foreign files, a
 * read-only parent, a second run while one holds the lock, a full disk — and each case asserts the exit code, one
 * one-line error, and that every file that existed before is byte-identical afterwards.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, sharedDir } from './helpers.js';
import { LOCK, MANIFEST } from '../src/io/output.js';
import { decodeUtf8Text } from '../src/io/fsutil.js';
import { parseThreads } from '../src/backend/threads.js';

const STORIES_DIR = path.join(sharedDir, 'models/stories260K');
const STORIES = path.join(STORIES_DIR, 'stories260K.bin');
const TEXT = path.join(sharedDir, 'data/corpus/tinystories_sample.txt');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-outpol-'));
fs.chmodSync(root, 0o755); // the read-only-parent case runs the CLI as another user when the tests run as root
const inputs = path.join(root, 'inputs');
const PLAN = path.join(inputs, 'plan.json');

interface Run { status: number | null; stdout: string; stderr: string }

function cli(args: string[], opts: { uid?: number } = {}): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], {
    cwd: repoRoot, encoding: 'utf8', timeout: 180_000, ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The writing commands with small, quick settings; `out` is where each writes. */
const COMMANDS: Record<string, (out: string, model?: string) => string[]> = {
  convert: (out, model = STORIES) => ['convert', '--model', model, '--out', out],
  share: (out, model = STORIES) => ['share', '--model', model, '--plan', PLAN, '--out', out],
  headshare: (out, model = STORIES) => ['headshare', '--model', model, '--share-rate', '0.2', '--no-figures', '--out', out],
  distill: (out, model = STORIES) => ['distill', '--teacher', model, '--plan', PLAN, '--data', TEXT, '--steps', '2', '--seq-len', '16', '--batch', '2', '--no-plot', '--quiet', '--out', out],
  analyze: (out, model = STORIES) => ['analyze', '--model', model, '--seqs', '2', '--seq-len', '32', '--no-search', '--criticality-seqs', '0', '--quiet', '--out', out],
  eval: (out, model = STORIES) => ['eval', '--model', model, '--tasks', 'piqa', '--limit', '2', '--no-speed', '--quiet', '--out', out],
  pipeline: (out, model = STORIES) => ['pipeline', '--model', model, '--seqs', '2', '--seq-len', '32', '--distill-steps', '2', '--distill-generate', '2', '--distill-batch', '2',
    '--distill-seq-len', '32', '--limit', '2', '--tasks', 'piqa', '--ppl-windows', '2', '--out', out],
};
const NAMES = Object.keys(COMMANDS);

/** Every file under `dir` with the hash of its bytes (the lock and manifest of a finished run are not there). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  if (fs.statSync(dir).isDirectory()) walk(dir);
  else out.set('.', createHash('sha256').update(fs.readFileSync(dir)).digest('hex'));
  return out;
}

/** Exit 2 and exactly one `echoatt:` line on stderr matching `re`, with no stack trace. */
function refused(r: Run, re: RegExp, what: string): void {
  assert.equal(r.status, 2, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('echoatt:'));
  assert.equal(lines.length, 1, `${what}: one error line, got:\n${r.stderr}`);
  assert.match(lines[0], re, what);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: no stack trace`);
}

function unchanged(before: Map<string, string>, dir: string, what: string): void {
  const now = snapshot(dir);
  for (const [f, h] of before) assert.equal(now.get(f), h, `${what}: ${f} is byte-identical`);
}

function userFolder(name: string): string {
  const d = path.join(root, name);
  fs.mkdirSync(path.join(d, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(d, 'thesis.tex'), '\\documentclass{article} % years of work\n');
  fs.writeFileSync(path.join(d, 'sub', 'data.csv'), 'a,b\n1,2\n');
  return d;
}

before(() => {
  fs.mkdirSync(inputs, { recursive: true });
  fs.writeFileSync(PLAN, JSON.stringify({ groups: [{ anchor: 1, shared: [2] }] }));
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('every writing command refuses what it must not touch, before any computation', { concurrency: 2 }, () => {
  for (const name of NAMES) {
    test(`${name}: a user file, a foreign folder (also with --force), the model's own folder, another run's lock`, () => {
      const file = path.join(root, `${name}-notes.txt`);
      fs.writeFileSync(file, 'my notes\n');
      const f0 = snapshot(file);
      refused(cli(COMMANDS[name](file)), /names an existing file, not a folder/, `${name} into a file`);
      unchanged(f0, file, name);

      const foreign = userFolder(`${name}-foreign`);
      const s0 = snapshot(foreign);
      refused(cli(COMMANDS[name](foreign)), /not empty and was not written by echoatt \(holds sub, thesis\.tex\)/, `${name} into a foreign folder`);
      refused(cli([...COMMANDS[name](foreign), '--force']), /not empty and was not written by echoatt/, `${name} --force into a foreign folder`);
      unchanged(s0, foreign, name);
      assert.ok(!fs.existsSync(path.join(foreign, MANIFEST)) && !fs.existsSync(path.join(foreign, LOCK)));

      const modelDir = path.join(root, `${name}-model`);
      fs.cpSync(STORIES_DIR, modelDir, { recursive: true });
      const m0 = snapshot(modelDir);
      refused(cli(COMMANDS[name](modelDir, path.join(modelDir, 'stories260K.bin'))), /holds an input of this command \(stories260K\.bin\)|not empty and was not written/, `${name} into the model's folder`);
      unchanged(m0, modelDir, name);

      // A second run while another holds the folder's lock (a live process: this test's own sleeping child).
      const busy = path.join(root, `${name}-busy`);
      fs.mkdirSync(busy);
      const holder = spawn('sleep', ['30']);
      try {
        fs.writeFileSync(path.join(busy, LOCK), JSON.stringify({ pid: holder.pid, host: os.hostname(), command: name, started: new Date().toISOString() }));
        const b0 = snapshot(busy);
        refused(cli(COMMANDS[name](busy)), new RegExp(`is in use by another echoatt run \\(pid ${holder.pid}`), `${name} while locked`);
        unchanged(b0, busy, name);
      } finally {
        holder.kill();
      }
    });
  }
});

describe('a finished run is neither overwritten nor replaced with foreign files in it; --force replaces only its own', { concurrency: 2 }, () => {
  for (const name of NAMES) {
    test(`${name}: rerun without --resume, --force with a user file inside, a stale lock, --force`, () => {
      const out = path.join(root, `${name}-run`);
      const first = cli(COMMANDS[name](out));
      assert.equal(first.status, 0, first.stderr);
      assert.ok(!fs.existsSync(path.join(out, LOCK)), 'the lock is released');
      const manifest = JSON.parse(fs.readFileSync(path.join(out, MANIFEST), 'utf8')) as { command: string; files: string[] };
      assert.equal(manifest.command, name);
      assert.deepEqual([...manifest.files].sort(), fs.readdirSync(out).filter((f) => f !== MANIFEST).sort(), 'the manifest lists what the run wrote');

      const s0 = snapshot(out);
      const resumable = name === 'distill' || name === 'pipeline';
      refused(cli(COMMANDS[name](out)), new RegExp(`earlier \`echoatt ${name}\` run .*pass ${resumable ? '--resume to continue it or ' : ''}--force to replace it`), `${name} rerun`);
      unchanged(s0, out, name);

      fs.writeFileSync(path.join(out, 'my-notes.md'), 'notes on this run\n');
      const s1 = snapshot(out);
      refused(cli([...COMMANDS[name](out), '--force']), /--force replaces only what echoatt wrote, and this folder also holds my-notes\.md/, `${name} --force with a user file`);
      unchanged(s1, out, name);
      fs.rmSync(path.join(out, 'my-notes.md'));

      // A lock left by a process that no longer runs: reported; --force breaks it (and replaces the run).
      const dead = spawnSync('true');
      fs.writeFileSync(path.join(out, LOCK), JSON.stringify({ pid: dead.pid, host: os.hostname(), command: name, started: '2026-01-01T00:00:00Z' }));
      refused(cli(COMMANDS[name](out)), new RegExp(`stale lock \\(pid ${dead.pid} .*no longer running\\); pass --force to break it`), `${name} stale lock`);
      const again = cli([...COMMANDS[name](out), '--force']);
      assert.equal(again.status, 0, again.stderr);
      assert.ok(!fs.existsSync(path.join(out, LOCK)));
    });
  }
});

test('a second distill into a folder that a running distill holds is refused at once; the first finishes normally', async () => {
  const out = path.join(root, 'concurrent');
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'distill', '--teacher', STORIES, '--plan', PLAN, '--data', TEXT, '--steps', '100000', '--seq-len', '16',
    '--batch', '2', '--checkpoint-every', '100000', '--no-plot', '--quiet', '--out', out];
  const first = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  first.stderr.on('data', (d) => (stderr += String(d)));
  const done = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
  const metrics = path.join(out, 'metrics.jsonl');
  while (!(fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').length > 0)) {
    if (first.exitCode !== null) assert.fail(`distill exited (${first.exitCode}) before training: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const second = cli([...COMMANDS.distill(out), '--resume']);
  refused(second, new RegExp(`is in use by another echoatt run \\(pid ${first.pid} on .*\`echoatt distill\``), 'second distill');
  first.kill('SIGINT');
  assert.equal(await done, 130, stderr);
  assert.ok(!fs.existsSync(path.join(out, LOCK)), 'Ctrl-C releases the lock');
});

test('a read-only parent folder: refused before any computation, nothing created', (t) => {
  const parent = path.join(root, 'readonly');
  fs.mkdirSync(parent);
  fs.chmodSync(parent, 0o555);
  // Root ignores permissions; run the commands as `nobody` then (when that user can read the project).
  const uid = process.getuid?.() === 0 ? 65534 : undefined;
  if (uid !== undefined && cli(['--version'], { uid }).status !== 0) {
    t.skip('running as root and user 65534 cannot run the CLI here');
    return;
  }
  for (const name of NAMES) {
    refused(cli(COMMANDS[name](path.join(parent, 'new')), { uid }), /new: cannot create the output folder \(EACCES\)/, `${name} under a read-only folder`);
    assert.deepEqual(fs.readdirSync(parent), []);
  }
});

test('a full disk: a one-line error naming the file and ENOSPC; files already there are untouched', (t) => {
  const mnt = path.join(root, 'small-disk');
  fs.mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.skip(`cannot mount a small tmpfs here (${(m.stderr || m.error?.message || '').trim()}); the disk-full cases need one`);
    return;
  }
  try {
    fs.writeFileSync(path.join(mnt, 'keep.txt'), 'kept\n');
    const fill = () => {
      const free = fs.statfsSync(mnt).bavail * fs.statfsSync(mnt).bsize;
      if (free > 12288) fs.writeFileSync(path.join(mnt, `filler-${free}`), Buffer.alloc(free - 12288));
    };
    for (const name of NAMES) {
      fill();
      const s0 = snapshot(mnt);
      const r = cli(COMMANDS[name](path.join(mnt, `out-${name}`)));
      refused(r, /ENOSPC/, `${name} on a full disk`);
      unchanged(s0, mnt, name);
    }
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('bad values are refused: --threads beyond 4 × cores, --top-p outside (0, 1], an empty plan, binary --data', () => {
  assert.throws(() => parseThreads(String(4 * os.availableParallelism() + 1), '--threads'), /--threads: expected an integer from 1 to/);
  assert.equal(parseThreads(String(os.availableParallelism()), '--threads'), os.availableParallelism());
  refused(cli(['generate', '--threads', '1000']), /--threads: expected an integer from 1 to \d+ \(4 × the \d+ cores\), got '1000'/, 'threads');
  refused(cli(['generate', '--top-p', '2']), /--top-p: expected a number in \(0, 1\]/, 'top-p 2');
  refused(cli(['generate', '--top-p', '0']), /--top-p: expected a number in \(0, 1\]/, 'top-p 0');
  refused(cli(['serve', '--port', '99999']), /--port: expected an integer from 0 to 65535, got '99999'/, 'port 99999');
  const empty = path.join(inputs, 'empty-plan.json');
  fs.writeFileSync(empty, '{"groups":[]}');
  const out = path.join(root, 'empty-plan-out');
  refused(cli(['share', '--plan', empty, '--out', out]), /empty-plan\.json: shares no layer/, 'empty plan');
  assert.ok(!fs.existsSync(out), 'no folder left behind');
  refused(cli(['distill', '--plan', empty, '--data', TEXT, '--steps', '1', '--out', out]), /empty-plan\.json: shares no layer/, 'empty plan (distill)');
  assert.ok(!fs.existsSync(out), 'no folder left behind');
  const binary = path.join(inputs, 'random.txt');
  fs.writeFileSync(binary, Buffer.concat([Buffer.from('plain text first\n'), Buffer.from([0xff, 0x00, 0x13, 0x80])]));
  refused(cli(['distill', '--plan', PLAN, '--data', binary, '--steps', '1', '--out', out]), /random\.txt: not UTF-8 text: byte 0xff, which is not UTF-8 at byte offset 17/, 'binary data');
  assert.ok(!fs.existsSync(out), 'no folder left behind');
  assert.equal(decodeUtf8Text(Buffer.from('héllo — ✓ 😀'), 'x'), 'héllo — ✓ 😀');
  assert.throws(() => decodeUtf8Text(Buffer.from([0x61, 0xed, 0xa0, 0x80]), 'f.txt'), /f\.txt: not UTF-8 text: byte 0xed, which is not UTF-8 at byte offset 1/);
  assert.throws(() => decodeUtf8Text(Buffer.from([0x61, 0x62, 0x00]), 'f.txt'), /a NUL byte at byte offset 2/);
});

test('GGUF output: an existing file is refused without --force, the input never overwritten', () => {
  const gguf = path.join(root, 'model.gguf');
  fs.writeFileSync(gguf, 'an older export\n');
  const g0 = snapshot(gguf);
  refused(cli(['convert', '--to', 'gguf', '--out', gguf]), /model\.gguf: --out exists; pass --force to overwrite it/, 'gguf exists');
  unchanged(g0, gguf, 'gguf');
  refused(cli(['convert', '--to', 'gguf', '--model', STORIES, '--out', STORIES, '--force']), /--out is the input of this command/, 'gguf onto the input');
  const ok = cli(['convert', '--to', 'gguf', '--out', gguf, '--force']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(fs.readFileSync(gguf).subarray(0, 4).toString(), 'GGUF');
});

test('filesystem failures that reach the CLI boundary are one line naming the path; bugs ask to be reported', () => {
  const r = cli(['generate', '--model', path.join(root, 'no-such-model.bin')]);
  assert.equal(r.status, 2);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.match(r.stderr, /no-such-model\.bin/);
});

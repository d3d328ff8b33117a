/**
 * End-to-end: `echoatt pipeline` on stories260K with tiny settings (the default teacher is gutenberg16); artefacts,
 * the measured, head-aligned plan search with its ranking, held-out perplexity of all three models, resume and
 * overwrite protection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers.js';

const STORIES = path.join(repoRoot, '../shared/models/stories260K/stories260K.bin');
const TINY = ['--model', STORIES, '--seqs', '4', '--seq-len', '64', '--distill-steps', '4', '--distill-generate', '4', '--distill-batch', '2', '--distill-seq-len', '64',
  '--limit', '3', '--tasks', 'piqa,arc_easy,winogrande', '--ppl-windows', '3'];

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'pipeline', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 300_000,
  });
}

function pngOk(b: Buffer): boolean {
  // Signature, then an IHDR chunk with a non-zero width and height.
  return b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) &&
    b.toString('latin1', 12, 16) === 'IHDR' && b.readUInt32BE(16) > 0 && b.readUInt32BE(20) > 0;
}

test('pipeline writes a complete, well-formed report and resumes instead of redoing finished stages', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-pipeline-'));
  const out = path.join(dir, 'run');
  try {
    const r = cli(['--out', out, ...TINY]);
    assert.equal(r.status, 0, r.stderr);
    for (const stage of ['analyze', 'share', 'distill', 'evaluate', 'report']) {
      assert.ok(fs.existsSync(path.join(out, stage, 'stage.json')), `${stage} finished`);
    }
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    assert.equal(summary.format, 'echoatt-pipeline/2');
    assert.ok(summary.plan.groups.some((g: { shared: number[] }) => g.shared.length > 0));
    assert.equal(summary.plan.strategy, 'search (aligned)');
    assert.ok(summary.search.chosen.delta !== null && summary.search.cost.evaluations > summary.search.path.length, 'the plan was measured against others');
    assert.ok(summary.search.runnersUp.every((t: { loss: number }) => t.loss >= summary.search.chosen.loss), 'the chosen plan is the measured best');
    assert.deepEqual(summary.heldOut.models.map((m: { name: string }) => m.name), ['teacher', 'training-free student', 'distilled student']);
    assert.ok(summary.heldOut.models.every((m: { perplexity: number }) => Number.isFinite(m.perplexity) && m.perplexity > 1));
    assert.match(summary.headline, /Held-out perplexity .* teacher [\d.]+, training-free student [\d.]+ .*distilled student [\d.]+/);
    assert.deepEqual(summary.zeroShot.models, ['teacher', 'training-free student', 'distilled student']);
    assert.ok(summary.speed.ratios.length === 2 && summary.speed.ratios.every((r: { decode: number }) => r.decode > 0));
    assert.ok(summary.cost.attentionFlops.removed / summary.cost.attentionFlops.total >= 0.3);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    for (const word of ['analyze', 'share', 'distill', 'evaluate', 'piqa', 'perplexity', 'prefill', 'KV-cache', 'Distillation loss']) {
      assert.ok(html.includes(word), `report mentions ${word}`);
    }
    assert.doesNotMatch(html, /<script|src="http/i, 'self-contained');
    const imgs = [...html.matchAll(/src="data:image\/png;base64,([^"]+)"/g)].map((m) => Buffer.from(m[1], 'base64'));
    assert.ok(imgs.length >= 3, `${imgs.length} inline images`);
    for (const img of imgs) assert.ok(pngOk(img), 'inline PNG decodes');
    assert.ok(pngOk(fs.readFileSync(path.join(out, 'analyze', 'cosine.png'))));
    assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /!\[Attention cosine similarity between layers\]\(analyze\/cosine\.png\)/);
    assert.ok(fs.existsSync(path.join(out, 'distill', 'student', 'config.json')));
    assert.ok(fs.existsSync(path.join(out, 'share', 'student', 'model.safetensors')));

    // A finished run is not overwritten: a rerun needs --resume (and then is complete already) or --force; different
    // settings are refused on resume.
    const again = cli(['--out', out, ...TINY]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /earlier `echoatt pipeline` run .*pass --resume to continue it or --force to replace it/);
    const complete = cli(['--out', out, ...TINY, '--resume']);
    assert.equal(complete.status, 2);
    assert.match(complete.stderr, /already holds a complete run/);
    const other = cli(['--out', out, ...TINY, '--budget', '0.5', '--resume']);
    assert.equal(other.status, 2);
    assert.match(other.stderr, /different settings/);

    // Interrupted after distillation: the resumed run reuses analyze/share/distill and redoes the rest.
    fs.rmSync(path.join(out, 'evaluate', 'stage.json'));
    fs.rmSync(path.join(out, 'report', 'stage.json'));
    const resumed = cli(['--out', out, ...TINY, '--resume']);
    assert.equal(resumed.status, 0, resumed.stderr);
    for (const st of ['analyze', 'share', 'distill']) assert.match(resumed.stderr, new RegExp(`${st}: already done, reused`));
    assert.match(resumed.stderr, /evaluate: running/);
    const s2 = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    assert.deepEqual(s2.stagesSkipped, ['analyze', 'share', 'distill']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pipeline refuses a non-pipeline folder and bad options with clear errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-pipeline-'));
  try {
    fs.writeFileSync(path.join(dir, 'precious.txt'), 'user data');
    const r = cli(['--out', dir, ...TINY]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /not empty and was not written by echoatt \(holds precious.txt\)/);
    assert.equal(fs.readFileSync(path.join(dir, 'precious.txt'), 'utf8'), 'user data');
    const b = cli(['--out', path.join(dir, 'x'), '--budget', '1.5']);
    assert.equal(b.status, 2);
    assert.match(b.stderr, /--budget/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

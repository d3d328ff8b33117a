/**
 * The pipeline's report: `report.md` (images referenced beside it) and `report.html` (self-contained: images inlined
 * as data URIs, no scripts, no external resources), both rendered from one list of sections.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TableRow } from '../eval/table.js';
import { writeFileAtomic } from '../report/plot.js';
import type { PipelineReportFiles, PipelineSummary } from './summary.js';

export type { PipelineReportFiles };

interface Section {
  title: string;
  text?: string[];
  tables?: string[][][];
  images?: { title: string; png: string; caption: string }[];
  pre?: string;
}

const pct = (part: number, whole: number) => (whole ? `${((100 * part) / whole).toFixed(1)}%` : '–');
const num = (v: number) => Math.round(v).toLocaleString('en-US');

function fmt(v: number, kind: TableRow['format']): string {
  if (!Number.isFinite(v)) return String(v);
  if (kind === 'acc') return v.toFixed(4);
  if (kind === 'ppl') return v >= 100 ? v.toFixed(1) : v.toFixed(3);
  if (kind === 'rate') return v.toFixed(1);
  if (kind === 'bytes') return v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(2)} MiB` : `${num(v)} B`;
  return num(v);
}

function qualitySections(r: PipelineSummary): Section[] {
  const held = [['model', 'held-out loss (nats/token)', 'held-out perplexity', 'vs teacher'],
    ...r.heldOut.models.map((m) => [m.name, m.loss.toFixed(4), m.perplexity.toFixed(2), m.name === 'teacher' ? '' : `${m.vsTeacher >= 0 ? '+' : ''}${(100 * m.vsTeacher).toFixed(2)}%`])];
  const c = r.cost;
  const savings = [['what', 'teacher', 'removed', 'removed %'],
    ['parameters', num(c.params.total), num(c.params.removed), pct(c.params.removed, c.params.total)],
    [`attention FLOPs / token @T=${c.attentionFlops.seqLen}`, num(c.attentionFlops.total), num(c.attentionFlops.removed), pct(c.attentionFlops.removed, c.attentionFlops.total)],
    ['KV-cache bytes / token (f32)', num(c.kvCacheBytesPerToken.total), num(c.kvCacheBytesPerToken.removedK), pct(c.kvCacheBytesPerToken.removedK, c.kvCacheBytesPerToken.total)]];
  const sp = r.speed;
  const speed = [['model', `prefill tok/s (T=${sp.settings.prefill})`, `decode tok/s (${sp.settings.decodeTokens} tokens after ${sp.settings.decodeFrom})`, 'prefill vs teacher', 'decode vs teacher'],
    ...sp.models.map((m, i) => {
      const r = sp.ratios[i - 1];
      const cell = (v: number, range: number[]) => `${v.toFixed(3)}× (${range[0].toFixed(2)}–${range[1].toFixed(2)})`;
      return [m.name, m.prefillTokensPerSecond.toFixed(0), m.decodeTokensPerSecond.toFixed(1), r ? cell(r.prefill, r.range.prefill) : '', r ? cell(r.decode, r.range.decode) : ''];
    })];
  return [
    { title: 'Held-out quality', text: [`Token perplexity on ${r.heldOut.windows} windows of ${r.heldOut.seqLen} tokens spread over \`${r.heldOut.source}\` (text the teacher never trained, calibrated or was tuned on), the same windows for every model.`], tables: [held] },
    { title: 'What sharing removes', tables: [savings] },
    { title: 'Speed', text: [`Measured side by side in this run (${sp.settings.backend} backend, ${sp.settings.threads} thread(s); ${sp.settings.rounds} alternating rounds, each running every model back to back; tok/s: the fastest round; vs teacher: median of the per-round ratios, min–max in brackets).`], tables: [speed] },
  ];
}

function searchSection(r: PipelineSummary): Section[] {
  const sr = r.search;
  if (!sr) return [];
  const row = (t: NonNullable<PipelineSummary['search']>['path'][number], label: string) =>
    [label, String(t.shared.length), [...t.shared].sort((x, y) => x.layer - y.layer).map((m) => `${m.layer}←${m.anchor}`).join(' '), (t.delta ?? NaN).toFixed(4), pct(t.removed.flops ?? 0, 1)];
  const head = ['', 'shared layers', 'plan (layer←anchor)', 'Δ calibration loss', 'attention FLOPs removed'];
  return [{
    title: 'Plan search',
    text: [`Training-free students measured on calibration text (teacher samples), heads ${sr.align === 'cosine' ? 're-aligned by cosine' : 'not re-aligned'}: ${sr.cost.evaluations} plans, ${(sr.cost.forwardPasses ?? 0).toFixed(1)} forward passes, ${(sr.cost.seconds ?? 0).toFixed(1)} s. The chosen plan is the measured best of those tried.`],
    tables: [[head, row(sr.chosen, 'chosen'), ...sr.runnersUp.slice(0, 5).map((t, i) => row(t, `runner-up ${i + 1}`))], [head, ...sr.path.map((t) => row(t, 'best with k'))]],
  }];
}

function zeroShotSection(r: PipelineSummary): Section[] {
  const z = r.zeroShot;
  if (!z) return [];
  const names = z.models;
  const head = ['task', 'metric', ...names];
  const body = z.rows.filter((x) => x.section === 'task').map((x) => [x.label + (x.chance !== null ? ` (chance ${x.chance.toFixed(2)})` : ''), x.metric,
    ...x.values.map((v) => (v ? fmt(v.value, x.format) + (v.stderr !== null ? ` ± ${fmt(v.stderr, x.format)}` : '') : '–'))]);
  return [{ title: 'Zero-shot tasks', text: [`lm-evaluation-harness scoring, ${r.settings.limit} items per task; differences smaller than about two standard errors (±) are noise.`], tables: [[head, ...body]] }];
}

function distillSection(r: PipelineSummary): Section[] {
  const d = r.distill;
  if (!d) return [];
  const t = [['set', 'teacher ppl', 'student before', 'student after', 'gap closed']];
  for (const b of d.evalBefore ?? []) {
    const a = d.evalAfter?.find((x) => x.name === b.name);
    if (a) t.push([b.name, b.teacher.perplexity.toFixed(3), b.student.perplexity.toFixed(3), a.student.perplexity.toFixed(3), pct(b.student.loss - a.student.loss, b.student.loss - b.teacher.loss)]);
  }
  return [{
    title: 'Distillation',
    text: [`${d.step} steps on ${r.settings.distillData ? `\`${r.settings.distillData}\`` : 'teacher samples'}, ${d.tokensPerSec.toFixed(0)} tok/s, ${num(d.trainableParams)} trainable parameters.`],
    tables: t.length > 1 ? [t] : [],
    images: d.plotFiles ? [{ title: 'Distillation loss', png: d.plotFiles.png, caption: 'Training loss of the student during distillation.' }] : [],
  }];
}

function sections(r: PipelineSummary): Section[] {
  const charts = r.analysis.files?.charts ?? {};
  const fig = (name: string, title: string, caption: string) => (charts[name] ? [{ title, png: charts[name].png, caption }] : []);
  return [
    { title: 'Setup', text: [
      `Teacher: \`${r.teacher.path}\` (${r.teacher.layers} layers, ${num(r.teacher.parameters)} parameters).`,
      `Calibration: ${r.analysis.data.description} (${r.analysis.data.sequences} × ${r.analysis.data.seqLen} tokens).`,
      `Plan: **${r.plan.groups.map((g) => `${g.shared.length > 1 ? `layers ${g.shared.join(', ')} reuse` : `layer ${g.shared[0]} reuses`} layer ${g.anchor}`).join('; ')}** — ${r.planWhy}.`,
      `Stages: analyze → share → ${r.distill ? 'distill' : 'distill (skipped: 0 steps)'} → evaluate → report.` +
        (r.stagesSkipped.length ? ` Reused from an earlier interrupted run: ${r.stagesSkipped.join(', ')}.` : ''),
    ] },
    ...qualitySections(r), ...searchSection(r), ...distillSection(r), ...zeroShotSection(r),
    { title: 'Figures', images: [
      ...fig('cosine', 'Attention cosine similarity between layers', 'Head-averaged cosine of the flattened causal attention matrices; 1 = identical attention.'),
      ...fig('search-curve', 'Measured search', 'Calibration loss rise of the best plan found for each number of shared layers.'),
      ...fig('single-shares', 'Cost of single shares', 'Loss rise when one layer (row) reuses one anchor (column).'),
    ] },
    { title: 'Settings', pre: JSON.stringify(r.settings, null, 2) },
  ];
}

function mdTable([head, ...body]: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function toMarkdown(out: string, r: PipelineSummary): string {
  const lines = ['# echoatt pipeline report', '', `> ${r.headline}`, ''];
  for (const s of sections(r)) {
    lines.push(`## ${s.title}`, '', ...(s.text ?? []).flatMap((t) => [t, '']), ...(s.tables ?? []).flatMap((t) => [mdTable(t), '']));
    for (const im of s.images ?? []) lines.push(`### ${im.title}`, '', `![${im.title}](${path.relative(out, im.png)})`, '', im.caption, '');
    if (s.pre) lines.push('```json', s.pre, '```', '');
  }
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const inline = (s: string) => esc(s).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`(.+?)`/g, '<code>$1</code>');

function htmlTable([head, ...body]: string[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body.map((r) => `<tr>${r.map((c, i) => `<td${i >= 1 && /^[-+\d.,%× ]+$/.test(c) ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

const STYLE = `body{font-family:DejaVu Sans,system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafbfc}
figure{margin:1em 0}figure img{max-width:min(100%,720px);border:1px solid #eee}
.headline{background:#eef6ee;border:1px solid #cde3cd;padding:.6em 1em;border-radius:4px}figcaption{margin-bottom:.3em}
code,pre{background:#f5f5f5;padding:0 .2em}pre{padding:.6em;overflow:auto}`;

function toHtml(r: PipelineSummary): string {
  const body = sections(r).map((s) => [
    `<h2>${esc(s.title)}</h2>`, ...(s.text ?? []).map((t) => `<p>${inline(t)}</p>`), ...(s.tables ?? []).map(htmlTable),
    ...(s.images ?? []).map((im) => (fs.existsSync(im.png) ? `<figure><figcaption><b>${esc(im.title)}</b> — ${esc(im.caption)}</figcaption><img src="data:image/png;base64,${fs.readFileSync(im.png).toString('base64')}" alt="${esc(im.title)}"></figure>` : '')),
    ...(s.pre ? [`<pre>${esc(s.pre)}</pre>`] : []),
  ].join('\n')).join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>echoatt pipeline report</title>\n<style>\n${STYLE}\n</style></head><body>\n<h1>echoatt pipeline report</h1>\n<p class="headline">${inline(r.headline)}</p>\n${body}\n</body></html>\n`;
}

/** Write report.md and report.html under `out`; returns their paths (and where summary.json goes). */
export async function writePipelineReport(out: string, r: PipelineSummary): Promise<PipelineReportFiles> {
  const files: PipelineReportFiles = { html: path.join(out, 'report.html'), md: path.join(out, 'report.md'), json: path.join(out, 'summary.json') };
  writeFileAtomic(files.md, toMarkdown(out, r));
  writeFileAtomic(files.html, toHtml(r));
  return files;
}

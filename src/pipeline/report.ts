/**
 * The pipeline's report: `report.md` (images referenced beside it) and `report.html` (self-contained: images inlined
 * as data URIs, no scripts, no external resources), from the stages' results.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AnalysisSummary } from '../analysis/report.js';
import type { SharingCost } from '../sharing/cost.js';
import type { SharingPlan } from '../models/sharing-plan.js';
import type { TableRow } from '../eval/table.js';
import { writeFileAtomic } from '../report/plot.js';
import { type EvalSet } from '../distill/options.js';

export interface PipelineReportFiles {
  html: string;
  md: string;
  json: string;
}

export interface PipelineReportInput {
  settings: Record<string, unknown>;
  teacher: { path: string; parameters: number; layers: number };
  plan: SharingPlan;
  planWhy: string;
  cost: SharingCost;
  analysis: AnalysisSummary;
  distill: { step: number; steps: number; tokensPerSec: number; trainableParams: number; lastLoss?: number; evalBefore?: EvalSet[]; evalAfter?: EvalSet[] } | null;
  rows: TableRow[];
  modelNames: string[];
  lossCurve: string | null;
  stagesSkipped: string[];
}

function fmt(v: number, kind: TableRow['format']): string {
  if (!Number.isFinite(v)) return String(v);
  switch (kind) {
    case 'acc':
      return v.toFixed(4);
    case 'ppl':
      return v >= 100 ? v.toFixed(1) : v.toFixed(3);
    case 'rate':
      return v.toFixed(1);
    case 'bytes':
      return v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(2)} MiB` : `${Math.round(v).toLocaleString('en-US')} B`;
    default:
      return Math.round(v).toLocaleString('en-US');
  }
}

function pct(part: number, whole: number): string {
  return whole ? `${((100 * part) / whole).toFixed(1)}%` : '–';
}

/** Rows of [header, ...body] for the side-by-side quality/speed table. */
function qualityTable(rows: TableRow[], names: string[]): string[][] {
  const head = ['section', 'measurement', 'metric', ...names.flatMap((n, i) => (i === 0 ? [n] : [n, `Δ vs ${names[0]}`]))];
  const body = rows.map((r) => {
    const cells = [r.section, r.label + (r.chance !== null ? ` (chance ${r.chance.toFixed(2)})` : ''), `${r.metric} ${r.higherIsBetter ? '↑' : '↓'}`];
    r.values.forEach((v, i) => {
      cells.push(v ? fmt(v.value, r.format) + (v.stderr !== null ? ` ± ${fmt(v.stderr, r.format)}` : '') : '–');
      if (i > 0) {
        const d = r.deltaKind === 'pct' ? r.deltaPct[i] : r.delta[i];
        cells.push(d === null ? '–' : r.deltaKind === 'pct' ? `${d >= 0 ? '+' : ''}${d.toFixed(1)}%` : `${d >= 0 ? '+' : ''}${fmt(d, r.format)}`);
      }
    });
    return cells;
  });
  return [head, ...body];
}

function savingsTable(c: SharingCost): string[][] {
  return [
    ['what', 'teacher', 'removed', 'removed %'],
    ['parameters', c.params.total.toLocaleString('en-US'), c.params.removed.toLocaleString('en-US'), pct(c.params.removed, c.params.total)],
    [`attention FLOPs / token @T=${c.attentionFlops.seqLen}`, c.attentionFlops.total.toLocaleString('en-US'), c.attentionFlops.removed.toLocaleString('en-US'), pct(c.attentionFlops.removed, c.attentionFlops.total)],
    ['KV-cache bytes / token (f32)', String(c.kvCacheBytesPerToken.total), String(c.kvCacheBytesPerToken.removedK), pct(c.kvCacheBytesPerToken.removedK, c.kvCacheBytesPerToken.total)],
  ];
}

function distillTable(d: NonNullable<PipelineReportInput['distill']>): string[][] {
  const out = [['held-out set', 'teacher ppl', 'student before', 'student after', 'gap closed']];
  for (const before of d.evalBefore ?? []) {
    const after = d.evalAfter?.find((a) => a.name === before.name);
    if (!after) continue;
    const gap = before.student.loss - before.teacher.loss;
    const closed = gap > 0 ? pct(before.student.loss - after.student.loss, gap) : '–';
    out.push([before.name, before.teacher.perplexity.toFixed(3), before.student.perplexity.toFixed(3), after.student.perplexity.toFixed(3), closed]);
  }
  return out;
}

function mdTable(t: string[][]): string {
  const [head, ...body] = t;
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlTable(t: string[][]): string {
  const [head, ...body] = t;
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body
    .map((r) => `<tr>${r.map((c, i) => `<td${i >= 3 ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function dataUri(png: string): string | null {
  return fs.existsSync(png) ? `data:image/png;base64,${fs.readFileSync(png).toString('base64')}` : null;
}

function planText(plan: SharingPlan): string {
  return plan.groups.filter((g) => g.shared.length).map((g) => `layers ${g.shared.join(', ')} reuse layer ${g.anchor}`).join('; ');
}

/** One sentence with the result a reader wants first. */
function headline(r: PipelineReportInput): string {
  const c = r.cost;
  const parts = [`The student shares ${c.sharedLayers.length} of ${r.teacher.layers} layers' attention, removing ${pct(c.attentionFlops.removed, c.attentionFlops.total)} of attention FLOPs, ${pct(c.kvCacheBytesPerToken.removedK, c.kvCacheBytesPerToken.total)} of the KV cache and ${pct(c.params.removed, c.params.total)} of parameters.`];
  const ppl = r.rows.find((row) => row.section === 'perplexity' && row.metric.startsWith('token ppl'));
  if (ppl && ppl.values.every(Boolean)) {
    const v = ppl.values.map((x) => fmt(x!.value, ppl.format));
    parts.push(`Token perplexity on ${ppl.label.split(' · ')[0]}: teacher ${v[0]}, training-free student ${v[1]}${v[2] ? `, distilled student ${v[2]}` : ''}.`);
  }
  const d = r.distill?.evalBefore?.[0];
  const after = d && r.distill?.evalAfter?.find((a) => a.name === d.name);
  if (d && after && d.student.loss > d.teacher.loss) {
    parts.push(`Distillation closed ${pct(d.student.loss - after.student.loss, d.student.loss - d.teacher.loss)} of the loss gap to the teacher on ${d.name}.`);
  }
  return parts.join(' ');
}

/** Write report.md and report.html under `out`; returns their paths (and where summary.json goes). */
export async function writePipelineReport(out: string, r: PipelineReportInput): Promise<PipelineReportFiles> {
  const files: PipelineReportFiles = { html: path.join(out, 'report.html'), md: path.join(out, 'report.md'), json: path.join(out, 'summary.json') };
  const charts = r.analysis.files?.charts ?? {};
  const images: { title: string; png: string; caption: string }[] = [];
  if (charts.cosine) images.push({ title: 'Attention cosine similarity between layers', png: charts.cosine.png, caption: 'Head-averaged cosine of the flattened causal attention matrices; 1 = identical attention.' });
  if (charts.js) images.push({ title: 'Jensen–Shannon divergence between layers', png: charts.js.png, caption: 'Mean JS divergence of corresponding attention rows (nats); 0 = identical.' });
  if (charts.criticality) images.push({ title: 'Criticality', png: charts.criticality.png, caption: 'Loss change when a layer reuses its most similar earlier layer\'s attention.' });
  if (r.lossCurve) images.push({ title: 'Distillation loss', png: r.lossCurve, caption: 'Training loss of the student during distillation.' });

  const q = qualityTable(r.rows, r.modelNames);
  const sav = savingsTable(r.cost);
  const intro = [
    `Teacher: \`${r.teacher.path}\` (${r.teacher.layers} layers, ${r.teacher.parameters.toLocaleString('en-US')} parameters).`,
    `Calibration: ${r.analysis.data.description} (${r.analysis.data.sequences} × ${r.analysis.data.seqLen} tokens).`,
    `Plan: **${planText(r.plan)}** — ${r.planWhy}.`,
  ];
  const stages = `Stages: analyze → share → ${r.distill ? `distill (${r.distill.step} steps, ${r.distill.tokensPerSec.toFixed(0)} tok/s, ${r.distill.trainableParams.toLocaleString('en-US')} trainable parameters)` : 'distill (skipped: 0 steps)'} → evaluate → report.` +
    (r.stagesSkipped.length ? ` Reused from an earlier interrupted run: ${r.stagesSkipped.join(', ')}.` : '');

  const head = headline(r);
  const noise = `Zero-shot tasks were scored on ${String(r.settings.limit)} items each: differences smaller than about two standard errors (±) are noise.`;
  const md = [
    '# echoatt pipeline report',
    '',
    `> ${head}`,
    '',
    ...intro.map((l) => `${l}  `),
    '',
    stages,
    '',
    '## What sharing removes',
    '',
    mdTable(sav),
    '',
    '## Teacher vs students',
    '',
    `Zero-shot accuracy (lm-evaluation-harness scoring), perplexity and speed, measured in this run. Δ is against the teacher. ${noise}`,
    '',
    mdTable(q),
    '',
    ...(r.distill && (r.distill.evalBefore?.length ?? 0) > 0 ? ['## Distillation', '', mdTable(distillTable(r.distill)), ''] : []),
    '## Figures',
    '',
    ...images.flatMap((im) => [`### ${im.title}`, '', `![${im.title}](${path.relative(out, im.png)})`, '', im.caption, '']),
    '## Settings',
    '',
    '```json',
    JSON.stringify(r.settings, null, 2),
    '```',
    '',
  ].join('\n');
  writeFileAtomic(files.md, md);

  const imgHtml = images
    .map((im) => {
      const uri = dataUri(im.png);
      return uri ? `<figure><figcaption><b>${esc(im.title)}</b> — ${esc(im.caption)}</figcaption><img src="${uri}" alt="${esc(im.title)}"></figure>` : '';
    })
    .join('\n');
  const mdInline = (s: string) => esc(s).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`(.+?)`/g, '<code>$1</code>');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>echoatt pipeline report</title>
<style>
body{font-family:DejaVu Sans,system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafbfc}
figure{margin:1em 0}figure img{max-width:min(100%,720px);border:1px solid #eee}
.headline{background:#eef6ee;border:1px solid #cde3cd;padding:.6em 1em;border-radius:4px}figcaption{margin-bottom:.3em}
code,pre{background:#f5f5f5;padding:0 .2em}pre{padding:.6em;overflow:auto}.note{color:#555}
</style></head><body>
<h1>echoatt pipeline report</h1>
<p class="headline">${mdInline(head)}</p>
${intro.map((l) => `<p>${mdInline(l)}</p>`).join('\n')}
<p class="note">${esc(stages)}</p>
<h2>What sharing removes</h2>
${htmlTable(sav)}
<h2>Teacher vs students</h2>
<p class="note">Zero-shot accuracy (lm-evaluation-harness scoring), perplexity and speed, measured in this run. Δ is against the teacher; ↑ means higher is better. ${esc(noise)}</p>
${htmlTable(q)}
${r.distill && (r.distill.evalBefore?.length ?? 0) > 0 ? `<h2>Distillation</h2>\n${htmlTable(distillTable(r.distill))}` : ''}
<h2>Figures</h2>
${imgHtml}
<h2>Settings</h2>
<pre>${esc(JSON.stringify(r.settings, null, 2))}</pre>
</body></html>
`;
  writeFileAtomic(files.html, html);
  return files;
}

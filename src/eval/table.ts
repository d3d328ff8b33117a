/**
 * The side-by-side table of an {@link EvalReport}: one row per metric, one column per model, and for every model
 * after the first its delta against the first (absolute for accuracies, relative % for perplexity, speed and
 * memory). As Markdown for people, as JSON (rows + the full report) for tools.
 *
 * @example
 * ```ts
 * const report = await evaluate([teacherPath, studentPath], { tasks: ['piqa'] });
 * fs.writeFileSync('results.md', markdownTable(report));
 * fs.writeFileSync('results.json', JSON.stringify(reportJson(report), null, 2));
 * ```
 */
import path from 'node:path';
import type { EvalReport, ModelReport } from './evaluate.js';

export interface TableCell {
  value: number;
  stderr: number | null;
}

export interface TableRow {
  /** `task`, `perplexity`, `speed` or `memory`. */
  section: 'task' | 'perplexity' | 'speed' | 'memory';
  /** What was measured: a task name, a perplexity setting, a context length. */
  label: string;
  metric: string;
  /** Whether higher values are better. */
  higherIsBetter: boolean;
  /** Sample size shown (items for tasks, scored tokens/words/bytes for perplexity), from the first model. */
  n: number | null;
  /** Accuracy of uniform guessing, for accuracy rows. */
  chance: number | null;
  /** One cell per model (null: not measured for that model). */
  values: (TableCell | null)[];
  /** Per model: value − first model's value (null for the first model). */
  delta: (number | null)[];
  /** Per model: 100 · (value / first − 1) (null for the first model). */
  deltaPct: (number | null)[];
  /** Which delta the Markdown shows. */
  deltaKind: 'abs' | 'pct';
  /** Number format of the Markdown (`acc`: 4 decimals, `ppl`: 3 significant-ish, `int`: thousands). */
  format: 'acc' | 'ppl' | 'rate' | 'bytes' | 'int';
}

function rowFor(
  models: readonly ModelReport[], base: Omit<TableRow, 'values' | 'delta' | 'deltaPct'>, pick: (m: ModelReport) => TableCell | null,
): TableRow {
  const values = models.map(pick);
  const first = values[0];
  const delta = values.map((v, i) => (i === 0 || !v || !first ? null : v.value - first.value));
  const deltaPct = values.map((v, i) => (i === 0 || !v || !first || first.value === 0 ? null : 100 * (v.value / first.value - 1)));
  return { ...base, values, delta, deltaPct };
}

/** Build the table rows of a report. */
export function tableRows(report: EvalReport): TableRow[] {
  const ms = report.models;
  const rows: TableRow[] = [];
  const m0 = ms[0];
  // Tasks, in the order of the first model.
  for (const t of m0.tasks) {
    for (const metric of Object.keys(t.metrics) as (keyof typeof t.metrics)[]) {
      const isPpl = metric === 'perplexity';
      rows.push(rowFor(ms, {
        section: 'task', label: t.task, metric, higherIsBetter: !isPpl, n: t.n, chance: isPpl ? null : t.chance,
        deltaKind: isPpl ? 'pct' : 'abs', format: isPpl ? 'ppl' : 'acc',
      }, (m) => {
        const mv = m.tasks.find((x) => x.task === t.task)?.metrics[metric];
        return mv ? { value: mv.value, stderr: mv.stderr } : null;
      }));
    }
  }
  // Perplexity.
  const p0 = m0.perplexity;
  if (p0) {
    const src = path.basename(p0.source);
    for (const tp of p0.token) {
      const label = tp.mode === 'chunks' ? `${src} · chunks · ctx ${tp.ctx}` : `${src} · sliding · ctx ${tp.ctx} · stride ${tp.stride}`;
      rows.push(rowFor(ms, { section: 'perplexity', label, metric: 'token ppl', higherIsBetter: false, n: tp.scored, chance: null, deltaKind: 'pct', format: 'ppl' }, (m) => {
        const x = m.perplexity?.token.find((y) => y.mode === tp.mode);
        return x ? { value: x.ppl, stderr: null } : null;
      }));
    }
    const wb = p0.wordByte;
    if (wb) {
      const label = `${src} · lm-eval rolling · ctx ${wb.ctx}`;
      const pick = (f: 'wordPerplexity' | 'bytePerplexity' | 'bitsPerByte' | 'tokenPerplexity') => (m: ModelReport) =>
        m.perplexity?.wordByte ? { value: m.perplexity.wordByte[f], stderr: null } : null;
      rows.push(rowFor(ms, { section: 'perplexity', label, metric: 'word ppl', higherIsBetter: false, n: wb.words, chance: null, deltaKind: 'pct', format: 'ppl' }, pick('wordPerplexity')));
      rows.push(rowFor(ms, { section: 'perplexity', label, metric: 'byte ppl', higherIsBetter: false, n: wb.bytes, chance: null, deltaKind: 'pct', format: 'ppl' }, pick('bytePerplexity')));
      rows.push(rowFor(ms, { section: 'perplexity', label, metric: 'bits per byte', higherIsBetter: false, n: wb.bytes, chance: null, deltaKind: 'pct', format: 'ppl' }, pick('bitsPerByte')));
      rows.push(rowFor(ms, { section: 'perplexity', label, metric: 'token ppl', higherIsBetter: false, n: wb.tokens, chance: null, deltaKind: 'pct', format: 'ppl' }, pick('tokenPerplexity')));
    }
  }
  // Speed and memory.
  const s0 = m0.speed;
  if (s0) {
    for (const pt of s0.points) {
      const at = (m: ModelReport) => m.speed?.points.find((p) => p.ctx === pt.ctx);
      rows.push(rowFor(ms, { section: 'speed', label: `ctx ${pt.ctx}`, metric: 'prefill tok/s', higherIsBetter: true, n: null, chance: null, deltaKind: 'pct', format: 'rate' }, (m) => {
        const p = at(m);
        return p ? { value: p.prefillTokensPerSecond, stderr: null } : null;
      }));
      rows.push(rowFor(ms, { section: 'speed', label: `ctx ${pt.ctx}`, metric: `decode tok/s (${s0.decodeTokens} steps)`, higherIsBetter: true, n: null, chance: null, deltaKind: 'pct', format: 'rate' }, (m) => {
        const p = at(m);
        return p ? { value: p.decodeTokensPerSecond, stderr: null } : null;
      }));
    }
    const mem = (metric: string, f: (m: ModelReport) => number | undefined, format: TableRow['format']) =>
      rows.push(rowFor(ms, { section: 'memory', label: 'model', metric, higherIsBetter: false, n: null, chance: null, deltaKind: 'pct', format }, (m) => {
        const v = f(m);
        return v === undefined ? null : { value: v, stderr: null };
      }));
    mem('parameters', (m) => m.speed?.parameters, 'int');
    mem('weight bytes (f32)', (m) => m.speed?.weightBytes, 'bytes');
    mem('KV-cache bytes / token', (m) => m.speed?.kvBytesPerToken, 'int');
    mem('peak RSS (process)', (m) => m.speed?.peakRssBytes, 'bytes');
  }
  return rows;
}

function fmtBytes(b: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < u.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(i === 0 ? 0 : 2)} ${u[i]}`;
}

function fmtNum(v: number, f: TableRow['format']): string {
  if (!Number.isFinite(v)) return String(v);
  switch (f) {
    case 'acc':
      return v.toFixed(4);
    case 'ppl':
      return Math.abs(v) >= 1000 ? v.toFixed(1) : Math.abs(v) >= 100 ? v.toFixed(2) : v.toFixed(3);
    case 'rate':
      return v >= 100 ? v.toFixed(0) : v.toFixed(1);
    case 'bytes':
      return fmtBytes(v);
    case 'int':
      return Math.round(v).toLocaleString('en-US');
  }
}

function fmtCell(c: TableCell | null, f: TableRow['format']): string {
  if (!c) return '—';
  return c.stderr !== null && Number.isFinite(c.stderr) ? `${fmtNum(c.value, f)} ± ${fmtNum(c.stderr, f)}` : fmtNum(c.value, f);
}

function fmtDelta(r: TableRow, i: number): string {
  if (r.deltaKind === 'abs') {
    const d = r.delta[i];
    if (d === null) return '—';
    return `${d >= 0 ? '+' : '−'}${fmtNum(Math.abs(d), r.format)}`;
  }
  const p = r.deltaPct[i];
  if (p === null) return '—';
  return `${p >= 0 ? '+' : '−'}${Math.abs(p).toFixed(1)}%`;
}

const SECTION_TITLE: Record<TableRow['section'], string> = {
  task: 'Zero-shot tasks (lm-evaluation-harness scoring)',
  perplexity: 'Perplexity',
  speed: 'Speed',
  memory: 'Memory',
};

/** The report as Markdown: settings, then one table per section. */
export function markdownTable(report: EvalReport): string {
  const ms = report.models;
  const rows = tableRows(report);
  const st = report.settings;
  const out: string[] = ['# echoatt eval', ''];
  out.push('Models:');
  ms.forEach((m, i) => {
    const shared = m.sharedLayers.length ? `, shared-attention layers ${m.sharedLayers.join(',')}` : '';
    out.push(`- ${i === 0 ? '**' : ''}${m.name}${i === 0 ? '** (baseline for deltas)' : ''}: ${m.path ?? '(in memory)'} — ${m.parameters.toLocaleString('en-US')} parameters, context ${m.contextLength}${shared}; evaluated in ${m.seconds.toFixed(1)} s`);
  });
  out.push('');
  const sel = st.limitSelection === 'all' ? 'all items' : st.limitSelection === 'first' ? `first ${st.limit} items per task (lm-eval --limit)` : `${st.limit} items per task drawn with seed ${st.limitSeed}`;
  out.push(`Settings: ${sel}; zero-shot; BOS: ${st.bos === 'tokenizer' ? "tokenizer's convention" : st.bos ? 'always' : 'never'}; backend ${st.backend ?? '?'} × ${st.threads ?? '?'} threads.`);
  if (st.ppl && ms[0].perplexity) {
    const p = ms[0].perplexity;
    const parts = p.token.map((t) =>
      t.mode === 'chunks'
        ? `chunks = non-overlapping ${t.ctx}-token windows (GPTQ convention; ${t.windows} windows, ${t.scored.toLocaleString('en-US')} of ${t.tokens.toLocaleString('en-US')} tokens scored)`
        : `sliding = ${t.ctx}-token windows, stride ${t.stride} (HF guide; ${t.windows} windows, ${t.scored.toLocaleString('en-US')} tokens scored)`);
    if (p.wordByte) {
      parts.push(`word/byte = lm-eval wikitext: ${p.wordByte.documents} documents${p.wordByte.detokenized ? ' (detokenized)' : ''}, rolling ${p.wordByte.ctx}-token windows; word ppl = exp(NLL / ${p.wordByte.words.toLocaleString('en-US')} words), byte ppl = exp(NLL / ${p.wordByte.bytes.toLocaleString('en-US')} bytes)`);
    }
    out.push(`Perplexity on ${p.source}: ${parts.join('; ')}.`);
  }
  if (st.speed && ms[0].speed) out.push(`Speed: one prefill of ctx tokens, then ${ms[0].speed.decodeTokens} decode steps; fastest of ${st.speed.repeats ?? 1} run(s).`);
  out.push('');
  const deltaCols = ms.slice(1).map((m) => `Δ ${m.name}`);
  for (const section of ['task', 'perplexity', 'speed', 'memory'] as const) {
    const rs = rows.filter((r) => r.section === section);
    if (!rs.length) continue;
    out.push(`## ${SECTION_TITLE[section]}`, '');
    const head = [section === 'task' ? 'task' : section === 'perplexity' ? 'text · convention' : 'at', 'metric', 'n', ...(section === 'task' ? ['chance'] : []), ...ms.map((m) => m.name), ...deltaCols];
    out.push(`| ${head.join(' | ')} |`);
    out.push(`|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
    for (const r of rs) {
      const cells = [
        r.label,
        `${r.metric} ${r.higherIsBetter ? '↑' : '↓'}`,
        r.n === null ? '' : r.n.toLocaleString('en-US'),
        ...(section === 'task' ? [r.chance === null ? '' : r.chance.toFixed(4)] : []),
        ...r.values.map((v) => fmtCell(v, r.format)),
        ...ms.slice(1).map((_, k) => fmtDelta(r, k + 1)),
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  out.push('Accuracy ± standard error (lm-eval mean_stderr: sqrt(sample variance / n)). Δ: accuracy as an absolute difference, other rows as % of the baseline.');
  return `${out.join('\n')}\n`;
}

/** The JSON document: format version, the table rows (with deltas) and the full report. */
export function reportJson(report: EvalReport): { format: 'echoatt-eval/1'; models: string[]; rows: TableRow[]; report: EvalReport } {
  return { format: 'echoatt-eval/1', models: report.models.map((m) => m.name), rows: tableRows(report), report };
}

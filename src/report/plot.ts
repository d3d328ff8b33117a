/**
 * Charts for reports: Vega-Lite specs rendered headless to SVG with `vega` (no canvas, no browser), and SVG to PNG
 * with `@resvg/resvg-js` (a prebuilt native renderer shipped inside its npm package).
 *
 * Fonts: resvg draws text only with fonts it can find. It loads the system fonts and, when present, the DejaVu
 * fonts of Debian's `fonts-dejavu-core` package, and maps the generic `sans-serif` family Vega uses to DejaVu Sans
 * (or the first system font). With no font at all the PNG is still written, without text ({@link fontInfo} says so);
 * the SVG always has its text.
 *
 * @example
 * ```ts
 * const chart = await heatmap([[1, 0.4], [0.4, 1]], ['L0', 'L1'], 'cosine');
 * writeChart(chart, 'out/cosine'); // out/cosine.svg + out/cosine.png, each written atomically
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type * as vl from 'vega-lite';
import type { Resvg as ResvgClass } from '@resvg/resvg-js';
import { writeAtomic, writeAll } from '../io/fsutil.js';

/** A rendered chart: its Vega-Lite spec and SVG text; PNG on demand. */
export interface Chart {
  spec: vl.TopLevelSpec;
  svg: string;
}

export interface HeatmapOptions {
  /** Colour domain `[min, max]` (default: the data's range). */
  domain?: [number, number];
  /** Vega colour scheme (default `viridis`). */
  scheme?: string;
  /** Reverse the scheme (e.g. for divergences, where low is good). */
  reverse?: boolean;
  /** Print values in the cells (default: when the matrix is at most 12 × 12). */
  annotate?: boolean;
  /** d3 number format of values (default `.2f`). */
  format?: string;
  xTitle?: string;
  yTitle?: string;
  colorTitle?: string;
  /** Pixels per cell (default: to fit ~480 px, between 4 and 48). */
  cellSize?: number;
  /** Second line under the title. */
  subtitle?: string;
}

export interface LineSeries {
  name: string;
  x: readonly number[];
  y: readonly number[];
}

export interface LineChartOptions {
  title: string;
  xTitle?: string;
  yTitle?: string;
  logY?: boolean;
  /** x values are counts: ticks at whole numbers, printed without decimals. */
  xInteger?: boolean;
  width?: number;
  height?: number;
  subtitle?: string;
}

export interface Bar {
  label: string;
  value: number;
  /** Bars with a group are drawn side by side, coloured by group. */
  group?: string;
  /** Optional error bar half-width. */
  error?: number;
}

export interface BarChartOptions {
  title: string;
  xTitle?: string;
  yTitle?: string;
  width?: number;
  height?: number;
  subtitle?: string;
  /** Keep bars in the given order (default true). */
  keepOrder?: boolean;
}

/** A matrix as nested rows, or row-major values with a side length / shape. */
export type MatrixInput = readonly (readonly number[])[] | { rows: number; cols: number; data: ArrayLike<number> };

const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
];

let fontCache: { files: string[]; family: string | undefined } | undefined;

/** The font files resvg is given and the family `sans-serif` maps to (undefined: system default, maybe none). */
export function fontInfo(): { files: string[]; family: string | undefined } {
  if (!fontCache) {
    const files = FONT_FILES.filter((f) => fs.existsSync(f));
    fontCache = { files, family: files.length ? 'DejaVu Sans' : undefined };
  }
  return fontCache;
}

const BASE_CONFIG = {
  font: 'sans-serif',
  view: { stroke: null },
  title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: '#555' },
  axis: { labelFontSize: 10, titleFontSize: 11 },
  legend: { labelFontSize: 10, titleFontSize: 11 },
  background: 'white',
};

function finite(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function titleOf(text: string, subtitle?: string): vl.TopLevelSpec['title'] {
  return subtitle ? { text, subtitle } : text;
}

/** Render a Vega-Lite spec to SVG text (headless). */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  // Loaded on first use: the chart libraries take about a second to load, which every CLI start would pay otherwise.
  const [vega, vlc] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vlc.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Warn });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterise SVG to PNG (`scale` × the SVG's size), with the fonts of {@link fontInfo}. */
export function svgToPng(svg: string, scale = 2): Buffer {
  const fonts = fontInfo();
  const { Resvg } = createRequire(import.meta.url)('@resvg/resvg-js') as { Resvg: typeof ResvgClass };
  const r = new Resvg(svg, {
    font: {
      loadSystemFonts: true,
      fontFiles: fonts.files,
      ...(fonts.family ? { defaultFontFamily: fonts.family, sansSerifFamily: fonts.family } : {}),
    },
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    logLevel: 'off',
  });
  return r.render().asPng();
}

function toGrid(m: MatrixInput): { rows: number; cols: number; get: (i: number, j: number) => number } {
  if (Array.isArray(m)) {
    const rows = m as readonly (readonly number[])[];
    return { rows: rows.length, cols: rows.length ? rows[0].length : 0, get: (i, j) => rows[i][j] };
  }
  const g = m as { rows: number; cols: number; data: ArrayLike<number> };
  return { rows: g.rows, cols: g.cols, get: (i, j) => g.data[i * g.cols + j] };
}

function heatLayer(grid: ReturnType<typeof toGrid>, xl: readonly string[], yl: readonly string[], opts: HeatmapOptions, panel?: string) {
  const values: Record<string, unknown>[] = [];
  for (let i = 0; i < grid.rows; i++) {
    for (let j = 0; j < grid.cols; j++) values.push({ row: yl[i] ?? String(i), col: xl[j] ?? String(j), value: finite(grid.get(i, j)), ...(panel !== undefined ? { panel } : {}) });
  }
  return values;
}

function range(values: Record<string, unknown>[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    const x = v.value as number | null;
    if (x === null) continue;
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  if (!Number.isFinite(lo)) return [0, 1];
  return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

function cellEncoding(xl: readonly string[], yl: readonly string[], opts: HeatmapOptions, domain: [number, number], showAxisLabels: boolean) {
  return {
    x: { field: 'col', type: 'ordinal', sort: [...xl], title: opts.xTitle ?? null, axis: showAxisLabels ? { labelAngle: xl.length > 12 ? -90 : 0 } : { labels: false, ticks: false } },
    y: { field: 'row', type: 'ordinal', sort: [...yl], title: opts.yTitle ?? null, axis: showAxisLabels ? {} : { labels: false, ticks: false } },
    color: {
      field: 'value', type: 'quantitative', title: opts.colorTitle ?? null,
      scale: { scheme: opts.scheme ?? 'viridis', domain, reverse: opts.reverse ?? false },
    },
    tooltip: [{ field: 'row' }, { field: 'col' }, { field: 'value', format: opts.format ?? '.3f' }],
  };
}

/**
 * A heatmap of `matrix` (rows top to bottom). `labels` names rows and columns (square), or `{x, y}` separately.
 */
export async function heatmap(
  matrix: MatrixInput, labels: readonly string[] | { x: readonly string[]; y: readonly string[] }, title: string, opts: HeatmapOptions = {},
): Promise<Chart> {
  const grid = toGrid(matrix);
  const xl = Array.isArray(labels) ? (labels as readonly string[]) : (labels as { x: readonly string[] }).x;
  const yl = Array.isArray(labels) ? (labels as readonly string[]) : (labels as { y: readonly string[] }).y;
  const values = heatLayer(grid, xl, yl, opts);
  const domain = opts.domain ?? range(values);
  const n = Math.max(grid.rows, grid.cols);
  const cell = opts.cellSize ?? Math.max(4, Math.min(48, Math.floor(480 / Math.max(1, n))));
  const annotate = opts.annotate ?? n <= 12;
  const showLabels = n <= 64;
  const mid = (domain[0] + domain[1]) / 2;
  const layers: unknown[] = [{ mark: { type: 'rect' }, encoding: cellEncoding(xl, yl, opts, domain, showLabels) }];
  if (annotate) {
    // Text colour flips where the (viridis-like) fill gets dark.
    const darkHigh = opts.reverse ?? false;
    layers.push({
      mark: { type: 'text', fontSize: Math.max(8, Math.min(12, cell / 3.5)) },
      encoding: {
        x: { field: 'col', type: 'ordinal', sort: [...xl] },
        y: { field: 'row', type: 'ordinal', sort: [...yl] },
        text: { field: 'value', type: 'quantitative', format: opts.format ?? '.2f' },
        color: { condition: { test: darkHigh ? `datum.value > ${mid}` : `datum.value < ${mid}`, value: 'white' }, value: 'black' },
      },
    });
  }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titleOf(title, opts.subtitle),
    config: BASE_CONFIG,
    data: { values },
    width: cell * grid.cols,
    height: cell * grid.rows,
    layer: layers,
  } as unknown as vl.TopLevelSpec;
  return { spec, svg: await renderSvg(spec) };
}

/** Small multiples: one heatmap per matrix (same labels and colour scale), `columns` per row. */
export async function heatmapGrid(
  matrices: readonly MatrixInput[], labels: readonly string[], panelTitles: readonly string[], title: string,
  opts: HeatmapOptions & { columns?: number } = {},
): Promise<Chart> {
  const values = matrices.flatMap((m, p) => heatLayer(toGrid(m), labels, labels, opts, panelTitles[p] ?? String(p)));
  const domain = opts.domain ?? range(values);
  const n = labels.length;
  const cell = opts.cellSize ?? Math.max(3, Math.min(20, Math.floor(160 / Math.max(1, n))));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titleOf(title, opts.subtitle),
    config: BASE_CONFIG,
    data: { values },
    facet: { field: 'panel', type: 'ordinal', sort: [...panelTitles], title: null },
    columns: opts.columns ?? (matrices.length <= 4 ? matrices.length : Math.min(8, Math.ceil(matrices.length / 2))),
    spec: {
      width: cell * n,
      height: cell * n,
      mark: 'rect',
      encoding: cellEncoding(labels, labels, { ...opts, xTitle: undefined, yTitle: undefined }, domain, n <= 16),
    },
  } as unknown as vl.TopLevelSpec;
  return { spec, svg: await renderSvg(spec) };
}

/** Lines over a numeric x axis, one per series (e.g. loss curves). */
export async function lineChart(series: readonly LineSeries[], opts: LineChartOptions): Promise<Chart> {
  const values = series.flatMap((s) => s.x.map((x, i) => ({ series: s.name, x, y: finite(s.y[i]) })));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titleOf(opts.title, opts.subtitle),
    config: BASE_CONFIG,
    data: { values },
    width: opts.width ?? 480,
    height: opts.height ?? 280,
    mark: { type: 'line', point: values.length <= 60 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xTitle ?? null, ...(opts.xInteger ? { axis: { format: 'd', tickMinStep: 1 } } : {}) },
      y: { field: 'y', type: 'quantitative', title: opts.yTitle ?? null, scale: opts.logY ? { type: 'log' } : { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, sort: series.map((s) => s.name), legend: series.length > 1 ? {} : null },
    },
  } as unknown as vl.TopLevelSpec;
  return { spec, svg: await renderSvg(spec) };
}

/** Vertical bars, optionally grouped and with error bars. */
export async function barChart(bars: readonly Bar[], opts: BarChartOptions): Promise<Chart> {
  const values = bars.map((b) => ({
    label: b.label, value: finite(b.value), group: b.group ?? '',
    lo: b.error !== undefined ? finite(b.value - b.error) : null, hi: b.error !== undefined ? finite(b.value + b.error) : null,
  }));
  const labels = [...new Set(bars.map((b) => b.label))];
  const grouped = bars.some((b) => b.group !== undefined);
  const x = { field: 'label', type: 'nominal', title: opts.xTitle ?? null, sort: opts.keepOrder === false ? undefined : labels, axis: { labelAngle: labels.length > 12 ? -45 : 0 } };
  const layers: unknown[] = [{
    mark: 'bar',
    encoding: {
      x, y: { field: 'value', type: 'quantitative', title: opts.yTitle ?? null },
      ...(grouped ? { xOffset: { field: 'group' }, color: { field: 'group', type: 'nominal', title: null } } : { color: { value: '#4c78a8' } }),
    },
  }];
  if (bars.some((b) => b.error !== undefined)) {
    layers.push({
      mark: { type: 'rule', color: 'black' },
      encoding: { x, ...(grouped ? { xOffset: { field: 'group' } } : {}), y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    });
  }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titleOf(opts.title, opts.subtitle),
    config: BASE_CONFIG,
    data: { values },
    width: opts.width ?? Math.max(200, Math.min(800, labels.length * (grouped ? 48 : 28))),
    height: opts.height ?? 260,
    layer: layers,
  } as unknown as vl.TopLevelSpec;
  return { spec, svg: await renderSvg(spec) };
}

/** Write `data` to `file` atomically (temp file in the same folder, then rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeAtomic(file, (fd) => writeAll(fd, bytes));
}

/** Write `<base>.svg` and `<base>.png`; returns the two paths. */
export function writeChart(chart: Chart, base: string, opts: { scale?: number } = {}): { svg: string; png: string } {
  const svg = `${base}.svg`;
  const png = `${base}.png`;
  writeFileAtomic(svg, chart.svg);
  writeFileAtomic(png, svgToPng(chart.svg, opts.scale ?? 2));
  return { svg, png };
}

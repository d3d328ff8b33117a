import path from 'node:path';
const file = path.join('/work/shared/models', process.argv[2] ?? 'gutenberg16/model.bin');
const trees = await Promise.all(['/work/before', '/work/main'].map(async (r) => (await import(path.join(r, 'src/models/load.js'))).loadModel(file).model));
const T = 256;
const V = trees[0].config.vocabSize;
const ids = new Int32Array(T).map((_, i) => 1 + ((i * 7919) % (V - 1)));
const dec = (m: any) => {
  const c = m.newCache(1, T);
  m.forward(ids.subarray(0, 1), { cache: c, lastOnly: true });
  const t0 = performance.now();
  for (let i = 1; i < T; i++) m.forward(ids.subarray(i, i + 1), { cache: c, lastOnly: true });
  return performance.now() - t0;
};
for (let i = 0; i < 3; i++) { dec(trees[0]); dec(trees[1]); }
const t: number[][] = [[], []];
for (let r = 0; r < 40; r++) {
  const order = r % 2 ? [1, 0] : [0, 1];
  for (const k of order) t[k].push(dec(trees[k]));
}
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1];
const ratios = t[0].map((x, i) => x / t[1][i]).sort((a, b) => a - b);
console.log(`before best ${(255000 / Math.min(...t[0])).toFixed(1)} med ${(255000 / med(t[0])).toFixed(1)} | after best ${(255000 / Math.min(...t[1])).toFixed(1)} med ${(255000 / med(t[1])).toFixed(1)} | after/before per-round median ${med(ratios).toFixed(3)} [${ratios[4].toFixed(3)}..${ratios[35].toFixed(3)}]`);

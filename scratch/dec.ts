import path from 'node:path';
const root = path.resolve(process.argv[2]);
const { loadModel } = await import(path.join(root, 'src/models/load.js'));
const file = path.join('/work/shared/models', process.argv[3] ?? 'gutenberg16/model.bin');
const m = loadModel(file).model;
const T = 256;
const ids = new Int32Array(T).map((_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1)));
const times: number[] = [];
for (let r = 0; r < 12; r++) {
  const c = m.newCache(1, T);
  m.forward(ids.subarray(0, 1), { cache: c, lastOnly: true });
  const t0 = performance.now();
  for (let i = 1; i < T; i++) m.forward(ids.subarray(i, i + 1), { cache: c, lastOnly: true });
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(`${path.basename(root)} best ${(255000 / times[0]).toFixed(1)} tok/s median ${(255000 / times[6]).toFixed(1)}`);

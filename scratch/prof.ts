import path from 'node:path';
const root = path.resolve(process.argv[2]);
const { loadModel } = await import(path.join(root, 'src/models/load.js'));
const m = loadModel('/work/shared/models/stories260K/stories260K.bin').model;
const T = 256;
const ids = new Int32Array(T).map((_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1)));
const t0 = performance.now();
for (let r = 0; r < 60; r++) {
  const c = m.newCache(1, T);
  for (let i = 0; i < T; i++) m.forward(ids.subarray(i, i + 1), { cache: c, lastOnly: true });
}
console.log(path.basename(root), ((60 * 256 * 1000) / (performance.now() - t0)).toFixed(0), 'tok/s');

import { loadModel } from '/work/main/src/models/load.js';
const { model } = loadModel('/work/shared/models/gutenberg16/model.bin');
const B = 16, T = 256;
const ids = new Int32Array(B * T).map((_, i) => (i * 7919) % 4096);
for (let r = 0; r < 3; r++) { const t0 = performance.now(); model.forward(ids, { batch: B }); console.log('fwd', (performance.now() - t0).toFixed(0), 'ms'); }
const probs = new Set([0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]);
const t0 = performance.now(); let n=0; model.forward(ids, { batch: B, onAttentionProbs: () => { n++; }, probsLayers: probs }); console.log('fwd+probs', (performance.now() - t0).toFixed(0), 'ms', n);

// Trains fukai's MLP on the shipped MNIST digits off the main thread. Steps run in small
// chunks; between chunks the worker yields, so a 'stop' message is seen within one chunk.
import init, { Training } from './pkg/fukai_wasm.js';

let stopped = false;

async function gunzip(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const text = r.body.pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(text).arrayBuffer());
}

async function train(o) {
  await init();
  const csv = await gunzip(o.data || 'mnist_5k.csv.gz');
  const valFraction = o.valFraction || 0.2;
  const batch = o.batch || 64;
  const t = new Training(csv, 'mnist_5k.csv.gz', valFraction, new Uint32Array(o.hidden || [128]), o.lr || 1e-3, batch, o.seed || 0);
  const perEpoch = Math.floor(t.trainSamples() / batch);
  const chunk = o.chunk || 5;
  const maxSteps = o.maxSteps || perEpoch * (o.epochs || 5);
  const val = (step) => {
    const v = t.validate();
    postMessage({ kind: 'val', step, loss: v.loss, accuracy: v.accuracy });
    v.free();
  };
  val(0);
  let step = 0;
  while (!stopped && step < maxSteps) {
    const n = Math.min(chunk, maxSteps - step);
    const t0 = performance.now();
    const s = t.steps(n);
    const ms = performance.now() - t0;
    step += n;
    postMessage({ kind: 'train', step, epoch: step / perEpoch, loss: s.loss, accuracy: s.accuracy, samplesPerSec: (1000 * s.samples) / ms });
    s.free();
    if (step % perEpoch < chunk || step === maxSteps) val(step);
    await new Promise((r) => setTimeout(r, 0));
  }
  t.free();
}

onmessage = (e) => {
  if (e.data.cmd === 'stop') {
    stopped = true;
  } else if (e.data.cmd === 'start') {
    stopped = false;
    train(e.data)
      .catch((err) => postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) }))
      .finally(() => postMessage({ kind: 'done' }));
  }
};

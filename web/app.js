// The page: three panels over the fukai-wasm module. `window.fukaiDemo` exposes what each
// panel last computed (inputs, outputs, timings) for the browser tests and for curious users.
import init, { Digits, Sentences } from './pkg/fukai_wasm.js';

const $ = (id) => document.getElementById(id);
const demo = (window.fukaiDemo = { ready: false, errors: {} });

function showError(panel, e) {
  const msg = e instanceof Error ? e.message : String(e);
  demo.errors[panel] = msg;
  $(`${panel}-error`).textContent = msg;
}
function clearError(panel) {
  delete demo.errors[panel];
  $(`${panel}-error`).textContent = '';
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// ---- Digits ----
let digits = null;
const pad = $('pad');
const padCtx = pad.getContext('2d', { willReadFrequently: true });

function clearPad() {
  padCtx.fillStyle = '#000';
  padCtx.fillRect(0, 0, pad.width, pad.height);
}

function loadDigits(bytes, name) {
  try {
    const d = new Digits(bytes, name);
    if (digits) digits.free();
    digits = d;
    demo.digitModel = name;
    clearError('digits');
    predictDrawing();
  } catch (e) {
    showError('digits', e);
  }
}

function drawGrey(ctx, values, w, h, x0, y0, scale, lo = 0, hi = 1) {
  const img = ctx.createImageData(w * scale, h * scale);
  const span = Math.max(hi - lo, 1e-12);
  for (let y = 0; y < h * scale; y++) {
    for (let x = 0; x < w * scale; x++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, (values[Math.floor(y / scale) * w + Math.floor(x / scale)] - lo) / span)));
      const i = 4 * (y * w * scale + x);
      img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
      img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, x0, y0);
}

function showMaps(maps) {
  const c = $('maps');
  const ctx = c.getContext('2d');
  ctx.fillStyle = '#fafafa';
  ctx.fillRect(0, 0, c.width, c.height);
  if (!maps) return;
  const { channels, height, width } = maps;
  const values = maps.values;
  const cols = Math.ceil(Math.sqrt(channels * 2));
  const scale = Math.max(1, Math.floor(Math.min(c.width / cols, c.height / Math.ceil(channels / cols)) / (width + 1)));
  for (let k = 0; k < channels; k++) {
    const m = values.subarray(k * height * width, (k + 1) * height * width);
    let hi = 0;
    for (const v of m) hi = Math.max(hi, v);
    drawGrey(ctx, m, width, height, (k % cols) * (width * scale + 2), Math.floor(k / cols) * (height * scale + 2), scale, 0, hi || 1);
  }
  maps.free();
}

function predictDrawing() {
  if (!digits) return;
  try {
    const t0 = performance.now();
    const rgba = padCtx.getImageData(0, 0, pad.width, pad.height).data;
    const input = digits.inputFromDrawing(new Uint8Array(rgba.buffer), pad.width, pad.height);
    const probs = digits.probabilities(input);
    const ms = performance.now() - t0;
    const maps = digits.featureMaps(input);
    const side = digits.side();
    const classes = digits.classes();
    const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, 3);
    $('top3').innerHTML = order
      .map((i) => `<li>${classes[i]} <span class="p">${(100 * probs[i]).toFixed(1)}%</span><span class="bar" style="width:${Math.round(120 * probs[i])}px"></span></li>`)
      .join('');
    $('digit-ms').textContent = `drawing → probabilities in ${ms.toFixed(2)} ms`;
    drawGrey($('seen').getContext('2d'), input, side, side, 0, 0, 3);
    showMaps(maps);
    demo.lastInput = Array.from(input);
    demo.lastProbs = Array.from(probs);
    demo.lastClass = classes[order[0]];
    demo.lastDigitMs = ms;
    clearError('digits');
  } catch (e) {
    showError('digits', e);
  }
}

let drawing = false;
let last = null;
let pending = false;
function schedulePredict() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    predictDrawing();
  });
}
function point(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}
pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  last = point(e);
  pad.setPointerCapture(e.pointerId);
});
pad.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  const p = point(e);
  padCtx.strokeStyle = '#fff';
  padCtx.lineWidth = 20;
  padCtx.lineCap = padCtx.lineJoin = 'round';
  padCtx.beginPath();
  padCtx.moveTo(...last);
  padCtx.lineTo(...p);
  padCtx.stroke();
  last = p;
  schedulePredict();
});
pad.addEventListener('pointerup', () => {
  drawing = false;
  schedulePredict();
});
$('clear').onclick = () => {
  clearPad();
  predictDrawing();
};
$('ckpt').onchange = async (e) => {
  const f = e.target.files[0];
  if (f) loadDigits(new Uint8Array(await f.arrayBuffer()), f.name);
};

// Paints a 28×28 image (values in [0, 1]) onto the pad, scaled up, and classifies it.
demo.drawImage = (pixels, side = 28) => {
  const s = pad.width / side;
  clearPad();
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const v = Math.round(255 * pixels[y * side + x]);
      padCtx.fillStyle = `rgb(${v},${v},${v})`;
      padCtx.fillRect(x * s, y * s, s, s);
    }
  }
  predictDrawing();
  return { input: demo.lastInput, probs: demo.lastProbs, cls: demo.lastClass, ms: demo.lastDigitMs };
};
demo.loadDigits = loadDigits;

// ---- Sentences ----
let sentences = null;
const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'sentence_bert_config.json'];

function buildSentences(files, from) {
  for (const n of FILES.slice(0, 3)) {
    if (!files[n]) throw new Error(`${from}: ${n} is missing (need ${FILES.slice(0, 3).join(', ')})`);
  }
  const s = new Sentences(files['config.json'], files['model.safetensors'], files['tokenizer.json'], files['sentence_bert_config.json']);
  if (sentences) sentences.free();
  sentences = s;
  $('compare').disabled = false;
  $('status').textContent = `sentence model loaded from ${from} (${s.dim()}-dimensional embeddings)`;
}

demo.loadSentencesFrom = async (base) => {
  try {
    const url = base.endsWith('/') ? base : base + '/';
    const files = {};
    for (const n of FILES) {
      const r = await fetch(url + n);
      if (r.ok) files[n] = new Uint8Array(await r.arrayBuffer());
      else if (n !== 'sentence_bert_config.json') throw new Error(`${url}${n}: HTTP ${r.status}`);
    }
    buildSentences(files, url);
    clearError('sentences');
    return true;
  } catch (e) {
    showError('sentences', e);
    return false;
  }
};
$('minilm-fetch').onclick = () => demo.loadSentencesFrom($('minilm-url').value);
$('minilm-files').onchange = async (e) => {
  try {
    const files = {};
    for (const f of e.target.files) files[f.name] = new Uint8Array(await f.arrayBuffer());
    buildSentences(files, 'the picked files');
    clearError('sentences');
  } catch (err) {
    showError('sentences', err);
  }
};

// Embeds each text, times it, and shows the cosine-similarity matrix.
demo.compare = (texts) => {
  try {
    const embs = [];
    const ms = [];
    const ids = [];
    for (const t of texts) {
      const t0 = performance.now();
      ids.push(Array.from(sentences.tokenize(t)));
      embs.push(sentences.embed(t));
      ms.push(performance.now() - t0);
    }
    const sim = embs.map((a) => embs.map((b) => a.reduce((s, v, i) => s + v * b[i], 0)));
    const short = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    $('sim').innerHTML =
      '<tr><th></th>' + texts.map((t) => `<th title="${short(t)}">${short(t)}</th>`).join('') + '</tr>' +
      sim.map((row, i) => `<tr><th title="${short(texts[i])}">${short(texts[i])}</th>` + row.map((v) =>
        `<td style="background:rgba(58,123,213,${Math.max(0, v).toFixed(2)});color:${v > 0.6 ? '#fff' : '#222'}">${v.toFixed(3)}</td>`).join('') + '</tr>').join('');
    $('sent-ms').textContent = `${texts.length} sentences, ${ms.map((m) => m.toFixed(1)).join(' / ')} ms each`;
    clearError('sentences');
    return { ids, embeddings: embs.map((e) => Array.from(e)), sim, ms };
  } catch (e) {
    showError('sentences', e);
    return null;
  }
};
$('compare').onclick = () => demo.compare($('texts').value.split('\n').map((t) => t.trim()).filter((t) => t));

// ---- Training (in a Web Worker) ----
let worker = null;
const history = [];
demo.training = history;

function plot() {
  const c = $('curve');
  const ctx = c.getContext('2d');
  const W = c.width, H = c.height, L = 36, B = 20;
  ctx.fillStyle = '#fafafa';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#ccc';
  ctx.strokeRect(L, 4, W - L - 4, H - B - 4);
  if (!history.length) return;
  const maxStep = Math.max(...history.map((h) => h.step), 1);
  const maxLoss = Math.max(...history.map((h) => h.loss), 0.1);
  const x = (s) => L + ((W - L - 8) * s) / maxStep;
  const y = (v, top) => 4 + (H - B - 8) * (1 - v / top);
  const line = (kind, key, top, colour) => {
    const pts = history.filter((h) => h.kind === kind);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach((h, i) => (i ? ctx.lineTo(x(h.step), y(h[key], top)) : ctx.moveTo(x(h.step), y(h[key], top))));
    ctx.stroke();
  };
  line('train', 'loss', maxLoss, '#d55');
  line('val', 'loss', maxLoss, '#822');
  line('train', 'accuracy', 1, '#59d');
  line('val', 'accuracy', 1, '#137');
  ctx.fillStyle = '#444';
  ctx.font = '11px sans-serif';
  ctx.fillText(maxLoss.toFixed(2), 2, 12);
  ctx.fillText('0', 24, H - B);
  ctx.fillText(`step ${maxStep}`, W - 60, H - 6);
  ctx.fillStyle = '#d55'; ctx.fillText('loss', L + 6, H - 6);
  ctx.fillStyle = '#822'; ctx.fillText('val loss', L + 36, H - 6);
  ctx.fillStyle = '#59d'; ctx.fillText('accuracy', L + 88, H - 6);
  ctx.fillStyle = '#137'; ctx.fillText('val accuracy', L + 146, H - 6);
}

demo.startTraining = (opts = {}) => {
  if (worker) worker.terminate();
  history.length = 0;
  demo.trainingDone = false;
  clearError('train');
  worker = new Worker('train-worker.js', { type: 'module' });
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.kind === 'error') {
      showError('train', m.message);
      demo.trainingDone = true;
    } else if (m.kind === 'done') {
      demo.trainingDone = true;
      $('train-start').disabled = false;
      $('train-stop').disabled = true;
    } else {
      history.push(m);
      if (m.kind === 'train') {
        demo.trainSamplesPerSec = m.samplesPerSec;
        $('train-info').textContent = `epoch ${m.epoch.toFixed(2)} · loss ${m.loss.toFixed(3)} · accuracy ${(100 * m.accuracy).toFixed(1)}% · ${Math.round(m.samplesPerSec)} samples/s`;
      }
      plot();
    }
  };
  worker.onerror = (e) => {
    showError('train', `the training worker failed: ${e.message}`);
    demo.trainingDone = true;
  };
  worker.postMessage({ cmd: 'start', ...opts });
  $('train-start').disabled = true;
  $('train-stop').disabled = false;
};
demo.stopTraining = () => worker && worker.postMessage({ cmd: 'stop' });
$('train-start').onclick = () => demo.startTraining();
$('train-stop').onclick = demo.stopTraining;

// ---- start ----
clearPad();
plot();
try {
  await init();
  $('status').textContent = 'wasm module ready';
  loadDigits(await fetchBytes('mnist-cnn.safetensors'), 'mnist-cnn.safetensors');
} catch (e) {
  showError('digits', e);
  $('status').textContent = 'could not start: see the digit panel';
}
demo.ready = true;

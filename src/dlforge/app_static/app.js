"use strict";
// The dlforge page: its panels over the JSON API of dlforge.app (no build step, no libraries).

const $ = (id) => document.getElementById(id);

async function call(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON */ }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status}`);
  }
  if (body && body.ms !== undefined) $("latency").textContent = body.ms.toFixed(1);
  return body;
}

function postJSON(url, payload) {
  return call(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

function postFile(url, field, blob, name) {
  const form = new FormData();
  form.append(field, blob, name);
  return call(url, { method: "POST", body: form });
}

// A panel's file input and its drop zone (`<panel>-file`, `<panel>-drop`) both hand the file to `send`.
function acceptFiles(panel, send) {
  const drop = $(`${panel}-drop`);
  $(`${panel}-file`).addEventListener("change", (event) => send(event.target.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    send(event.dataTransfer.files[0]);
  });
}

// One request at a time per panel; while one runs, only the newest waiting call is kept.
function coalesce(task) {
  let running = false;
  let waiting = null;
  async function next() {
    if (running || !waiting) return;
    const { args } = waiting;
    waiting = null;
    running = true;
    try { await task(...args); } finally { running = false; next(); }
  }
  return (...args) => { waiting = { args }; next(); };
}

function showError(panel, message) {
  $(`${panel}-error`).textContent = message || "";
}

function showClasses(panel, answer) {
  const percent = (p) => `${(100 * p).toFixed(1)}%`;
  $(`${panel}-label`).innerHTML = "";
  $(`${panel}-label`).append(answer.label + " ");
  const small = document.createElement("small");
  small.textContent = percent(answer.probability);
  $(`${panel}-label`).append(small);
  const bars = $(`${panel}-probs`);
  bars.innerHTML = "";
  for (const { label, probability } of answer.probabilities) {
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("div");
    bar.className = label === answer.label ? "bar best" : "bar";
    const fill = document.createElement("span");
    fill.style.width = percent(probability);
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = percent(probability);
    bars.append(name, bar, value);
  }
  if (answer.input && $(`${panel}-input`)) $(`${panel}-input`).src = answer.input;
}

function clearClasses(panel) {
  $(`${panel}-label`).textContent = "\u2013";
  $(`${panel}-probs`).innerHTML = "";
  const input = $(`${panel}-input`);
  if (input) input.removeAttribute("src");
  showError(panel, "");
}

// --- draw a digit ---------------------------------------------------------------------------
function setupDigit() {
  const canvas = $("digit-canvas");
  const ctx = canvas.getContext("2d");
  let drawing = false;
  let inked = false;
  let last = 0;
  const blank = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height); inked = false; };
  blank();
  ctx.lineWidth = 20;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#000";

  const classify = coalesce(async () => {
    if (!inked) return;
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    try {
      showClasses("digit", await postFile("/api/classify/digit", "image", blob, "drawing.png"));
      showError("digit", "");
    } catch (err) { showError("digit", err.message); }
  });
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    const [x, y] = point(event);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 0.1, y);
    ctx.stroke();
    inked = true;
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = point(event);
    ctx.lineTo(x, y);
    ctx.stroke();
    if (performance.now() - last > 150) { last = performance.now(); classify(); }  // live, throttled
  });
  const stop = () => { if (drawing) { drawing = false; classify(); } };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("digit-clear").addEventListener("click", () => { blank(); clearClasses("digit"); });
}

// --- classify a photo -----------------------------------------------------------------------
function setupPhoto() {
  const send = async (file) => {
    if (!file) return;
    const preview = $("photo-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    try {
      showClasses("photo", await postFile("/api/classify/photo", "image", file, file.name));
      showError("photo", "");
    } catch (err) { preview.hidden = true; clearClasses("photo"); showError("photo", err.message); }
  };
  acceptFiles("photo", send);
}

// --- sentiment of a review ------------------------------------------------------------------
function setupReview() {
  const text = $("review-text");
  let timer = null;
  const classify = coalesce(async () => {
    if (!text.value.trim()) { clearClasses("review"); $("review-tokens").textContent = ""; return; }
    try {
      const answer = await postJSON("/api/review", { text: text.value });
      showClasses("review", answer);
      $("review-tokens").textContent = "tokens: " + answer.tokens.join(" ");
      showError("review", "");
    } catch (err) { showError("review", err.message); }
  });
  text.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(classify, 300); });
  $("review-submit").addEventListener("click", () => { clearTimeout(timer); classify(); });
}

// --- sample a generator ---------------------------------------------------------------------
function setupGenerator(info) {
  const dims = $("gen-dim");
  for (let i = 0; i < info.latent_dim; i++) dims.add(new Option(`z[${i}]`, i));
  if (info.num_classes > 0) {
    $("gen-label-row").hidden = false;
    info.class_names.forEach((name, i) => $("gen-label").add(new Option(name, i)));
  }
  const slider = $("gen-slider");
  let moves = 0;  // slider moves by the user: a fresh sample must not undo one made while it ran
  const sample = coalesce(async (keepValue) => {
    const movesBefore = moves;
    const payload = { seed: Number($("gen-seed").value) || 0, dim: Number(dims.value) };
    if (info.num_classes > 0) payload.label = Number($("gen-label").value);
    if (keepValue) payload.value = Number(slider.value);
    try {
      const answer = await postJSON("/api/sample", payload);
      $("gen-image").src = answer.image;
      if (!keepValue && moves === movesBefore) slider.value = answer.latent[payload.dim];
      $("gen-value").textContent = Number(slider.value).toFixed(2);
      showError("generator", "");
    } catch (err) { showError("generator", err.message); }
  });
  $("gen-seed").addEventListener("change", () => sample(false));
  $("gen-random").addEventListener("click", () => {
    $("gen-seed").value = Math.floor(Math.random() * 1e6);
    sample(false);
  });
  $("gen-label").addEventListener("change", () => sample(true));
  dims.addEventListener("change", () => sample(false));
  slider.addEventListener("input", () => {
    moves += 1;
    $("gen-value").textContent = Number(slider.value).toFixed(2);
    sample(true);
  });
  sample(false);
}

// --- English to pig latin ------------------------------------------------------------------
// The attention of one word as a grid: a row per output letter (and the end), a column per input
// letter, darker where the decoder looked.
function showAttention({ word, output, weights }) {
  const grid = $("piglatin-attention");
  grid.innerHTML = "";
  grid.style.gridTemplateColumns = `max-content repeat(${word.length}, 1.6em)`;
  const cell = (text, className) => {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    grid.append(span);
    return span;
  };
  cell("", "corner");
  for (const letter of word) cell(letter, "in");
  [...output, "end"].forEach((letter, i) => {
    cell(letter, "out");
    weights[i].forEach((w) => {
      const square = cell("", "weight");
      square.style.background = `rgba(47, 111, 219, ${w.toFixed(3)})`;
      square.title = `${(100 * w).toFixed(1)}%`;
    });
  });
}

function setupPiglatin() {
  const text = $("piglatin-text");
  const words = $("piglatin-word");
  let attention = [];
  let timer = null;
  const clear = () => {
    $("piglatin-output").textContent = "\u2013";
    $("piglatin-kept").textContent = "";
    $("piglatin-attention").innerHTML = "";
    $("piglatin-word-row").hidden = true;
    attention = [];
  };
  const translate = coalesce(async () => {
    if (!text.value.trim()) { clear(); showError("piglatin", ""); return; }
    try {
      const answer = await postJSON("/api/piglatin", { text: text.value });
      $("piglatin-output").textContent = answer.translation;
      $("piglatin-kept").textContent = answer.kept.length ? `kept as written: ${answer.kept.join(", ")}` : "";
      attention = answer.attention;
      words.innerHTML = "";
      attention.forEach(({ word, output }, i) => words.add(new Option(`${word} \u2192 ${output}`, i)));
      $("piglatin-word-row").hidden = attention.length === 0;
      if (attention.length) showAttention(attention[0]); else $("piglatin-attention").innerHTML = "";
      showError("piglatin", "");
    } catch (err) { clear(); showError("piglatin", err.message); }
  });
  words.addEventListener("change", () => showAttention(attention[Number(words.value)]));
  text.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(translate, 300); });
  $("piglatin-submit").addEventListener("click", () => { clearTimeout(timer); translate(); });
}

// --- spoken digits: classify an uploaded clip; hear a WaveNet say one ---------------------------

function setupSpeech() {
  const player = $("speech-audio");
  const send = async (file) => {
    if (!file) return;
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(file);
    player.hidden = false;
    $("speech-note").textContent = "";
    try {
      const answer = await postFile("/api/hear", "audio", file, file.name);
      showClasses("speech", answer);
      const converted = answer.converted ? ` \u00b7 converted: ${answer.converted}` : "";
      $("speech-note").textContent = `${answer.seconds.toFixed(2)} s${converted}`;
      showError("speech", "");
    } catch (err) { player.hidden = true; clearClasses("speech"); showError("speech", err.message); }
  };
  acceptFiles("speech", send);
}

function setupWavenet(info, panels) {
  info.class_names.forEach((name, i) => $("say-digit").add(new Option(name, i)));
  const seconds = $("say-seconds");
  seconds.max = panels.limits.speech_seconds;
  const temperature = $("say-temperature");
  temperature.addEventListener("input", () => {
    $("say-temperature-value").textContent = Number(temperature.value).toFixed(2);
  });
  const judged = Boolean(panels.panels.speech);
  $("say-no-judge").hidden = judged;
  const button = $("say-submit");
  const say = async () => {
    const payload = {
      label: Number($("say-digit").value),
      seed: Number($("say-seed").value) || 0,
      temperature: Number(temperature.value),
      seconds: Number(seconds.value),
    };
    button.disabled = true;
    $("say-timing").textContent = `saying a ${info.class_names[payload.label]}\u2026 (sampled one step at a time)`;
    try {
      const answer = await postJSON("/api/speak", payload);
      const player = $("say-audio");
      player.src = answer.audio;
      player.hidden = false;
      player.play().catch(() => {});  // the browser may refuse to start sound by itself
      $("say-picture").src = answer.picture;
      $("say-picture").hidden = false;
      $("say-timing").textContent =
        `${answer.seconds.toFixed(2)} s of audio in ${(answer.generation_ms / 1000).toFixed(1)} s ` +
        `(${answer.realtime.toFixed(2)}x real time)`;
      if (answer.verdict) { showClasses("say", answer.verdict); $("say-verdict").hidden = false; }
      showError("wavenet", answer.verdict_error || "");
    } catch (err) {
      $("say-timing").textContent = "";
      showError("wavenet", err.message);
    } finally { button.disabled = false; }
  };
  button.addEventListener("click", say);
  $("say-random").addEventListener("click", () => { $("say-seed").value = Math.floor(Math.random() * 1e6); say(); });
}

async function main() {
  let answer, panels;
  try {
    answer = await call("/api/panels");
    panels = answer.panels;
  } catch (err) {
    document.querySelector("header p").textContent = `The server does not answer: ${err.message}`;
    return;
  }
  const setup = {
    digit: setupDigit, photo: setupPhoto, review: setupReview, generator: setupGenerator,
    piglatin: setupPiglatin, speech: setupSpeech, wavenet: setupWavenet,
  };
  for (const [name, info] of Object.entries(panels)) {
    const section = $(name);
    if (!info) {
      section.classList.add("off");
      section.querySelector(".missing").hidden = false;
      continue;
    }
    const what = [info.kind.replace("_", " "), info.data && `trained on ${info.data}`, `${info.source} (${info.backend})`];
    section.querySelector(".model").textContent = what.filter(Boolean).join(" \u00b7 ");
    setup[name](info, answer);
  }
  document.body.dataset.ready = "true";
}

main();

// --- word neighbours and analogies (its own block: GET /api/embeddings says whether vectors are served)
async function setupEmbeddings() {
  const section = $("embeddings");
  const info = await call("/api/embeddings").catch(() => null);
  if (!info) {
    section.classList.add("off");
    section.querySelector(".missing").hidden = false;
    section.dataset.ready = "true";
    return;
  }
  section.querySelector(".model").textContent = `${info.words} words \u00d7 ${info.dim} \u00b7 ${info.source}`;
  const query = $("emb-query");
  const list = $("emb-results");
  let timer = null;
  const explore = coalesce(async () => {
    if (!query.value.trim()) { list.innerHTML = ""; showError("embeddings", ""); return; }
    try {
      const answer = await postJSON("/api/embeddings", { query: query.value, k: 10 });
      list.innerHTML = "";
      for (const { word, cosine } of answer.results) {
        const item = document.createElement("li");
        const value = document.createElement("span");
        value.className = "value";
        value.textContent = cosine.toFixed(3);
        item.append(word + " ", value);
        list.append(item);
      }
      showError("embeddings", "");
    } catch (err) { list.innerHTML = ""; showError("embeddings", err.message); }
  });
  query.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(explore, 300); });
  query.addEventListener("keydown", (event) => { if (event.key === "Enter") { clearTimeout(timer); explore(); } });
  $("emb-submit").addEventListener("click", () => { clearTimeout(timer); explore(); });
  section.dataset.ready = "true";
  explore();
}

setupEmbeddings();

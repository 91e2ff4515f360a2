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

// Each panel's script (``dlforge/serving/panels/<panel>.js``, loaded after this one) registers its set-up.
const PANEL_SETUP = {};
function panel(name, setup) { PANEL_SETUP[name] = setup; }

async function main() {
  let answer, panels;
  try {
    answer = await call("/api/panels");
    panels = answer.panels;
  } catch (err) {
    document.querySelector("header p").textContent = `The server does not answer: ${err.message}`;
    return;
  }
  for (const [name, info] of Object.entries(panels)) {
    const section = $(name);
    if (!info) {
      section.classList.add("off");
      section.querySelector(".missing").hidden = false;
      continue;
    }
    const what = [info.kind.replace("_", " "), info.data && `trained on ${info.data}`, `${info.source} (${info.backend})`];
    section.querySelector(".model").textContent = what.filter(Boolean).join(" \u00b7 ");
    PANEL_SETUP[name](info, answer);
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", main);  // after every panel's script

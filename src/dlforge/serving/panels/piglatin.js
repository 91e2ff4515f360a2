"use strict";
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

panel("piglatin", setupPiglatin);

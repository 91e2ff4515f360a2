"use strict";
// --- word neighbours and analogies ---------------------------------------------------------
function setupEmbeddings(info) {
  const section = $("embeddings");
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

panel("embeddings", setupEmbeddings);

"use strict";
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

panel("generator", setupGenerator);

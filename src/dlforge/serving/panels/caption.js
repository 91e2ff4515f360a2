"use strict";
// --- draw a caption: stage I and stage II of a text-to-image model ----------------------------
function setupCaption() {
  const text = $("caption-text");
  const seed = $("caption-seed");
  let timer = null;
  const draw = coalesce(async () => {
    if (!text.value.trim()) { showError("caption", ""); return; }
    try {
      const answer = await postJSON("/api/caption", { caption: text.value, seed: Number(seed.value) || 0 });
      $("caption-one").src = answer.stage_one;
      $("caption-two").src = answer.stage_two;
      showError("caption", "");
    } catch (err) { showError("caption", err.message); }
  });
  const soon = () => { clearTimeout(timer); timer = setTimeout(draw, 300); };
  text.addEventListener("input", soon);
  seed.addEventListener("input", soon);
  $("caption-submit").addEventListener("click", () => { clearTimeout(timer); draw(); });
  draw();
}

panel("caption", setupCaption);

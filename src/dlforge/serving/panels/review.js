"use strict";
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

panel("review", setupReview);

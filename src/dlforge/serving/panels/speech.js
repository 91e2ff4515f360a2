"use strict";
// --- classify a spoken clip ------------------------------------------------------------
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

panel("speech", setupSpeech);

"use strict";
// --- hear a WaveNet say a digit ------------------------------------------------------------
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

panel("wavenet", setupWavenet);

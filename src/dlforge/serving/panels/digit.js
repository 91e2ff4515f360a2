"use strict";
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

panel("digit", setupDigit);

"use strict";
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

panel("photo", setupPhoto);

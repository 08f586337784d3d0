// The page at /: digits drawn, uploaded or filmed are sent to POST /v1/read, and the boxes and
// numbers it answers are drawn over the picture. Plain script, no build step, no libraries.
"use strict";

(() => {
  const ink = document.getElementById("ink");
  const overlay = document.getElementById("overlay");
  const video = document.getElementById("video");
  const numbersList = document.getElementById("numbers");
  const statusLine = document.getElementById("status");
  const pen = document.getElementById("pen");
  const inkCtx = ink.getContext("2d");
  const overlayCtx = overlay.getContext("2d");
  const DRAW_SIZE = [720, 360];

  let mode = "draw";
  let stroke = null;        // the last point of the stroke being drawn
  let readTimer = null;
  let inFlight = false;     // one read at a time; what changed meanwhile is read next
  let again = null;         // the read to start when the one in flight is answered
  let stream = null;        // the camera's, while it runs
  let reads = 0;

  function setSize(width, height) {
    ink.width = overlay.width = width;
    ink.height = overlay.height = height;
  }

  function blankPage() {
    inkCtx.fillStyle = "white";
    inkCtx.fillRect(0, 0, ink.width, ink.height);
    overlayCtx.clearRect(0, 0, overlay.width, overlay.height);
    numbersList.replaceChildren();
  }

  function setStatus(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  // --- what the reader answered -------------------------------------------------------------

  function box(ctx, [x, y, w, h], color, width) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.strokeRect(x, y, w, h);
  }

  function show(item, millis) {
    const scale = Math.max(1, Math.round(Math.max(overlay.width, overlay.height) / 700));
    overlayCtx.clearRect(0, 0, overlay.width, overlay.height);
    overlayCtx.font = `bold ${14 * scale}px system-ui, sans-serif`;
    for (const shape of item.rejected) box(overlayCtx, shape.box, "rgba(128,128,128,0.6)", scale);
    numbersList.replaceChildren();
    for (const number of item.numbers) {
      box(overlayCtx, number.box, "#2b6cb0", 2 * scale);
      for (const digit of number.digits) {
        const sure = digit.digit !== null;
        box(overlayCtx, digit.box, sure ? "#2f855a" : "#c05621", scale);
        overlayCtx.fillStyle = sure ? "#2f855a" : "#c05621";
        overlayCtx.fillText(sure ? String(digit.digit) : "?", digit.box[0], digit.box[1] - 3 * scale);
      }
      const li = document.createElement("li");
      for (const ch of number.text) {
        const span = document.createElement("span");
        span.textContent = ch;
        if (ch === "?") span.className = "unsure";
        li.append(span);
      }
      numbersList.append(li);
    }
    const n = item.numbers.length;
    setStatus(n ? `${n} number${n > 1 ? "s" : ""} read in ${Math.round(millis)} ms` : "No digits found.");
  }

  async function read(blob) {
    if (inFlight) {
      again = () => read(blob);
      return;
    }
    inFlight = true;
    const start = performance.now();
    try {
      const response = await fetch("/v1/read", {
        method: "POST", headers: {"Content-Type": blob.type || "application/octet-stream"}, body: blob,
      });
      const doc = await response.json();
      if (!response.ok) throw new Error(doc.error || `${response.status} ${response.statusText}`);
      show(doc.items[0], performance.now() - start);
    } catch (err) {
      overlayCtx.clearRect(0, 0, overlay.width, overlay.height);
      numbersList.replaceChildren();
      setStatus(`Could not read: ${err.message}`, true);
    } finally {
      inFlight = false;
      document.body.dataset.reads = String(++reads);  // a hook for tests: one more answer shown
      const next = again;
      again = null;
      if (next) next();
    }
  }

  function canvasBlob(type, quality) {
    return new Promise((resolve) => ink.toBlob(resolve, type, quality));
  }

  // --- drawing with a mouse, a pen or a finger (pointer events cover all three) ---------------

  function at(event) {
    const r = ink.getBoundingClientRect();
    return [(event.clientX - r.left) * ink.width / r.width, (event.clientY - r.top) * ink.height / r.height];
  }

  function drawTo([x, y]) {
    inkCtx.strokeStyle = "black";
    inkCtx.lineWidth = Number(pen.value);
    inkCtx.lineCap = inkCtx.lineJoin = "round";
    inkCtx.beginPath();
    inkCtx.moveTo(...stroke);
    inkCtx.lineTo(x, y);
    inkCtx.stroke();
    stroke = [x, y];
  }

  ink.addEventListener("pointerdown", (event) => {
    if (mode !== "draw") return;
    ink.setPointerCapture(event.pointerId);
    clearTimeout(readTimer);
    stroke = at(event);
    drawTo(stroke);
  });
  ink.addEventListener("pointermove", (event) => {
    if (stroke) drawTo(at(event));
  });
  for (const name of ["pointerup", "pointercancel"]) {
    ink.addEventListener(name, () => {
      if (!stroke) return;
      stroke = null;
      // Read once the hand rests: a digit is often more than one stroke.
      clearTimeout(readTimer);
      readTimer = setTimeout(async () => read(await canvasBlob("image/png")), 400);
    });
  }
  document.getElementById("clear").addEventListener("click", () => {
    clearTimeout(readTimer);
    blankPage();
    setStatus("Draw some digits.");
  });

  // --- a photo from the disk or the phone's camera app ----------------------------------------

  document.getElementById("photo").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      setSize(bitmap.width, bitmap.height);
      blankPage();
      inkCtx.drawImage(bitmap, 0, 0);
    } catch (err) {
      setStatus(`Not an image this browser can show (${err.message}); sending it anyway.`, true);
    }
    setStatus("Reading…");
    read(file);  // the file's own bytes: the reader sees the photo, not a re-encoded copy
  });

  // --- the webcam, read frame after frame ------------------------------------------------------

  async function startCamera() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false});
    } catch (err) {
      setStatus(`No camera: ${err.message}`, true);
      return;
    }
    video.srcObject = stream;
    await video.play();
    setSize(video.videoWidth, video.videoHeight);
    document.getElementById("camera-start").disabled = true;
    document.getElementById("camera-stop").disabled = false;
    setStatus("Reading the camera…");
    const frame = async () => {
      if (!stream) return;
      inkCtx.drawImage(video, 0, 0, ink.width, ink.height);
      await read(await canvasBlob("image/jpeg", 0.9));
      if (stream) requestAnimationFrame(frame);  // the next frame once this one is answered
    };
    frame();
  }

  function stopCamera() {
    if (!stream) return;
    for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
    document.getElementById("camera-start").disabled = false;
    document.getElementById("camera-stop").disabled = true;
  }

  document.getElementById("camera-start").addEventListener("click", startCamera);
  document.getElementById("camera-stop").addEventListener("click", stopCamera);

  // --- modes -----------------------------------------------------------------------------------

  function setMode(next) {
    if (next !== "camera") stopCamera();
    mode = next;
    for (const button of document.querySelectorAll("#modes button")) {
      button.setAttribute("aria-selected", String(button.id === `mode-${next}`));
    }
    for (const span of document.querySelectorAll("#controls [data-mode]")) {
      span.hidden = span.dataset.mode !== next;
    }
    ink.style.cursor = next === "draw" ? "crosshair" : "default";
    if (next === "draw") {
      setSize(...DRAW_SIZE);
      blankPage();
      setStatus("Draw some digits.");
    } else if (next === "photo") {
      setStatus("Choose a PNG or JPEG photo.");
    } else {
      setStatus("Start the camera and show it a page.");
    }
  }

  for (const name of ["draw", "photo", "camera"]) {
    document.getElementById(`mode-${name}`).addEventListener("click", () => setMode(name));
  }
  setMode("draw");
})();

// keypaint's drawing canvas: pen, eraser, undo, clear, brush size. One class for every picture a user draws:
// a sketch (black strokes on white, sent as an image field: init image, or a control image) and an inpainting
// mask (white strokes over the init image, sent as a black-and-white PNG).
"use strict";

class DrawingCanvas {
  // root: an element to fill; options.mask: draw a mask over `background` instead of a sketch on white
  constructor(root, { width = 64, height = 64, mask = false } = {}) {
    this.mask = mask;
    this.history = [];  // ImageData before each stroke, for undo
    this.tool = "pen";
    this.root = root;
    root.classList.add("drawing");
    root.innerHTML = `
      <div class="drawing-tools" role="toolbar">
        <button type="button" data-tool="pen" aria-pressed="true">Pen</button>
        <button type="button" data-tool="eraser" aria-pressed="false">Eraser</button>
        <label>Brush <input type="range" min="1" max="64" value="8" data-brush></label>
        <button type="button" data-undo disabled>Undo</button>
        <button type="button" data-clear>Clear</button>
      </div>
      <div class="drawing-stage"><img alt="" hidden><canvas></canvas></div>`;
    this.canvas = root.querySelector("canvas");
    this.image = root.querySelector("img");
    this.context = this.canvas.getContext("2d");
    this.brush = root.querySelector("[data-brush]");
    for (const button of root.querySelectorAll("[data-tool]")) {
      button.addEventListener("click", () => this.setTool(button.dataset.tool));
    }
    root.querySelector("[data-undo]").addEventListener("click", () => this.undo());
    root.querySelector("[data-clear]").addEventListener("click", () => this.clear());
    this.canvas.addEventListener("pointerdown", (event) => this.begin(event));
    this.canvas.addEventListener("pointermove", (event) => this.extend(event));
    for (const name of ["pointerup", "pointerleave", "pointercancel"]) {
      this.canvas.addEventListener(name, () => { this.last = null; });
    }
    this.resize(width, height);
  }

  resize(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.history = [];
    this.blank();
    this.changed();
  }

  // a mask is drawn over this picture (a data URL); the canvas takes its size
  setBackground(dataUrl) {
    this.image.hidden = !dataUrl;
    if (!dataUrl) return;
    this.image.onload = () => this.resize(this.image.naturalWidth, this.image.naturalHeight);
    this.image.src = dataUrl;
  }

  setTool(tool) {
    this.tool = tool;
    for (const button of this.root.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
    }
  }

  blank() {
    const c = this.context;
    c.globalCompositeOperation = "source-over";
    if (this.mask) c.clearRect(0, 0, this.canvas.width, this.canvas.height);
    else { c.fillStyle = "#fff"; c.fillRect(0, 0, this.canvas.width, this.canvas.height); }
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * this.canvas.width / box.width,
            (event.clientY - box.top) * this.canvas.height / box.height];
  }

  begin(event) {
    event.preventDefault();
    this.canvas.setPointerCapture?.(event.pointerId);
    this.history.push(this.context.getImageData(0, 0, this.canvas.width, this.canvas.height));
    if (this.history.length > 50) this.history.shift();
    this.last = this.point(event);
    this.stroke(this.last, this.last);
    this.changed();
  }

  extend(event) {
    if (!this.last) return;
    const next = this.point(event);
    this.stroke(this.last, next);
    this.last = next;
  }

  stroke(from, to) {
    const c = this.context;
    const erase = this.tool === "eraser";
    // a mask's eraser makes the canvas clear again; a sketch's paints white
    c.globalCompositeOperation = erase && this.mask ? "destination-out" : "source-over";
    c.strokeStyle = erase ? "#fff" : (this.mask ? "rgba(255,255,255,1)" : "#000");
    c.lineWidth = Number(this.brush.value) * this.canvas.width / Math.max(this.canvas.clientWidth, 1);
    c.lineCap = c.lineJoin = "round";
    c.beginPath();
    c.moveTo(...from);
    c.lineTo(...to);
    c.stroke();
    c.globalCompositeOperation = "source-over";
  }

  undo() {
    const previous = this.history.pop();
    if (previous) this.context.putImageData(previous, 0, 0);
    this.changed();
  }

  clear() {
    this.history.push(this.context.getImageData(0, 0, this.canvas.width, this.canvas.height));
    this.blank();
    this.changed();
  }

  changed() {
    this.root.querySelector("[data-undo]").disabled = this.history.length === 0;
    this.root.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // nothing drawn: a sketch all white, a mask all clear
  isEmpty() {
    const data = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (this.mask ? data[i + 3] > 0 : data[i] < 255 || data[i + 1] < 255 || data[i + 2] < 255) return false;
    }
    return true;
  }

  // the picture as a PNG data URL: the sketch itself, or the mask as white (repaint) on black, no grey
  toDataURL() {
    if (!this.mask) return this.canvas.toDataURL("image/png");
    const out = document.createElement("canvas");
    out.width = this.canvas.width;
    out.height = this.canvas.height;
    const pixels = this.context.getImageData(0, 0, out.width, out.height);
    const data = pixels.data;
    for (let i = 0; i < data.length; i += 4) {
      const value = data[i + 3] >= 128 ? 255 : 0;
      data[i] = data[i + 1] = data[i + 2] = value;
      data[i + 3] = 255;
    }
    out.getContext("2d").putImageData(pixels, 0, 0);
    return out.toDataURL("image/png");
  }
}

// The page's drawing canvases (a sketch, an inpainting mask over the init image) and the hires fix and
// outpainting options; app.js calls setupPaintOptions() at start and paintOptions(body) for each request.
"use strict";

const drawings = {};  // "sketch" and "mask": DrawingCanvas instances others may reuse (a control image)

async function setupPaintOptions(nativeSize) {
  drawings.sketch = new DrawingCanvas(document.getElementById("sketch-canvas"),
                                      { width: nativeSize, height: nativeSize });
  drawings.mask = new DrawingCanvas(document.getElementById("mask-canvas"), { mask: true });
  document.getElementById("sketch-to-init").addEventListener("click", () => setInit(drawings.sketch.toDataURL()));
  // the mask is drawn over the init image, whenever one is chosen
  new MutationObserver(() => {
    const preview = document.getElementById("init-preview");
    drawings.mask.setBackground(preview.hidden ? null : preview.src);
    document.getElementById("mask-box").hidden = preview.hidden;
  }).observe(document.getElementById("init-preview"), { attributes: true, attributeFilter: ["src", "hidden"] });
  const upscalers = document.getElementById("hires-upscaler");
  try {
    const latent = await api("GET", "/sdapi/v1/latent-upscale-modes");
    const models = await api("GET", "/sdapi/v1/upscalers");
    for (const { name } of [...latent, ...models]) upscalers.append(new Option(name, name));
  } catch (err) {
    upscalers.append(new Option("Latent", "Latent"));
  }
  const strength = document.getElementById("hires-strength");
  strength.addEventListener("input", () => {
    document.getElementById("hires-strength-value").textContent = strength.value;
  });
}

function paintOptions(body) {
  const $ = (id) => document.getElementById(id);
  if ($("hires").checked) {
    body.hires = { scale: Number($("hires-scale").value), upscaler: $("hires-upscaler").value,
                   steps: Number($("hires-steps").value || 0), strength: Number($("hires-strength").value) };
  }
  if (body.init_image) {
    const sides = {};
    for (const side of ["left", "right", "up", "down"]) {
      const value = Number($(`outpaint-${side}`).value || 0);
      if (value) sides[side] = value;
    }
    if (Object.keys(sides).length) body.outpaint = sides;
    else if (!drawings.mask.isEmpty()) body.mask = drawings.mask.toDataURL();
  }
  return body;
}

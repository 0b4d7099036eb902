// The page's drawing canvases (a sketch, an inpainting mask over the init image), a ControlNet unit (the
// sketch or an uploaded picture as its control image) and the hires fix and outpainting options; app.js
// calls setupPaintOptions() at start and paintOptions(body) for each request.
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
  await setupControl();
  const strength = document.getElementById("hires-strength");
  strength.addEventListener("input", () => {
    document.getElementById("hires-strength-value").textContent = strength.value;
  });
}

let controlImage = null;  // the uploaded control image (a data: URL); without one the sketch is used

async function setupControl() {
  const models = document.getElementById("control-model");
  const modules = document.getElementById("control-preprocess");
  try {
    for (const name of (await api("GET", "/controlnet/model_list")).model_list) models.append(new Option(name, name));
    for (const name of (await api("GET", "/controlnet/module_list")).module_list) modules.append(new Option(name, name));
  } catch (err) {
    modules.append(new Option("none", "none"));
  }
  const none = [...modules.options].find((option) => option.value === "none");
  if (none) none.selected = true;
  document.getElementById("control").hidden = models.options.length === 0;  // no ControlNet installed
  document.getElementById("control-image").addEventListener("change", (event) => {
    const file = event.target.files[0];
    controlImage = null;
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => { controlImage = reader.result; };
    reader.readAsDataURL(file);
  });
}

function paintOptions(body) {
  const $ = (id) => document.getElementById(id);
  if ($("control-on").checked && $("control-model").value) {
    body.control_units = [{
      model: $("control-model").value, preprocess: $("control-preprocess").value,
      image: controlImage || drawings.sketch.toDataURL(), weight: Number($("control-weight").value),
      start: Number($("control-start").value), end: Number($("control-end").value),
    }];
  }
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

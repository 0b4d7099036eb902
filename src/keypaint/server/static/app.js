// keypaint's page: keyword chips in, a job out through /api/jobs, progress by server-sent events.
// Plain JS, no build step, nothing loaded from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { chips: { positive: [], negative: [] }, job: null, events: null, offset: 0, init: null,
                loras: [], embeddings: [], mapped: {} };

// ---- keyword chips: {text, weight}; weight 1 is written plain, else A1111's "(text:1.2)" ----
const WEIGHTED = /^\((.+):\s*(-?[\d.]+)\)$/s;

function parseKeyword(text) {
  const match = WEIGHTED.exec(text.trim());
  return match ? { text: match[1].trim(), weight: Number(match[2]) } : { text: text.trim(), weight: 1 };
}

function keywordText(chip) {
  return chip.weight === 1 ? chip.text : `(${chip.text}:${Number(chip.weight.toFixed(2))})`;
}

function addKeywords(kind, raw) {
  for (const part of splitKeywords(raw)) {
    if (part) state.chips[kind].push(parseKeyword(part));
  }
  renderChips(kind);
}

function splitKeywords(raw) {
  // commas inside brackets or escaped do not split (as keypaint.keywords.syntax.keywords)
  const out = [];
  let depth = 0, current = "";
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === "\\" && i + 1 < raw.length) { current += raw.slice(i, i + 2); i++; continue; }
    if (ch === "(" || ch === "[") depth++;
    if ((ch === ")" || ch === "]") && depth > 0) depth--;
    if (ch === "," && depth === 0) { out.push(current.trim()); current = ""; } else current += ch;
  }
  out.push(current.trim());
  return out.filter(Boolean);
}

function renderChips(kind) {
  const box = kind === "positive" ? $("chips") : $("negative-chips");
  const input = kind === "positive" ? $("keyword-input") : $("negative-input");
  box.querySelectorAll(".chip").forEach((el) => el.remove());
  state.chips[kind].forEach((chip, index) => {
    const el = document.createElement("span");
    el.className = "chip";
    el.dataset.text = chip.text;
    const label = document.createElement("span");
    label.className = "text";
    label.textContent = chip.text;
    const weight = document.createElement("button");
    weight.type = "button";
    weight.className = "weight";
    weight.title = "weight: click +0.1, shift-click -0.1";
    weight.textContent = chip.weight.toFixed(1);
    weight.addEventListener("click", (event) => {
      const step = event.shiftKey ? -0.1 : 0.1;
      chip.weight = Math.round((chip.weight + step) * 10) / 10;
      if (chip.weight > 2 || chip.weight < 0) chip.weight = 1;
      renderChips(kind);
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.setAttribute("aria-label", `remove ${chip.text}`);
    remove.textContent = "×";
    remove.addEventListener("click", () => { state.chips[kind].splice(index, 1); renderChips(kind); });
    el.append(label, weight, remove);
    box.insertBefore(el, input);
  });
  if (kind === "positive") { markMapped(); countTokens(); }
}

// The model's meaning-mapping of a keyword it has no label for ("cheeseburger -> hamburger"), when
// POST /api/keywords reports one: {"mapped": {"cheeseburger": "hamburger"}} (a value may also be
// {"label": ..., "score": ...}). Shown on the chip while keyword expansion is on.
function mappingOf(chip) {
  const key = (text) => text.toLowerCase().split(/\s+/).filter(Boolean).join(" ");
  for (const [keyword, value] of Object.entries(state.mapped)) {
    if (key(keyword) === key(chip.text) || keyword === keywordText(chip)) {
      return typeof value === "string" ? { label: value } : value;
    }
  }
  return null;
}

function markMapped() {
  const chips = $("chips").querySelectorAll(".chip");
  state.chips.positive.forEach((chip, index) => {
    const el = chips[index];
    if (!el) return;
    el.querySelector(".mapped")?.remove();
    const mapping = mappingOf(chip);
    if (!mapping || !mapping.label || !$("expand").checked) { delete el.dataset.mapped; return; }
    const hint = document.createElement("span");
    hint.className = "mapped";
    hint.textContent = `\u2192 ${mapping.label}`;
    hint.title = `the model has no picture for "${chip.text}"; it paints its nearest keyword, ` +
      `"${mapping.label}"` + (typeof mapping.score === "number" ? ` (similarity ${mapping.score.toFixed(2)})` : "");
    el.dataset.mapped = mapping.label;
    el.querySelector(".text").after(hint);
  });
}

function chipInput(kind, input) {
  input.addEventListener("keydown", (event) => {
    if ((event.key === "Enter" || event.key === ",") && input.value.trim()) {
      event.preventDefault();
      addKeywords(kind, input.value);
      input.value = "";
    } else if (event.key === "Backspace" && !input.value && state.chips[kind].length) {
      state.chips[kind].pop();
      renderChips(kind);
    }
  });
  input.addEventListener("paste", (event) => {
    const text = event.clipboardData.getData("text");
    if (text.includes(",")) { event.preventDefault(); addKeywords(kind, text); }
  });
}

let tokenTimer = null;
function countTokens() {
  clearTimeout(tokenTimer);
  tokenTimer = setTimeout(async () => {
    const prompt = state.chips.positive.map(keywordText).join(", ");
    const answer = await api("POST", "/api/keywords", { prompt }).catch(() => null);
    $("tokens").textContent = answer ? `${answer.tokens}/${answer.capacity} tokens.` : "";
    state.mapped = answer && answer.mapped && typeof answer.mapped === "object" ? answer.mapped : {};
    markMapped();
  }, 250);
}

// ---- HTTP ----
async function api(method, url, body) {
  const response = await fetch(url, {
    method, headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined, credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || (typeof data.detail === "string" && data.detail) ||
                            `${response.status} ${response.statusText}`);
    const loc = Array.isArray(data.detail) && data.detail[0] && data.detail[0].loc;
    const field = Array.isArray(loc) ? loc.filter((part) => part !== "body")[0] : undefined;
    error.field = field === undefined ? null : String(field);  // ["body", "loras", 0, "weight"]: loras
    throw error;
  }
  return data;
}

// ---- the error line: shown until its cause is fixed (the field it names changes) or a run starts ----
const FIELD_INPUTS = {
  keywords: ["keyword-input", "chips"], prompt: ["keyword-input", "chips"],
  negative_keywords: ["negative-input", "negative-chips"], negative_prompt: ["negative-input", "negative-chips"],
  style: ["style"], sampler: ["sampler"], steps: ["steps"], guidance_scale: ["cfg"], seed: ["seed"],
  width: ["width"], height: ["height"], size: ["width", "height"], batch_size: ["batch"], init_image: ["init-file", "img2img"],
  strength: ["strength"], loras: ["lora", "lora-weight", "adapter-chips"], lora_weight: ["lora-weight", "lora"],
  embeddings: ["embedding", "adapter-chips"], hires: ["hires-options"], outpaint: ["outpaint"],
  mask: ["mask-canvas"],
  shift: ["shift"], distilled_guidance: ["distilled"], flow: ["shift", "distilled"],
};

function showError(message, field = null) {
  $("error").textContent = message;
  if (field) $("error").dataset.field = field; else delete $("error").dataset.field;
}

function clearError() {
  showError("");
}

function clearErrorOf(event) {
  const field = $("error").dataset.field;
  const ids = field && FIELD_INPUTS[field];
  if (ids && ids.some((id) => $(id) === event.target || $(id).contains(event.target))) clearError();
}

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function request() {
  pending("positive", $("keyword-input"));
  pending("negative", $("negative-input"));
  const body = {
    keywords: state.chips.positive.map(keywordText),
    negative_keywords: state.chips.negative.map(keywordText),
    style: $("style").value, sampler: $("sampler").value, steps: number("steps"),
    guidance_scale: number("cfg"), seed: number("seed"), batch_size: number("batch"),
    expand_keywords: $("expand").checked,
  };
  if (number("width")) body.width = number("width");
  if (number("height")) body.height = number("height");
  if (state.init) { body.init_image = state.init; body.strength = Number($("strength").value); }
  if (state.loras.length) body.loras = state.loras.map((l) => ({ name: l.name, weight: l.weight }));
  if (state.embeddings.length) body.embeddings = [...state.embeddings];
  if (number("shift")) body.shift = number("shift"); // SD3/Flux only; the server refuses it elsewhere
  if (number("distilled")) body.distilled_guidance = number("distilled");
  return paintOptions(body);  // hires fix, outpainting, a drawn mask (paint_options.js)
}

// ---- LoRAs (name + weight in [-2, 2]) and embeddings, from the server's folders ----
function renderAdapters() {
  const box = $("adapter-chips");
  box.replaceChildren();
  const chip = (text, onRemove) => {
    const el = document.createElement("span");
    el.className = "chip";
    const label = document.createElement("span");
    label.className = "text";
    label.textContent = text;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.setAttribute("aria-label", `remove ${text}`);
    remove.textContent = "×";
    remove.addEventListener("click", () => { onRemove(); renderAdapters(); });
    el.append(label, remove);
    box.append(el);
  };
  state.loras.forEach((lora, i) => chip(`LoRA ${lora.name}: ${lora.weight}`, () => state.loras.splice(i, 1)));
  state.embeddings.forEach((name, i) => chip(`embedding ${name}`, () => state.embeddings.splice(i, 1)));
}

function addLora() {
  const name = $("lora").value, weight = Number($("lora-weight").value);
  if (!name) return;
  if (!(weight >= -2 && weight <= 2)) { showError("LoRA weight must be within [-2, 2]", "lora_weight"); return; }
  if ($("error").dataset.field === "lora_weight" || $("error").dataset.field === "loras") clearError();
  state.loras = state.loras.filter((l) => l.name !== name).concat([{ name, weight }]);
  renderAdapters();
}

function addEmbedding() {
  const name = $("embedding").value;
  if (!name || state.embeddings.includes(name)) return;
  state.embeddings.push(name);
  if (!state.chips.positive.some((c) => c.text.toLowerCase() === name.toLowerCase())) addKeywords("positive", name);
  renderAdapters();
}

async function loadAdapters() {
  const [loras, embeddings] = await Promise.all([
    api("GET", "/sdapi/v1/loras").catch(() => []), api("GET", "/sdapi/v1/embeddings").catch(() => ({})),
  ]);
  for (const lora of loras) $("lora").append(new Option(lora.alias && lora.alias !== lora.name
    ? `${lora.name} (${lora.alias})` : lora.name, lora.name));
  for (const name of Object.keys(embeddings.loaded || {})) $("embedding").append(new Option(name, name));
  if (loras.length) $("lora").options[0].textContent = "choose a LoRA";
  if (Object.keys(embeddings.loaded || {}).length) $("embedding").options[0].textContent = "choose an embedding";
}

function pending(kind, input) {
  if (input.value.trim()) { addKeywords(kind, input.value); input.value = ""; }
}

// ---- a job's life: submit, follow its events, show its pictures ----
async function generate(event) {
  event.preventDefault();
  clearError();
  let job;
  try {
    job = await api("POST", "/api/jobs", request());
  } catch (err) {
    showError(err.message, err.field);
    return;
  }
  follow(job);
}

function follow(job) {
  state.job = job.id;
  $("cancel").disabled = false;
  $("progress").value = 0;
  $("status").textContent = job.status === "queued" ? `queued (${job.position} ahead)` : job.status;
  $("result").replaceChildren();
  $("preview").hidden = true;
  $("preview").classList.remove("stale");
  $("preview").removeAttribute("src");
  if (state.events) state.events.close();
  const events = new EventSource(`/api/jobs/${job.id}/events`);
  state.events = events;
  events.addEventListener("status", (e) => {
    const data = JSON.parse(e.data);
    $("status").textContent = data.status === "queued" ? `queued (${data.position} ahead)` : data.status;
  });
  events.addEventListener("progress", (e) => {
    const data = JSON.parse(e.data);
    $("progress").value = data.fraction;
    $("status").textContent = `running: step ${data.step}/${data.steps}` +
      (data.batches > 1 ? `, batch ${data.batch + 1}/${data.batches}` : "");
    if (data.preview) { $("preview").src = data.preview; $("preview").hidden = false; }
  });
  events.addEventListener("done", (e) => {
    const data = JSON.parse(e.data);
    events.close();
    state.events = null;
    state.job = null;
    $("cancel").disabled = true;
    const why = data.error && data.error !== data.status ? `: ${data.error}` : "";  // not "cancelled: cancelled"
    $("status").textContent = data.status === "succeeded" ? "done" : `${data.status}${why}`;
    $("progress").value = data.status === "succeeded" ? 1 : $("progress").value;
    if (data.status === "succeeded") {
      clearError();
      $("preview").hidden = true;  // the result takes its place
    } else {
      $("preview").classList.add("stale");  // what the run had got to, kept to look at
    }
    for (const image of data.images || []) $("result").append(resultCard(image));
    refreshGallery();
  });
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  await api("DELETE", `/api/jobs/${state.job}`).catch((err) => showError(err.message));
}

// ---- a result: the picture, and what to do with it next ----
function resultCard(image) {
  const card = document.createElement("figure");
  card.className = "result-card";
  card.dataset.id = image.id;
  const picture = thumb(image);
  const caption = document.createElement("figcaption");
  caption.textContent = `seed ${image.seed}, ${image.width}\u00d7${image.height}`;
  const actions = document.createElement("div");
  actions.className = "result-actions";
  const download = document.createElement("a");
  download.className = "button download";
  download.href = image.download;
  download.setAttribute("download", image.url.split("/").pop());
  download.textContent = "Download";
  const seed = document.createElement("button");
  seed.type = "button";
  seed.className = "reuse-seed";
  seed.textContent = "Reuse seed";
  seed.title = `put ${image.seed} in the seed field`;
  seed.addEventListener("click", () => reuseSeed(image));
  const img2img = document.createElement("button");
  img2img.type = "button";
  img2img.className = "to-img2img";
  img2img.textContent = "Send to img2img";
  img2img.title = "use this picture as the init image";
  img2img.addEventListener("click", () => sendToImg2img(image));
  actions.append(download, seed, img2img);
  card.append(picture, caption, actions);
  return card;
}

function reuseSeed(image) {
  $("seed").value = image.seed;
  $("seed").focus();
}

async function sendToImg2img(image) {
  try {
    const response = await fetch(image.url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${image.url}: ${response.status} ${response.statusText}`);
    const blob = await response.blob();
    const url = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    $("init-file").value = "";
    setInit(url);
    $("img2img").scrollIntoView({ block: "nearest", behavior: "smooth" });
  } catch (err) {
    showError(`could not use the picture as the init image: ${err.message}`, "init_image");
  }
}

// ---- gallery ----
function thumb(image) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "thumb";
  button.dataset.id = image.id;
  const img = document.createElement("img");
  img.src = image.url;
  img.alt = image.params.prompt || "";
  img.title = `seed ${image.seed}`;
  button.append(img);
  button.addEventListener("click", () => showDetails(image));
  return button;
}

async function refreshGallery(more = false) {
  const offset = more ? state.offset : 0;
  const page = await api("GET", `/api/images?offset=${offset}&limit=24`);
  if (!more) $("gallery").replaceChildren();
  for (const image of page.images) $("gallery").append(thumb(image));
  state.offset = offset + page.images.length;
  $("gallery-count").textContent = `(${page.total})`;
  $("more").hidden = page.next_offset === null;
}

function showDetails(image) {
  $("details-image").src = image.url;
  $("details-text").textContent = image.infotext;
  $("download").href = image.download;
  $("download").setAttribute("download", image.url.split("/").pop());
  $("use-again").onclick = () => { useAgain(image); $("details").close(); };
  $("details-seed").onclick = () => { $("details").close(); reuseSeed(image); };
  $("details-img2img").onclick = () => { $("details").close(); sendToImg2img(image); };
  $("details").showModal();
}

function useAgain(image) {
  const req = image.request || {}, params = image.params || {};
  state.chips.positive = (req.keywords && req.keywords.length ? req.keywords : splitKeywords(params.prompt || ""))
    .map(parseKeyword);
  state.chips.negative = (req.negative_keywords && req.negative_keywords.length
    ? req.negative_keywords : splitKeywords(params.negative_prompt || "")).map(parseKeyword);
  renderChips("positive");
  renderChips("negative");
  $("style").value = req.keywords ? (req.style || "none") : "none";
  $("sampler").value = params.sampler || req.sampler || $("sampler").value;
  $("steps").value = params.steps;
  $("cfg").value = params.guidance_scale;
  $("expand").checked = params.expand_keywords !== false;
  $("seed").value = image.seed;
  $("width").value = params.width;
  $("height").value = params.height;
  $("batch").value = 1;
  $("strength").value = params.strength;
  $("strength-value").textContent = params.strength;
  $("shift").value = (params.flow && params.flow.shift) ?? "";
  $("distilled").value = (params.flow && params.flow.distilled_guidance) ?? "";
  state.loras = (req.loras || []).map((l) => ({ name: l.name, weight: l.weight }));
  state.embeddings = [...(req.embeddings || [])];
  renderAdapters();
}

// ---- init image ----
function readInit() {
  const file = $("init-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => setInit(reader.result);
  reader.readAsDataURL(file);
}

function setInit(dataUrl) {
  state.init = dataUrl;
  $("init-preview").src = dataUrl;
  $("init-preview").hidden = false;
  $("init-clear").hidden = false;
  if ($("error").dataset.field === "init_image") clearError();
}

function clearInit() {
  state.init = null;
  $("init-file").value = "";
  $("init-preview").hidden = true;
  $("init-clear").hidden = true;
}

// ---- start ----
async function start() {
  chipInput("positive", $("keyword-input"));
  chipInput("negative", $("negative-input"));
  $("form").addEventListener("submit", generate);
  $("cancel").addEventListener("click", cancel);
  $("more").addEventListener("click", () => refreshGallery(true));
  $("details-close").addEventListener("click", () => $("details").close());
  $("init-file").addEventListener("change", readInit);
  $("init-clear").addEventListener("click", clearInit);
  $("strength").addEventListener("input", () => { $("strength-value").textContent = $("strength").value; });
  $("lora-add").addEventListener("click", addLora);
  $("embedding-add").addEventListener("click", addEmbedding);
  $("expand").addEventListener("change", markMapped);
  $("form").addEventListener("input", clearErrorOf);
  $("form").addEventListener("change", clearErrorOf);
  for (const kind of ["positive", "negative"]) {  // a chip added or removed changes the keywords
    const box = kind === "positive" ? $("chips") : $("negative-chips");
    new MutationObserver(() => clearErrorOf({ target: box })).observe(box, { childList: true });
  }
  const info = await api("GET", "/api/info");
  $("model").textContent = info.model;
  $("queue").textContent = `queue ${info.queue.queued}/${info.queue.max}`;
  for (const style of info.styles) $("style").append(new Option(style.name, style.name));
  for (const name of info.samplers) $("sampler").append(new Option(name, name));
  $("sampler").value = info.default_sampler;
  $("width").placeholder = $("height").placeholder = info.native_size;
  await setupPaintOptions(info.native_size);
  await loadAdapters();
  await refreshGallery();
  document.body.dataset.ready = "true";
}

start().catch((err) => showError(err.message));

// keypaint's page: keyword chips in, a job out through /api/jobs, progress by server-sent events.
// Plain JS, no build step, nothing loaded from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { chips: { positive: [], negative: [] }, job: null, events: null, offset: 0, init: null,
                loras: [], embeddings: [] };

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
  // commas inside brackets or escaped do not split (as keypaint.prompts.parser.keywords)
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
  if (kind === "positive") countTokens();
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
  }, 250);
}

// ---- HTTP ----
async function api(method, url, body) {
  const response = await fetch(url, {
    method, headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined, credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || data.detail || `${response.status} ${response.statusText}`);
  return data;
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
  return body;
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
  if (!(weight >= -2 && weight <= 2)) { $("error").textContent = "LoRA weight must be within [-2, 2]"; return; }
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
  $("error").textContent = "";
  let job;
  try {
    job = await api("POST", "/api/jobs", request());
  } catch (err) {
    $("error").textContent = err.message;
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
    $("status").textContent = data.status === "succeeded" ? "done" : `${data.status}: ${data.error || ""}`;
    $("progress").value = data.status === "succeeded" ? 1 : $("progress").value;
    for (const image of data.images || []) $("result").append(thumb(image));
    refreshGallery();
  });
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  await api("DELETE", `/api/jobs/${state.job}`).catch((err) => { $("error").textContent = err.message; });
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
  state.loras = (req.loras || []).map((l) => ({ name: l.name, weight: l.weight }));
  state.embeddings = [...(req.embeddings || [])];
  renderAdapters();
}

// ---- init image ----
function readInit() {
  const file = $("init-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.init = reader.result;
    $("init-preview").src = reader.result;
    $("init-preview").hidden = false;
    $("init-clear").hidden = false;
  };
  reader.readAsDataURL(file);
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
  const info = await api("GET", "/api/info");
  $("model").textContent = info.model;
  $("queue").textContent = `queue ${info.queue.queued}/${info.queue.max}`;
  for (const style of info.styles) $("style").append(new Option(style.name, style.name));
  for (const name of info.samplers) $("sampler").append(new Option(name, name));
  $("sampler").value = info.default_sampler;
  $("width").placeholder = $("height").placeholder = info.native_size;
  await loadAdapters();
  await refreshGallery();
  document.body.dataset.ready = "true";
}

start().catch((err) => { $("error").textContent = err.message; });

// "Learn a style or character": pictures dropped or chosen, sent to POST /api/finetune as one multipart
// form; the job is followed by its events (step, loss, time left, sample pictures); "Try it" puts the new
// word in the keywords and picks the new LoRA (or embedding) in the adapter pickers of app.js.
"use strict";

const learn = { files: new Map(), job: null, events: null, done: null };  // files: name -> File

function learnEl(id) {
  return document.getElementById(`learn-${id}`);
}

const isCaption = (file) => file.name.toLowerCase().endsWith(".txt");

function addLearnFiles(list) {
  for (const file of list) {
    if (isCaption(file) || file.type.startsWith("image/") || /\.(png|jpe?g|webp|bmp|gif)$/i.test(file.name)) {
      learn.files.set(file.name, file);  // the same name again replaces the earlier file
    }
  }
  if (learnEl("error").dataset.field === "pictures") learnEl("error").textContent = "";
  renderLearnFiles();
}

function renderLearnFiles() {
  const thumbs = learnEl("thumbs");
  thumbs.querySelectorAll("img").forEach((img) => URL.revokeObjectURL(img.src));
  thumbs.replaceChildren();
  const files = [...learn.files.values()];
  const pictures = files.filter((file) => !isCaption(file));
  for (const file of pictures) {
    const img = document.createElement("img");
    img.src = URL.createObjectURL(file);
    img.alt = img.title = file.name;
    thumbs.append(img);
  }
  const captions = files.length - pictures.length;
  learnEl("count").textContent = pictures.length
    ? `${pictures.length} picture${pictures.length === 1 ? "" : "s"}` +
      (captions ? `, ${captions} caption${captions === 1 ? "" : "s"}` : "")
    : "no pictures yet";
  learnEl("clear").hidden = files.length === 0;
}

function learnError(message, field = null) {
  learnEl("error").textContent = message;
  if (field) learnEl("error").dataset.field = field; else delete learnEl("error").dataset.field;
}

async function train(event) {
  event.preventDefault();
  learnError("");
  const form = new FormData();
  for (const file of learn.files.values()) form.append("pictures", file, file.name);
  form.append("token", learnEl("token").value.trim());
  form.append("method", learnEl("method").value);
  for (const [name, id] of [["steps", "steps"], ["rank", "rank"], ["class_prompt", "class"]]) {
    const value = learnEl(id).value.trim();
    if (value) form.append(name, value);
  }
  learnEl("train").disabled = true;
  try {
    const response = await fetch("/api/finetune", { method: "POST", body: form, credentials: "same-origin" });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const loc = Array.isArray(data.detail) && data.detail[0] && data.detail[0].loc;
      const field = Array.isArray(loc) ? loc.filter((part) => part !== "body")[0] : null;
      learnError(data.error || `${response.status} ${response.statusText}`, field ? String(field) : null);
      learnEl("train").disabled = false;
      return;
    }
    followTraining(data);
  } catch (err) {
    learnError(err.message);
    learnEl("train").disabled = false;
  }
}

function followTraining(job) {
  learn.job = job.id;
  learn.done = null;
  learnEl("cancel").disabled = false;
  learnEl("try").hidden = true;
  learnEl("progress").value = 0;
  learnEl("sample").hidden = true;
  learnEl("status").textContent = job.status === "queued" ? `queued (${job.position} ahead)` : job.status;
  if (learn.events) learn.events.close();
  const events = new EventSource(`/api/jobs/${job.id}/events`);
  learn.events = events;
  events.addEventListener("status", (e) => {
    const data = JSON.parse(e.data);
    learnEl("status").textContent = data.status === "queued" ? `queued (${data.position} ahead)`
      : data.status === "running" ? "running: preparing the pictures" : data.status;
  });
  events.addEventListener("progress", (e) => {
    const data = JSON.parse(e.data);
    learnEl("progress").value = data.fraction;
    if (!data.step) return;
    const left = typeof data.eta_s === "number" ? `, about ${Math.round(data.eta_s)} s left` : "";
    const loss = typeof data.loss === "number" ? `, loss ${data.loss.toFixed(4)}` : "";
    learnEl("status").textContent = `training: step ${data.step}/${data.steps}${loss}${left}`;
    if (data.preview) { learnEl("sample").src = data.preview; learnEl("sample").hidden = false; }
  });
  events.addEventListener("done", (e) => {
    const data = JSON.parse(e.data);
    events.close();
    learn.events = null;
    learn.job = null;
    learnEl("cancel").disabled = true;
    learnEl("train").disabled = false;
    if (data.status === "succeeded") {
      learn.done = data.info;
      learnEl("progress").value = 1;
      learnEl("status").textContent = `done: ${data.info.kind === "embedding" ? "embedding" : "LoRA"} ` +
        `${data.info.name} (${data.info.steps} steps, ${data.info.seconds} s)`;
      learnEl("try").hidden = false;
    } else {
      const why = data.error && data.error !== data.status ? `: ${data.error}` : "";
      learnEl("status").textContent = `${data.status}${why}`;
    }
  });
}

async function cancelTraining() {
  if (!learn.job) return;
  learnEl("cancel").disabled = true;
  const response = await fetch(`/api/jobs/${learn.job}`, { method: "DELETE", credentials: "same-origin" });
  if (!response.ok) learnError((await response.json().catch(() => ({}))).error || response.statusText);
}

// The new word in the keywords and the new file picked and added (app.js's pickers, listed anew).
async function tryIt() {
  const info = learn.done;
  if (!info) return;
  const embedding = info.kind === "embedding";
  const picker = document.getElementById(embedding ? "embedding" : "lora");
  if (![...picker.options].some((option) => option.value === info.name)) {
    picker.append(new Option(info.name, info.name));
    picker.options[0].textContent = embedding ? "choose an embedding" : "choose a LoRA";
  }
  picker.value = info.name;
  if (embedding) {
    addEmbedding();  // adds its word to the keywords too
  } else {
    addLora();
    if (!state.chips.positive.some((chip) => chip.text.toLowerCase() === info.token.toLowerCase())) {
      addKeywords("positive", info.token);
    }
  }
  document.getElementById("form").scrollIntoView({ block: "start", behavior: "smooth" });
}

async function setupLearn() {
  const drop = learnEl("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addLearnFiles(event.dataTransfer.files);
  });
  learnEl("files").addEventListener("change", (event) => { addLearnFiles(event.target.files); event.target.value = ""; });
  learnEl("clear").addEventListener("click", () => { learn.files.clear(); renderLearnFiles(); });
  learnEl("form").addEventListener("submit", train);
  learnEl("cancel").addEventListener("click", cancelTraining);
  learnEl("try").addEventListener("click", tryIt);
  learnEl("form").addEventListener("input", (event) => {
    const field = learnEl("error").dataset.field;
    const ids = { token: "token", method: "method", steps: "steps", rank: "rank", class_prompt: "class" };
    if (field && ids[field] && event.target === learnEl(ids[field])) learnError("");
  });
  const response = await fetch("/api/finetune", { credentials: "same-origin" });
  if (!response.ok) { learnEl("section").hidden = true; return; }
  const options = await response.json();
  for (const method of options.methods) learnEl("method").append(new Option(method, method));
  learnEl("method").value = options.default_method;
  learnEl("steps").value = options.default_steps;
  learnEl("steps").max = options.max_steps;
  learnEl("rank").value = options.default_rank;
  if (options.unavailable) {
    learnError(options.unavailable);
    learnEl("train").disabled = true;
  }
  learnEl("section").dataset.ready = "true";
}

setupLearn().catch((err) => learnError(err.message));

// keypaint's "How it works" tab: pick a view, press Show, the figure from POST /api/explain/{view} appears.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ABOUT = {
    schedules: "How much noise each step adds (beta_t), how much of the picture is left (alpha_bar_t) and the " +
      "signal-to-noise ratio, for DDPM's linear, SD's scaled-linear and the cosine schedule, and this model's.",
    forward: "A picture from your keywords, noised in one go: x_t = sqrt(alpha_bar_t) x_0 + " +
      "sqrt(1 - alpha_bar_t) eps, in latent space (top) and decoded (bottom).",
    reverse: "A generation recorded step by step: the decoded x_t, the model's guess of the clean picture " +
      "x_0, and the noise it predicts.",
    compare: "The same starting noise through several samplers at several step counts.",
    guidance: "The same seed at several classifier-free guidance scales (1 = off).",
    attention: "Cross-attention per keyword, summed over steps and layers, over the picture.",
    latent: "The picture through the VAE: encoded to the latent the U-Net works in, decoded back, and what got lost.",
  };
  let figureUrl = null;
  // the input each field of a 422 comes from: its message goes once that input changes
  const FIELDS = {
    keywords: "explain-keywords", seed: "explain-seed", steps: "explain-steps", guidance_scale: "explain-cfg",
    width: "explain-size", height: "explain-size", size: "explain-size", sampler: "explain-sampler",
    timesteps: "explain-timesteps", samplers: "explain-samplers", step_counts: "explain-step-counts",
    scales: "explain-scales", attention_keywords: "explain-attention",
  };

  const list = (id) => $(id).value.split(",").map((s) => s.trim()).filter((s) => s);
  const numbers = (id) => list(id).map(Number);
  const value = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));

  function showTab(explain) {
    $("paint-tab").hidden = explain;
    $("explain-tab").hidden = !explain;
    $("tab-paint").setAttribute("aria-selected", String(!explain));
    $("tab-explain").setAttribute("aria-selected", String(explain));
  }

  function showFields() {
    const view = $("explain-view").value;
    for (const block of document.querySelectorAll("#explain-form [data-for]")) {
      block.hidden = !block.dataset.for.split(" ").includes(view);
    }
    $("explain-about").textContent = ABOUT[view];
  }

  function body(view) {
    const data = {
      keywords: list("explain-keywords"), seed: value("explain-seed"), steps: value("explain-steps"),
      guidance_scale: value("explain-cfg"),
    };
    if ($("explain-sampler").value) data.sampler = $("explain-sampler").value;
    const size = value("explain-size");
    if (size) { data.width = size; data.height = size; }
    if (view === "forward") data.timesteps = numbers("explain-timesteps");
    if (view === "compare") { data.samplers = list("explain-samplers"); data.step_counts = numbers("explain-step-counts"); }
    if (view === "guidance") data.scales = numbers("explain-scales");
    if (view === "attention") data.attention_keywords = list("explain-attention");
    if (view === "reverse") data.animation = $("explain-animation").checked;
    for (const key of Object.keys(data)) if (data[key] === null) delete data[key];
    return view === "schedules" ? {} : data;
  }

  async function show(event) {
    event.preventDefault();
    const view = $("explain-view").value;
    $("explain-error").textContent = "";
    $("explain-status").textContent = "working...";
    $("explain-show").disabled = true;
    try {
      const response = await fetch(`/api/explain/${view}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
        body: JSON.stringify(body(view)),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        const error = new Error(data.error || (typeof data.detail === "string" && data.detail) ||
                                `${response.status} ${response.statusText}`);
        const loc = Array.isArray(data.detail) && data.detail[0] && data.detail[0].loc;
        error.field = Array.isArray(loc) ? loc.filter((part) => part !== "body")[0] : undefined;
        throw error;
      }
      const blob = await response.blob();
      if (figureUrl) URL.revokeObjectURL(figureUrl);
      figureUrl = URL.createObjectURL(blob);
      const img = $("explain-figure");
      img.dataset.loaded = "false";
      img.onload = () => { img.dataset.loaded = "true"; };
      img.src = figureUrl;
      img.hidden = false;
      $("explain-enlarge").hidden = false;
      $("explain-enlarge-hint").hidden = false;
      $("explain-caption").textContent = response.headers.get("X-Keypaint-Caption") || "";
      $("explain-status").textContent = "done";
    } catch (err) {
      $("explain-error").textContent = err.message;
      $("explain-error").dataset.field = err.field === undefined ? "" : String(err.field);
      $("explain-status").textContent = "";
    } finally {
      $("explain-show").disabled = false;
    }
  }

  // ---- the figure enlarged: a lightbox that fits it to the window, or shows it at its actual size ----
  function setActualSize(actual) {
    $("lightbox").classList.toggle("actual", actual);
    $("lightbox-size").textContent = actual ? "Fit to window" : "Actual size";
    $("lightbox-size").setAttribute("aria-pressed", String(actual));
  }

  function enlarge() {
    const img = $("explain-figure");
    if (img.hidden || !img.src) return;
    $("lightbox-image").style.setProperty("--ratio", String(img.naturalWidth / img.naturalHeight || 1));
    $("lightbox-image").src = img.src;
    $("lightbox-image").alt = $("explain-caption").textContent || "explain figure";
    setActualSize(false);
    $("lightbox").showModal();
  }

  async function start() {
    $("explain-enlarge").addEventListener("click", enlarge);
    $("lightbox-size").addEventListener("click", () => setActualSize(!$("lightbox").classList.contains("actual")));
    $("lightbox-image").addEventListener("click", () => setActualSize(!$("lightbox").classList.contains("actual")));
    $("lightbox-close").addEventListener("click", () => $("lightbox").close());
    $("lightbox").addEventListener("click", (event) => {  // a click on the backdrop closes it
      if (event.target === $("lightbox")) $("lightbox").close();
    });
    $("tab-paint").addEventListener("click", () => showTab(false));
    $("tab-explain").addEventListener("click", () => showTab(true));
    $("explain-view").addEventListener("change", showFields);
    $("explain-view").addEventListener("change", () => { $("explain-error").textContent = ""; });
    $("explain-form").addEventListener("input", (event) => {  // the field the message names is being fixed
      const id = FIELDS[$("explain-error").dataset.field];
      if (id && event.target.id === id) $("explain-error").textContent = "";
    });
    $("explain-form").addEventListener("submit", show);
    showFields();
    const response = await fetch("/api/info", { credentials: "same-origin" });
    if (!response.ok) return;
    const info = await response.json();
    for (const name of info.samplers) $("explain-sampler").append(new Option(name, name));
    $("explain-sampler").value = info.default_sampler;
    $("explain-size").placeholder = info.native_size;
  }

  start().catch((err) => { $("explain-error").textContent = err.message; });
})();

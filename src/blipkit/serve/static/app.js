// blipkit's page: caption, tags and questions for a dropped image; text search over the index.
// Plain JS, same-origin calls to the /v1 API; the API key (when the server wants one) stays in this tab.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "blipkit-api-key";
let info = null;
let currentFile = null;

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function authHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("key-section").hidden = false;
    throw new Error("This server needs an API key: enter it above.");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const err = body && body.error ? body.error : { code: "http_" + response.status, message: response.statusText };
    throw new Error(err.message + " (" + err.code + ")");
  }
  return body;
}

function imageForm(extra = {}) {
  const form = new FormData();
  form.append("images", currentFile, currentFile.name || "image");
  for (const [name, value] of Object.entries(extra)) {
    for (const v of [].concat(value)) form.append(name, v);
  }
  return form;
}

function percent(x) {
  return Math.round(x * 100) + "%";
}

// --- server info ------------------------------------------------------------------------------

async function loadInfo() {
  try {
    info = await api("/v1/info");
  } catch (e) {
    $("server-status").textContent = e.message;
    return;
  }
  $("key-section").hidden = !info.auth || Boolean(apiKey());
  const model = info.model ? "Model: " + info.model : "The model is loading…";
  const index = info.search ? " · index of " + info.index_size + " images" : "";
  $("server-status").textContent = model + index;
  $("search-section").hidden = !info.search;
  if (!info.model) setTimeout(loadInfo, 2000);
}

// --- describe ---------------------------------------------------------------------------------

async function describe(file) {
  if (!file || !file.type.startsWith("image/")) {
    showError("That is not an image file.");
    return;
  }
  showError("");
  currentFile = file;
  const preview = $("preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.alt = "The image you chose: " + (file.name || "image");
  $("preview-box").hidden = false;
  $("ask-form").hidden = !(info && info.endpoints.includes("ask"));
  $("tags-block").hidden = !(info && info.endpoints.includes("tag"));
  $("answers").replaceChildren();
  $("caption").textContent = "Writing a caption…";
  $("tags").replaceChildren();

  const caption = api("/v1/caption", { method: "POST", body: imageForm() })
    .then((body) => {
      const r = body.results[0];
      $("caption").textContent = r.caption + " ";
      const conf = document.createElement("span");
      conf.className = "muted small";
      conf.textContent = "(confidence " + percent(r.confidence) + ")";
      $("caption").append(conf);
      preview.alt = r.caption;
    })
    .catch((e) => {
      $("caption").textContent = "";
      showError(e.message);
    });
  const tags = info && info.endpoints.includes("tag")
    ? api("/v1/tag", { method: "POST", body: imageForm({ top_k: 8 }) })
      .then((body) => renderTags(body.results[0].tags))
      .catch((e) => showError(e.message))
    : Promise.resolve();
  await Promise.all([caption, tags]);
}

function renderTags(tags) {
  const list = $("tags");
  list.replaceChildren(...tags.map((t) => {
    const li = document.createElement("li");
    li.textContent = t.tag;
    li.title = "score " + t.score.toFixed(3);
    return li;
  }));
}

async function ask(event) {
  event.preventDefault();
  if (!currentFile) return;
  const question = $("question").value.trim();
  if (!question) return;
  const choices = $("choices").value.split(",").map((c) => c.trim()).filter(Boolean);
  const extra = { question };
  if (choices.length) extra.choices = choices;
  showError("");
  const item = document.createElement("li");
  item.textContent = question + " — thinking…";
  $("answers").prepend(item);
  try {
    const body = await api("/v1/ask", { method: "POST", body: imageForm(extra) });
    const r = body.results[0];
    item.textContent = "";
    const q = document.createElement("span");
    q.className = "q";
    q.textContent = question;
    const a = document.createElement("strong");
    a.textContent = r.answer;
    const c = document.createElement("span");
    c.className = "muted small";
    c.textContent = " (" + percent(r.confidence) + ")";
    item.append(q, " ", a, c);
  } catch (e) {
    item.remove();
    showError(e.message);
  }
}

// --- search -----------------------------------------------------------------------------------

async function search(event) {
  event.preventDefault();
  const q = $("query").value.trim();
  if (!q) return;
  showError("");
  const status = $("search-status");
  status.textContent = "Searching…";
  const results = $("results");
  let body;
  try {
    body = await api("/v1/search?" + new URLSearchParams({ q, limit: 24 }));
  } catch (e) {
    status.textContent = "";
    showError(e.message);
    return;
  }
  for (const img of results.querySelectorAll("img")) {
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  }
  results.replaceChildren(...body.results.map(resultCard));
  status.textContent = body.results.length
    ? body.results.length + " results for “" + body.query + "”"
    : "No results for “" + body.query + "”";
}

function resultCard(hit) {
  const li = document.createElement("li");
  const figure = document.createElement("figure");
  const link = document.createElement("a");
  link.href = hit.image_url;
  link.target = "_blank";
  link.rel = "noopener";
  const img = document.createElement("img");
  img.alt = hit.caption || "Image without a caption";
  img.loading = "lazy";
  img.width = 256;
  img.height = 256;
  setImage(img, hit.thumbnail_url);
  link.append(img);
  const caption = document.createElement("figcaption");
  caption.textContent = hit.caption || "";
  const score = document.createElement("span");
  score.className = "muted small score";
  score.textContent = hit.score.toFixed(3);
  caption.append(" ", score);
  figure.append(link, caption);
  li.append(figure);
  return li;
}

function setImage(img, url) {
  // An <img src> cannot send the API key header: with a key, fetch the bytes and show a blob.
  if (!apiKey()) {
    img.src = url;
    return;
  }
  fetch(url, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
    .then((blob) => { img.src = URL.createObjectURL(blob); })
    .catch(() => { img.alt += " (thumbnail unavailable)"; });
}

// --- wiring -----------------------------------------------------------------------------------

function wire() {
  const drop = $("drop");
  const file = $("file");
  file.addEventListener("change", () => describe(file.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) describe(e.dataTransfer.files[0]);
  });
  // Keyboard users reach the (visually hidden, still focusable) file input itself: one tab stop, and
  // Enter or Space opens the picker natively; the drop zone shows its focus ring.
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData || {}).files || []].find((f) => f.type.startsWith("image/"));
    if (item) describe(item);
  });
  $("ask-form").addEventListener("submit", ask);
  $("search-form").addEventListener("submit", search);
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    $("api-key").value = "";
    showError("");
    loadInfo();
  });
  loadInfo();
}

wire();

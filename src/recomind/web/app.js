// The RecoMind web page: a viewer's feed with Watch / Like / Skip, trending, and the
// operator's live stats. Plain ES module, no build step, talks only to the API that serves it.

// The page is served at <api>/ui/, so the API is one level up (this also works behind a prefix).
const API = new URL("../", document.baseURI);
const FEED_LIMIT = 20;
const TRENDING_LIMIT = 10;
const REFRESH_DELAY_MS = 1200; // actions are applied by a consumer, within about a second
const RECHECK_DELAY_MS = 1000;
const MAX_RECHECKS = 3;
const STATS_EVERY_MS = 3000;
const ACTION_WORDS = { view: "Watched", like: "Liked", skip: "Skipped" };
const KEY_ITEM = "recomind.apiKey"; // sessionStorage: the key lives as long as the tab

const $ = (id) => document.getElementById(id);

const state = {
  viewer: "",
  acted: new Map(), // video_id -> Set of actions, for the current viewer
  feedSeq: 0,
  trendingSeq: 0,
  profileSeq: 0,
  refreshTimer: 0,
  rechecks: 0,
  note: "", // what the viewer last did, for the status line
  statsTimer: 0,
  statsSeq: 0,
};

// -- talking to the API -------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** fetch a path relative to the API root; problem+json errors become ApiError(detail). */
async function api(path, { method = "GET", json } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  const key = sessionStorage.getItem(KEY_ITEM);
  if (key) init.headers["X-API-Key"] = key;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(new URL(path, API), init);
  } catch (err) {
    throw new ApiError(`${method} /${path}: cannot reach the API (${err.message})`, 0);
  }
  const text = await response.text();
  let body = text;
  if ((response.headers.get("Content-Type") || "").includes("json") && text) {
    try {
      body = JSON.parse(text);
    } catch {
      // keep the raw text; it is still worth showing
    }
  }
  if (response.status === 401) askForKey(Boolean(key));
  if (!response.ok) {
    const detail =
      (body && typeof body === "object" && (body.detail || body.title)) ||
      `${response.status} ${response.statusText}`;
    const where = decodeURIComponent(path.split("?")[0]);
    throw new ApiError(`${method} /${where}: ${detail}`, response.status);
  }
  return { body, headers: response.headers };
}

/** The server wants an API key (or a different one): show the key form. */
function askForKey(hadKey) {
  const form = $("key-form");
  if (!form.hidden) return;
  if (hadKey) sessionStorage.removeItem(KEY_ITEM);
  form.hidden = false;
  $("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_ITEM, key);
  $("api-key").value = "";
  $("key-form").hidden = true;
  switchViewer(state.viewer || freshViewerId());
  showView(currentView());
}

// -- messages ---------------------------------------------------------------------------

function showError(err) {
  const text = err instanceof Error ? err.message : String(err);
  const box = $("error-text");
  const lines = box.textContent ? box.textContent.split("\n") : [];
  if (!lines.includes(text)) lines.push(text);
  box.textContent = lines.slice(-3).join("\n");
  $("error").hidden = false;
}

function clearErrors() {
  $("error-text").textContent = "";
  $("error").hidden = true;
}

function say(text) {
  $("status").textContent = text;
}

// -- cards --------------------------------------------------------------------------------

function card(item) {
  const li = $("card-template").content.firstElementChild.cloneNode(true);
  li.dataset.videoId = item.video_id;
  li.querySelector(".title").textContent = item.title;
  const tags = li.querySelector(".tags");
  for (const tag of item.tags) {
    const chip = document.createElement("li");
    chip.textContent = `#${tag}`;
    tags.append(chip);
  }
  const reason = li.querySelector(".reason");
  if (item.reason) reason.textContent = item.reason;
  else reason.remove();
  for (const button of li.querySelectorAll("button[data-action]")) {
    button.setAttribute("aria-label", `${button.textContent}: ${item.title}`);
  }
  markActed(li);
  return li;
}

function markActed(li) {
  const actions = state.acted.get(li.dataset.videoId);
  if (!actions) return;
  li.dataset.acted = [...actions].join(" ");
  li.classList.add("acted");
  li.querySelector(".acted-mark").textContent = [...actions]
    .map((a) => `${ACTION_WORDS[a]} ✓`)
    .join(" · ");
  for (const button of li.querySelectorAll("button[data-action]")) {
    const done = actions.has(button.dataset.action);
    button.setAttribute("aria-pressed", String(done));
    button.disabled = done;
  }
}

function renderCards(list, items) {
  const fragment = document.createDocumentFragment();
  for (const item of items) fragment.append(card(item));
  if (!items.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "Nothing to show yet.";
    fragment.append(empty);
  }
  list.replaceChildren(fragment);
  list.dataset.renderCount = String(Number(list.dataset.renderCount) + 1);
  list.setAttribute("aria-busy", "false");
}

// -- the viewer's page --------------------------------------------------------------------

const explain = () => $("explain").checked;

async function loadFeed() {
  const seq = ++state.feedSeq;
  const list = $("feed");
  list.setAttribute("aria-busy", "true");
  try {
    const viewer = encodeURIComponent(state.viewer);
    const { body, headers } = await api(
      `recommendations/${viewer}?limit=${FEED_LIMIT}&explain=${explain()}`,
    );
    if (seq !== state.feedSeq) return; // a newer request has answered or will
    renderCards(list, body);
    $("feed-source").textContent = headers.get("X-Feed-Source") || "";
    // A video the viewer acted on is still listed: the consumer has not applied it yet.
    const stillListed = body.some((item) => state.acted.has(item.video_id));
    if (stillListed && state.rechecks < MAX_RECHECKS) {
      state.rechecks += 1;
      scheduleRefresh(RECHECK_DELAY_MS);
    }
    if (state.note) {
      const outcome = !stillListed
        ? "feed updated."
        : state.refreshTimer
          ? "waiting for it to be applied…"
          : "the API has not applied it yet.";
      say(`${state.note}; ${outcome}`);
    }
  } catch (err) {
    if (seq !== state.feedSeq) return;
    renderCards(list, []);
    $("feed-source").textContent = "";
    showError(err);
  }
}

async function loadTrending() {
  const seq = ++state.trendingSeq;
  const list = $("trending");
  list.setAttribute("aria-busy", "true");
  try {
    const { body } = await api(`trending?limit=${TRENDING_LIMIT}&explain=${explain()}`);
    if (seq === state.trendingSeq) renderCards(list, body);
  } catch (err) {
    if (seq !== state.trendingSeq) return;
    renderCards(list, []);
    showError(err);
  }
}

async function loadProfile() {
  const seq = ++state.profileSeq;
  const profile = $("profile");
  const viewer = state.viewer;
  try {
    const { body } = await api(`users/${encodeURIComponent(viewer)}`);
    if (seq !== state.profileSeq) return;
    profile.dataset.state = "known";
    const label = document.createElement("strong");
    label.textContent = body.name ? `${body.name} (${viewer})` : viewer;
    const tags = document.createElement("ul");
    tags.className = "tags";
    tags.id = "top-tags";
    for (const tag of body.top_tags) {
      const chip = document.createElement("li");
      chip.textContent = `#${tag}`;
      tags.append(chip);
    }
    const rest = body.top_tags.length ? " · top tags " : " · no top tags yet";
    profile.replaceChildren(label, rest, tags);
  } catch (err) {
    if (seq !== state.profileSeq) return;
    if (err.status === 404) {
      // A viewer RecoMind has never seen: normal, their feed is trending until they act.
      profile.dataset.state = "new";
      const label = document.createElement("strong");
      label.textContent = viewer;
      profile.replaceChildren(label, " · new viewer: the feed is trending until you act");
    } else {
      profile.dataset.state = "error";
      profile.textContent = `${viewer}: profile unavailable`;
      showError(err);
    }
  }
}

function refreshViewer() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = 0;
  return Promise.all([loadFeed(), loadTrending(), loadProfile()]);
}

function scheduleRefresh(delay) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refreshViewer, delay);
}

function switchViewer(id) {
  state.viewer = id;
  state.acted = new Map();
  state.rechecks = 0;
  $("viewer-id").value = id;
  const url = new URL(location.href);
  url.searchParams.set("viewer", id);
  history.replaceState(null, "", url);
  state.note = "";
  clearErrors();
  say("");
  return refreshViewer();
}

function freshViewerId() {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function act(button) {
  const li = button.closest("[data-video-id]");
  const videoId = li.dataset.videoId;
  const action = button.dataset.action;
  const title = li.querySelector(".title").textContent;
  const viewer = state.viewer;
  button.disabled = true;
  try {
    await api("video_action", {
      method: "POST",
      json: { user_id: viewer, video_id: videoId, action_type: action },
    });
  } catch (err) {
    button.disabled = false;
    showError(err);
    return;
  }
  if (viewer !== state.viewer) return;
  if (!state.acted.has(videoId)) state.acted.set(videoId, new Set());
  state.acted.get(videoId).add(action);
  for (const same of document.querySelectorAll(".cards [data-video-id]")) {
    if (same.dataset.videoId === videoId) markActed(same);
  }
  state.note = `${ACTION_WORDS[action]} “${title}”`;
  say(`${state.note}; updating the feed…`);
  state.rechecks = 0;
  scheduleRefresh(REFRESH_DELAY_MS);
}

// -- the operator's panel ------------------------------------------------------------------

const seconds = (s) => (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);
const number = (n) => (typeof n === "number" ? n.toLocaleString() : String(n ?? "–"));

function fillPairs(dl, pairs) {
  const nodes = [];
  for (const [key, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = key.replaceAll("_", " ");
    const dd = document.createElement("dd");
    dd.dataset.key = key;
    dd.textContent = number(value);
    nodes.push(dt, dd);
  }
  dl.replaceChildren(...nodes);
}

function renderStats(stats) {
  const model = stats.model;
  $("model-version").textContent = model ? model.version : "none yet: retrain to make one";
  $("model-trained").textContent = model
    ? `${number(model.actions)} actions · ${number(model.users)} viewers · ` +
      `${number(model.videos)} videos · fit in ${seconds(model.fit_seconds)}`
    : "–";
  $("model-saved").textContent = model?.saved_at
    ? new Date(model.saved_at).toLocaleString()
    : "–";
  const versions = stats.model_versions || [];
  $("model-versions").textContent = versions.length
    ? `${versions.length}: ${versions.slice(-5).join(", ")}`
    : "–";

  fillPairs($("counts"), [
    ...Object.entries(stats.counts || {}),
    ["lake_actions", stats.lake_actions],
  ]);

  const rows = Object.entries(stats.consumers || {}).map(([group, c]) => {
    const tr = document.createElement("tr");
    tr.dataset.group = group;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = group;
    tr.append(th);
    for (const key of ["lag", "processed", "dead_lettered", "errors"]) {
      const td = document.createElement("td");
      td.dataset.key = key;
      td.textContent = number(c[key]);
      if (key !== "processed" && c[key] > 0) td.className = "warn";
      tr.append(td);
    }
    return tr;
  });
  $("consumers").replaceChildren(...rows);
  $("dlq-topic").textContent = stats.dead_letter_topic || "–";

  const sources = Object.entries(stats.feed_sources || {});
  fillPairs($("feed-sources"), sources.length ? sources : [["none served yet", ""]]);
  $("refresh-policy").textContent = stats.refresh_policy || "–";
  $("feeds-refreshed").textContent = number(stats.feeds_refreshed);
}

async function loadStats() {
  const seq = ++state.statsSeq;
  try {
    const { body } = await api("admin/stats");
    if (seq !== state.statsSeq) return; // an older poll answering late
    renderStats(body);
    $("stats-error").hidden = true;
    $("stats-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (seq !== state.statsSeq) return;
    $("stats-error").textContent = `Could not load the stats: ${err.message}`;
    $("stats-error").hidden = false;
  }
}

function pollStats(on) {
  clearInterval(state.statsTimer);
  state.statsTimer = 0;
  if (!on) return;
  loadStats();
  state.statsTimer = setInterval(loadStats, STATS_EVERY_MS);
}

async function retrain() {
  const button = $("retrain");
  const result = $("retrain-result");
  button.disabled = true;
  button.textContent = "Retraining…";
  result.className = "";
  result.textContent = "";
  try {
    const { body: r } = await api("admin/retrain", { method: "POST" });
    result.textContent =
      `Trained ${r.version}: ${number(r.actions)} actions, ${number(r.users)} viewers, ` +
      `${number(r.videos)} videos, fit in ${seconds(r.fit_seconds)}; ` +
      `${number(r.precomputed)} lists precomputed in ${seconds(r.precompute_seconds)}`;
    await loadStats();
  } catch (err) {
    result.className = "error-inline";
    result.textContent = `Retrain failed: ${err.message}`;
  } finally {
    button.disabled = false;
    button.textContent = "Retrain now";
  }
}

// -- views and wiring -----------------------------------------------------------------------

function showView(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  pollStats(name === "operator" && !document.hidden);
}

const currentView = () => (location.hash === "#operator" ? "operator" : "viewer");

function wire() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      history.replaceState(null, "", `#${tab.dataset.view}`);
      showView(tab.dataset.view);
    });
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  }
  window.addEventListener("hashchange", () => showView(currentView()));
  document.addEventListener("visibilitychange", () => showView(currentView()));

  $("viewer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("viewer-id").value.trim();
    if (id) switchViewer(id); // the API checks the id and its error is shown
  });
  $("viewer-new").addEventListener("click", () => switchViewer(freshViewerId()));
  $("explain").addEventListener("change", () => {
    loadFeed();
    loadTrending();
  });
  for (const list of [$("feed"), $("trending")]) {
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) act(button);
    });
  }
  $("error-dismiss").addEventListener("click", clearErrors);
  $("key-form").addEventListener("submit", useKey);
  $("retrain").addEventListener("click", retrain);
}

wire();
showView(currentView());
switchViewer(new URLSearchParams(location.search).get("viewer") || freshViewerId());

// The playground: plain JavaScript, no build step, nothing fetched but this service's own routes.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const POS = "#2166ac", NEG = "#d6604d"; // as --pos and --neg in style.css

function svgEl(name, attrs = {}, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function addTitle(el, text) {
  el.appendChild(svgEl("title", {}, text));
  return el;
}

// API key (when the service requires one, API_KEYS): kept in this browser only, sent as a Bearer token.
const KEY_STORE = "lstm-api-key";

function authHeaders(extra = {}) {
  const key = localStorage.getItem(KEY_STORE);
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

function setupKey() {
  const input = $("api-key");
  input.value = localStorage.getItem(KEY_STORE) || "";
  input.addEventListener("change", () => {
    const key = input.value.trim();
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
    loadPairs();
  });
}

async function postJSON(path, body) {
  const r = await fetch(path, { method: "POST", headers: authHeaders({ "content-type": "application/json" }), body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function showError(id, err) {
  const el = $(id);
  el.textContent = err ? String(err.message || err) : "";
  el.hidden = !err;
}

async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// A playground form's submit: POST `body` to `path` while the form's button is busy, then `show` the one result
// in the form's result panel, or the error under the form. The elements are `${form}-run`, `-result`, `-error`.
async function submitForm(event, form, path, body, show) {
  event.preventDefault();
  const result = $(`${form}-result`);
  await busy($(`${form}-run`), async () => {
    try {
      const [r] = await postJSON(path, body);
      showError(`${form}-error`, null);
      show(r);
      result.hidden = false;
      result.dataset.state = "done";
    } catch (err) {
      showError(`${form}-error`, err);
    }
  });
}

const fmt = (v, d = 3) => (v >= 0 ? "+" : "") + v.toFixed(d);

// ---------------------------------------------------------------- sentiment

// Both numbers in the API are about the predicted label; the page shows them towards "positive".
function towardsPositive(expl) {
  const sign = expl.label === "positive" ? 1 : -1;
  return {
    occlusion: expl.occlusion.map((v) => sign * v),
    trajectory: expl.trajectory.map((v) => (sign > 0 ? v : 1 - v)),
  };
}

function heat(v, scale) {
  const a = scale > 0 ? Math.min(1, Math.abs(v) / scale) : 0;
  const rgb = v >= 0 ? "33, 102, 172" : "214, 96, 77";
  return `rgba(${rgb}, ${(0.08 + 0.72 * a).toFixed(3)})`;
}

function highlight(i, on) {
  for (const el of document.querySelectorAll(`[data-token="${i}"]`)) el.classList.toggle("active", on);
}

function renderTokens(expl, pos) {
  const box = $("tokens");
  box.replaceChildren();
  const scale = Math.max(0, ...pos.occlusion.map(Math.abs));
  expl.tokens.forEach((tok, i) => {
    const span = document.createElement("span");
    span.className = "tok" + (expl.in_vocabulary[i] ? "" : " unknown");
    span.textContent = tok;
    span.tabIndex = 0;
    span.dataset.token = String(i);
    span.style.background = heat(pos.occlusion[i], scale);
    const note = `${tok}: occlusion ${fmt(expl.occlusion[i])} for ${expl.label}; P(positive) after it ${pos.trajectory[i].toFixed(3)}` +
      (expl.in_vocabulary[i] ? "" : " (unknown word)");
    span.title = note;
    span.setAttribute("aria-label", note);
    span.addEventListener("mouseenter", () => highlight(i, true));
    span.addEventListener("mouseleave", () => highlight(i, false));
    span.addEventListener("focus", () => highlight(i, true));
    span.addEventListener("blur", () => highlight(i, false));
    box.append(span, " ");
  });
}

function renderTrajectory(tokens, values) {
  const n = values.length;
  const W = 640, H = 240, L = 44, R = 12, T = 10, B = 70;
  const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (p) => T + (1 - p) * (H - T - B);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `P(positive) after each of ${n} tokens` });
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y(p), y2: y(p), class: p === 0.5 ? "half" : "axis", "stroke-opacity": p === 0.5 ? 1 : 0.35 }));
    svg.appendChild(svgEl("text", { x: L - 6, y: y(p) + 4, "text-anchor": "end" }, p.toFixed(2)));
  }
  svg.appendChild(svgEl("text", { x: 12, y: y(0.5), transform: `rotate(-90 12 ${y(0.5)})`, "text-anchor": "middle" }, "P(positive)"));
  const d = values.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p).toFixed(1)}`).join(" ");
  svg.appendChild(svgEl("path", { d, class: "line" }));
  const every = Math.max(1, Math.ceil(n / 40));
  values.forEach((p, i) => {
    const dot = svgEl("circle", { cx: x(i), cy: y(p), r: n > 60 ? 3 : 4.5, class: "dot", fill: p >= 0.5 ? POS : NEG, "data-token": i });
    addTitle(dot, `after "${tokens[i]}": P(positive) ${p.toFixed(3)}`);
    dot.addEventListener("mouseenter", () => highlight(i, true));
    dot.addEventListener("mouseleave", () => highlight(i, false));
    svg.appendChild(dot);
    if (i % every === 0) {
      const tx = x(i), ty = H - B + 12;
      const label = tokens[i].length > 14 ? tokens[i].slice(0, 13) + "…" : tokens[i];
      svg.appendChild(svgEl("text", { x: tx, y: ty, transform: `rotate(-45 ${tx} ${ty})`, "text-anchor": "end" }, label));
    }
  });
  $("trajectory").replaceChildren(svg);
}

function renderSentimentTable(expl) {
  const body = $("sentiment-table").tBodies[0];
  body.replaceChildren();
  expl.tokens.forEach((tok, i) => {
    const tr = document.createElement("tr");
    for (const v of [String(i + 1), tok, fmt(expl.occlusion[i], 4), expl.trajectory[i].toFixed(4)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  });
}

function runSentiment(event) {
  return submitForm(event, "sentiment", "../sentiment", { texts: [$("sentiment-text").value], explain: true }, (r) => {
    const expl = r.explanation;
    const pos = towardsPositive(expl);
    $("sentiment-label").textContent = r.label;
    $("sentiment-label").className = `badge ${r.label}`;
    $("sentiment-confidence").textContent = `confidence ${(100 * r.confidence).toFixed(1)}%`;
    renderTokens(expl, pos);
    renderTrajectory(expl.tokens, pos.trajectory);
    renderSentimentTable(expl);
  });
}

// ---------------------------------------------------------------- translation

const LANG_NAMES = { de: "German", fr: "French", en: "English" };

function showPiece(p) {
  if (p.startsWith("\u2581")) return p.slice(1) || "\u2581";
  if (p === "</s>" || /^<0x[0-9A-F]{2}>$/.test(p)) return p;
  return "\u00b7" + p; // continues the previous subword
}

function renderHeatmap(al) {
  const src = al.source_tokens.map(showPiece), tgt = al.target_tokens.map(showPiece);
  const S = src.length, Tn = tgt.length;
  const longest = (xs) => Math.max(...xs.map((s) => Math.min(s.length, 14)));
  const cell = Math.max(14, Math.min(34, Math.floor(560 / Math.max(S, 1))));
  const left = 14 + 7 * longest(tgt), top = 14 + 6 * longest(src);
  const W = left + S * cell + 8, H = top + Tn * cell + 8;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `attention of ${Tn} target subwords over ${S} source subwords`, style: `max-width:${Math.max(W, 320)}px` });
  src.forEach((s, i) => {
    const tx = left + i * cell + cell / 2, ty = top - 6;
    svg.appendChild(addTitle(svgEl("text", { x: tx, y: ty, transform: `rotate(-55 ${tx} ${ty})`, "text-anchor": "start" }, s), al.source_tokens[i]));
  });
  tgt.forEach((t, j) => {
    svg.appendChild(addTitle(svgEl("text", { x: left - 6, y: top + j * cell + cell / 2 + 4, "text-anchor": "end" }, t), al.target_tokens[j]));
    al.weights[j].forEach((w, i) => {
      const rect = svgEl("rect", {
        x: left + i * cell, y: top + j * cell, width: cell - 1, height: cell - 1, class: "cell",
        fill: POS, "fill-opacity": (0.03 + 0.97 * w).toFixed(3),
      });
      addTitle(rect, `${al.target_tokens[j]} \u2190 ${al.source_tokens[i]}: ${w.toFixed(3)}`);
      svg.appendChild(rect);
    });
  });
  $("heatmap").replaceChildren(svg);
}

function runTranslate(event) {
  const target = $("target").value;
  const body = { texts: [$("translate-text").value], source: "en", target, beam_size: Number($("beam").value), alignment: true };
  return submitForm(event, "translate", "../translate", body, (r) => {
    $("translation").textContent = r.translation;
    $("translation").lang = target;
    renderHeatmap(r.alignment);
  });
}

async function loadPairs() {
  try {
    const r = await fetch("../models", { headers: authHeaders() });
    const { models } = await r.json();
    const pairs = models.flatMap((m) => m.pairs || []).filter((p) => p.source === "en");
    if (!pairs.length) return;
    const select = $("target");
    select.replaceChildren(...pairs.map((p) => new Option(LANG_NAMES[p.target] || p.target, p.target)));
  } catch {
    // keep the built-in choices
  }
}

// ---------------------------------------------------------------- live stats from /metrics

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

function total(samples, name, where = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

let previous = null;

async function pollMetrics() {
  if (document.hidden) return;
  try {
    const r = await fetch("../metrics", { cache: "no-store", headers: authHeaders() });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = parseMetrics(await r.text());
    const now = performance.now();
    const sent = total(s, "bentoml_service_request_total", { endpoint: "/sentiment" });
    const trans = total(s, "bentoml_service_request_total", { endpoint: "/translate" });
    $("stat-sentiment-requests").textContent = sent.toLocaleString("en");
    $("stat-translate-requests").textContent = trans.toLocaleString("en");
    if (previous) {
      const dt = (now - previous.t) / 1000;
      $("stat-rate").textContent = (Math.max(0, sent + trans - previous.n) / dt).toFixed(1);
    }
    previous = { t: now, n: sent + trans };
    $("stat-in-flight").textContent = String(
      total(s, "bentoml_service_request_in_progress", { endpoint: "/sentiment" }) + total(s, "bentoml_service_request_in_progress", { endpoint: "/translate" }),
    );
    const per = (name, model) => {
      const c = total(s, `${name}_count`, { model });
      return c ? total(s, `${name}_sum`, { model }) / c : null;
    };
    const batch = (model) => {
      const t = per("lstm_inference_seconds", model), n = per("lstm_batch_items", model);
      const ms = 1000 * t;
      return t === null ? "–" : `${ms.toFixed(ms < 10 ? 1 : 0)} ms · ${n.toFixed(1)} texts`;
    };
    const model = (task) => (s.find((x) => x.name === "lstm_model_info" && x.labels.task === task) || { labels: {} }).labels.model;
    $("stat-sentiment-batch").textContent = batch(model("sentiment"));
    $("stat-translate-batch").textContent = batch(model("translation"));
    const label = (l) => total(s, "lstm_predictions_total", { label: l }).toLocaleString("en");
    $("stat-predictions").textContent = `${label("negative")} neg · ${label("positive")} pos`;
    $("stat-rejected").textContent = total(s, "lstm_rejected_requests_total").toLocaleString("en");
    $("stats-updated").textContent = `from /metrics, updated ${new Date().toLocaleTimeString("en-GB")}`;
    $("stats").dataset.state = "live";
  } catch (err) {
    $("stats-updated").textContent = `metrics unavailable (${err.message})`;
    $("stats").dataset.state = "error";
  }
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("sentiment-form").addEventListener("submit", runSentiment);
  $("translate-form").addEventListener("submit", runTranslate);
  $("sentiment-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("sentiment-form").requestSubmit();
  });
  for (const b of document.querySelectorAll("button.example")) {
    b.addEventListener("click", () => {
      $("sentiment-text").value = b.dataset.text;
      $("sentiment-form").requestSubmit();
    });
  }
  setupKey();
  loadPairs();
  pollMetrics();
  setInterval(pollMetrics, 2000);
});

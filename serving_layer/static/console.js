// The headwater console: polls console/status, draws the update-rate chart, builds a form per operation
// of openapi.json. Every URL is relative to the page's <base>, so the context path needs no code here.
"use strict";

const TOKEN_KEY = "headwater.token";

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) { h.Authorization = "Bearer " + token; }
  return h;
}

function notice(text) {
  const p = document.getElementById("notice");
  p.hidden = !text;
  p.textContent = text || "";
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => {
    if (k === "text") { node.textContent = v; } else { node.setAttribute(k, v); }
  });
  (children || []).forEach(c => node.appendChild(c));
  return node;
}

function fillList(dl, entries) {
  dl.replaceChildren();
  entries.forEach(([name, value]) => {
    dl.appendChild(el("dt", {text: name}));
    dl.appendChild(el("dd", {text: value === null || value === undefined ? "—" : String(value)}));
  });
}

function number(value) {
  if (value === undefined || value === null) { return "—"; }
  return typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toPrecision(4)) : value;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) { return "no update yet"; }
  if (seconds < 60) { return seconds.toFixed(1) + " s"; }
  if (seconds < 3600) { return (seconds / 60).toFixed(1) + " min"; }
  return (seconds / 3600).toFixed(1) + " h";
}

function drawRate(svg, rate) {
  const series = rate.series;
  const width = 600, height = 120, top = 12, bottom = 16;
  const max = Math.max(1, ...series.map(s => s[1]));
  const step = width / series.length;
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  series.forEach(([, count], i) => {
    const h = (height - top - bottom) * count / max;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", String(i * step + 1));
    bar.setAttribute("y", String(height - bottom - h));
    bar.setAttribute("width", String(Math.max(step - 2, 1)));
    bar.setAttribute("height", String(h));
    bar.appendChild(document.createElementNS(ns, "title")).textContent = count + " updates";
    svg.appendChild(bar);
  });
  const label = (x, y, text, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", String(x)); t.setAttribute("y", String(y));
    t.setAttribute("text-anchor", anchor); t.textContent = text;
    svg.appendChild(t);
  };
  label(2, 10, "max " + max, "start");
  label(2, height - 3, "−" + (series.length * rate.bucket_sec / 60) + " min", "start");
  label(width - 2, height - 3, "now", "end");
}

function showPrequential(prequential) {
  const table = document.getElementById("prequential");
  const events = document.getElementById("prequential-events");
  table.hidden = events.hidden = !prequential;
  document.getElementById("prequential-none").hidden = !!prequential;
  if (!prequential) { return; }
  const body = table.querySelector("tbody");
  body.replaceChildren();
  Object.entries(prequential.figures).forEach(([figure, byModel]) => {
    body.appendChild(el("tr", {}, [el("th", {text: figure.replace(/_/g, " ")}),
                                   el("td", {text: number(byModel.live)}),
                                   el("td", {text: number(byModel.champion)})]));
  });
  events.textContent = prequential.events + " events scored before they were learned";
}

function rows(table, data) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...data.map(cells => el("tr", {}, cells.map(c => el("td", {text: String(c)})))));
}

function showRollout(rollout) {
  if (!rollout) { return; }
  rows(document.getElementById("versions"), rollout.loaded.map(v =>
    [v.version, v.role, v.memory_bytes ? (v.memory_bytes / 1e6).toFixed(1) + " MB" : "—"]));
  const shadow = Object.entries(rollout.shadow_measures).map(([k, v]) => k + " " + number(v)).join(", ");
  document.getElementById("split").textContent = "challenger share " + rollout.challenger_percent + " %" +
    (rollout.shadow ? " · shadow on" + (shadow ? ": " + shadow : "") : "");
  const drift = [];
  Object.entries(rollout.drift).forEach(([version, report]) => report.features.forEach(f =>
    drift.push([version + (report.alarm ? " ALARM" : ""), f.name, number(f.score), number(f.p_adjusted)])));
  rows(document.getElementById("drift"), drift);
  document.getElementById("drift-none").hidden = drift.length > 0;
  rows(document.getElementById("history"), rollout.history.slice().reverse().map(m =>
    [m.time, m.alias, (m.previous === "none" ? "—" : "v" + m.previous) + " → v" + m.version,
     m.decision + " (" + m.cause + "): " + m.reason]));
}

async function refresh() {
  let answer;
  try {
    answer = await fetch("console/status", {headers: headers({Accept: "application/json"})});
  } catch (e) {
    notice("The serving layer does not answer: " + e);
    return;
  }
  if (answer.status === 401) {
    notice("This serving layer needs a token: type a read or write token above.");
    return;
  }
  const status = await answer.json();
  notice(answer.ok ? "" : status.message);
  if (!answer.ok) { return; }
  const ready = document.getElementById("ready");
  ready.textContent = status.ready ? "ready" : "not ready: " + status.reason;
  ready.className = "badge " + (status.ready ? "ok" : "bad");
  const model = status.model || {};
  fillList(document.getElementById("model"), [
    ["version", model.version], ["aliases", (model.aliases || []).join(", ") || (model.registry || "—")],
    ["layer", model.layer], ["data version", model.data_version], ["base version", model.base_version],
    ["registered", model.registered_at ? new Date(model.registered_at * 1000).toLocaleString() : null],
  ]);
  document.getElementById("freshness").textContent = ago(status.freshness_sec);
  document.getElementById("updates").textContent = status.updates_applied;
  showPrequential(status.prequential);
  showRollout(status.rollout);
  const evaluation = Object.entries(model.evaluation || {});
  fillList(document.getElementById("evaluation"), evaluation.map(([k, v]) => [k, number(v)]));
  document.getElementById("evaluation-title").hidden = evaluation.length === 0;
  drawRate(document.getElementById("rate"), status.update_rate);
}

function endpointForm(path, method, op) {
  const params = op.parameters || [];
  const inputs = params.map(p => {
    const input = el("input", {name: p.name, "data-in": p.in,
                               placeholder: p.schema && p.schema.default !== undefined ? String(p.schema.default) : ""});
    return el("label", {text: p.name + (p.in === "path" ? "" : " (" + p.in + ")")}, [input]);
  });
  let body = null;
  if (op.requestBody) {
    const example = Object.values(op.requestBody.content)[0].example || "";
    body = el("textarea", {rows: "3", name: "body", placeholder: example});
    inputs.push(el("label", {text: "body"}, [body]));
  }
  const output = el("pre", {hidden: ""});
  const state = el("span", {"class": "status"});
  const form = el("form", {"class": "endpoint", "data-path": path, "data-method": method}, [
    el("h3", {}, [el("span", {"class": "method " + method, text: method.toUpperCase()}),
                  document.createTextNode(path)]),
    el("p", {text: op.summary || ""}), ...inputs,
    el("button", {type: "submit", text: "send"}), state, output]);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    let url = path.replace(/^\//, "");
    const query = new URLSearchParams();
    const extra = {Accept: "application/json"};
    form.querySelectorAll("input").forEach(input => {
      const where = input.getAttribute("data-in");
      if (where === "path") {
        url = url.replace("{" + input.name + "}", input.value.split("/").map(encodeURIComponent).join("/"));
      } else if (input.value !== "" && where === "query") {
        query.append(input.name, input.value);
      } else if (input.value !== "" && where === "header") {
        extra[input.name] = input.value;
      }
    });
    const init = {method: method.toUpperCase(), headers: headers(extra)};
    if (body) { init.body = body.value; init.headers["Content-Type"] = "text/plain"; }
    const started = performance.now();
    const answer = await fetch(url + (query.toString() ? "?" + query : ""), init);
    const text = await answer.text();
    state.textContent = answer.status + " · " + Math.round(performance.now() - started) + " ms";
    output.hidden = false;
    try { output.textContent = JSON.stringify(JSON.parse(text), null, 1); } catch (e) { output.textContent = text; }
  });
  return form;
}

async function buildForms() {
  const answer = await fetch("openapi.json", {headers: headers({Accept: "application/json"})});
  if (!answer.ok) { return false; }
  const spec = await answer.json();
  const box = document.getElementById("endpoints");
  box.replaceChildren();
  Object.entries(spec.paths).forEach(([path, methods]) => {
    if (path.startsWith("/console") || path === "/openapi.json") { return; }
    Object.entries(methods).forEach(([method, op]) => box.appendChild(endpointForm(path, method, op)));
  });
  return true;
}

let formsBuilt = false;
async function tick() {
  await refresh();
  if (!formsBuilt) { formsBuilt = await buildForms(); }
}

document.getElementById("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
document.getElementById("token-form").addEventListener("submit", event => {
  event.preventDefault();
  const value = document.getElementById("token").value.trim();
  if (value) { sessionStorage.setItem(TOKEN_KEY, value); } else { sessionStorage.removeItem(TOKEN_KEY); }
  formsBuilt = false;
  tick();
});
tick();
setInterval(tick, 2000);

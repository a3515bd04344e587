// flowkit ui: the runs list and the run page. Every user string goes into the page as
// text (textContent, never innerHTML); the one exception is artifact markdown, which the
// server has rendered from escaped text into a fixed set of tags.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LEVELS = { 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL" };
const STATES = ["Completed", "Cached", "Failed", "TimedOut", "Crashed", "Cancelled",
                "Running", "Pending", "Scheduled", "Paused"];
let stream = null;   // the open EventSource, if any
let refresh = null;  // what a change in the store redraws

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function clock(t) {
  const d = new Date(t * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function when(t) {
  const d = new Date(t * 1000);
  return d.toLocaleDateString() + " " + d.toLocaleTimeString([], { hour12: false });
}
function seconds(x) {
  if (x === null || x === undefined) return "–";
  return x < 1 ? `${Math.round(x * 1000)} ms` : x < 120 ? `${x.toFixed(2)} s` : `${Math.floor(x / 60)} min ${Math.round(x % 60)} s`;
}
function badge(run) {
  return h("span", { class: `state s-${run.state_type} n-${run.state_name}`, title: run.state_message || "" }, run.state_name);
}

// A change in the store redraws the page, at most once a second.
function watch(url) {
  if (stream) stream.close();
  stream = new EventSource(url);
  let last = 0, timer = null;
  const live = document.getElementById("live");
  stream.addEventListener("hello", () => { live.hidden = false; });
  stream.onerror = () => { live.hidden = true; };
  stream.addEventListener("change", () => {
    if (timer) return;
    const wait = Math.max(0, 1000 - (Date.now() - last));
    timer = setTimeout(() => { timer = null; last = Date.now(); if (refresh) refresh(); }, wait);
  });
}

// The list of runs.

function listParams() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query);
}

async function showList() {
  const params = listParams();
  const main = document.getElementById("main");
  const flows = (await api("/api/flows")).flows;
  const field = (label, input) => h("label", {}, label, input);
  const form = h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
      location.hash = "#/?" + next.toString();
    } },
    field("Flow", h("select", { name: "flow" }, h("option", { value: "" }, "any"),
      flows.map((f) => h("option", { value: f, selected: params.get("flow") === f }, f)))),
    field("State", h("select", { name: "state" }, h("option", { value: "" }, "any"),
      STATES.map((st) => h("option", { value: st, selected: params.get("state") === st }, st)))),
    field("Tag", h("input", { name: "tag", value: params.get("tag") || "", size: 10 })),
    field("Run name", h("input", { name: "q", type: "search", value: params.get("q") || "", placeholder: "search", size: 16 })),
    field("Since", h("input", { name: "since", type: "datetime-local", value: params.get("since") || "" })),
    field("Until", h("input", { name: "until", type: "datetime-local", value: params.get("until") || "" })),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", onclick: () => { location.hash = "#/"; } }, "Clear"));
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  main.replaceChildren(h("h1", {}, "Flow runs"), form,
    h("div", { class: "card" }, h("table", { class: "runs" },
      h("thead", {}, h("tr", {}, ["Run", "Flow", "State", "Started", "Duration", "Task runs", "Tags"].map((c) => h("th", {}, c)))),
      body)), pager);
  const draw = async () => {
    const query = new URLSearchParams(params);
    const page = await api("/api/runs?" + query.toString());
    body.replaceChildren(...page.runs.map(runRow));
    if (!page.runs.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "quiet" }, "No runs match.")));
    pager.replaceChildren(
      h("button", { disabled: !params.get("before"), onclick: () => history.back() }, "← Newer"),
      h("button", { class: "older", disabled: !page.next, onclick: () => {
        const next = new URLSearchParams(params); next.set("before", page.next);
        location.hash = "#/?" + next.toString();
      } }, "Older →"));
  };
  refresh = draw;
  watch("/api/events");
  await draw();
}

function runRow(run) {
  const counts = h("div", { class: "counts" },
    Object.entries(run.counts).map(([name, n]) => h("span", {}, `${n} ${name}`)));
  const progress = run.state_type === "RUNNING" || run.state_type === "PENDING"
    ? h("div", { class: "progress", title: `${run.finished}/${run.total} task runs finished`, role: "progressbar",
        "aria-valuenow": run.finished, "aria-valuemax": run.total },
        bar(run.total ? run.finished / run.total : 0))
    : null;
  return h("tr", { "data-run": run.id },
    h("td", {}, h("a", { href: `#/run/${encodeURIComponent(run.id)}` }, run.name)),
    h("td", {}, run.flow), h("td", {}, badge(run)), h("td", {}, when(run.created)),
    h("td", { class: "num" }, seconds(run.duration)),
    h("td", {}, progress, counts, progress ? h("span", { class: "note" }, `${run.finished}/${run.total}`) : null),
    h("td", {}, run.tags.map((t) => h("span", { class: "tag" }, t))));
}

function bar(fraction) {
  const inner = h("div");
  inner.style.width = `${Math.round(fraction * 100)}%`;
  return inner;
}

// The page of one run.

async function showRun(id) {
  const main = document.getElementById("main");
  let selected = id;
  let level = 0;
  const draw = async () => {
    let data;
    try { data = await api(`/api/runs/${encodeURIComponent(id)}`); }
    catch (err) { main.replaceChildren(h("h1", {}, "Run not found"), h("p", { class: "error" }, err.message), h("a", { href: "#/" }, "All runs")); return; }
    const byId = new Map(data.runs.map((r) => [r.id, r]));
    const root = byId.get(data.root_id);
    if (!byId.has(selected)) selected = root.id;
    const pick = (runId) => { selected = runId; render(); };
    const render = () => {
      const run = byId.get(selected);
      const logs = h("tbody");
      const drawLogs = () => logs.replaceChildren(...data.logs.filter((l) => l.level >= level).map((l) =>
        h("tr", { class: `lv-${l.level}` }, h("td", {}, clock(l.timestamp)), h("td", {}, LEVELS[l.level] || l.level),
          h("td", {}, l.label), h("td", { class: "msg" }, l.message))));
      drawLogs();
      main.replaceChildren(
        h("p", {}, h("a", { href: "#/" }, "← All runs")),
        h("h1", {}, root.name, " ", badge(root)),
        h("div", { class: "facts" },
          h("span", {}, "flow ", h("b", {}, root.flow)),
          h("span", {}, "started ", h("b", {}, when(root.created))),
          h("span", {}, "duration ", h("b", {}, seconds(root.duration))),
          h("span", {}, "task runs ", h("b", {}, String(data.runs.length - 1))),
          root.tags.length ? h("span", {}, "tags ", root.tags.map((t) => h("span", { class: "tag" }, t))) : ""),
        root.error && root.state_type !== "COMPLETED" ? h("p", { class: "error" }, root.error) : "",
        h("h2", {}, "Timeline"), h("div", { class: "card timeline" }, timeline(data, pick)),
        h("div", { class: "cols" },
          h("section", {}, h("h2", {}, "Runs"), h("div", { class: "card" }, tree(data.runs, root, selected, pick))),
          h("section", { class: "detail" }, h("h2", {}, `${run.kind === "flow" ? "Flow" : "Task"} run ${run.name}`),
            h("div", { class: "card" }, detail(run, byId, pick)))),
        h("h2", {}, "Upstream links"), h("div", { class: "card" }, graph(data.runs, pick)),
        data.artifacts.length ? h("section", {}, h("h2", {}, "Artifacts"),
          h("div", { class: "artifacts" }, data.artifacts.map((a) => artifact(a, byId)))) : "",
        data.transactions.length ? h("section", {}, h("h2", {}, "Transactions"),
          h("div", { class: "card" }, h("table", { class: "transactions" },
            h("tbody", {}, data.transactions.map((t) => transaction(t, byId)))))) : "",
        h("h2", {}, "Logs"),
        h("div", { class: "card" },
          h("label", {}, "Level at least ", h("select", { class: "level", onchange: (e) => { level = Number(e.target.value); drawLogs(); } },
            [0, 10, 20, 30, 40].map((v) => h("option", { value: v, selected: v === level }, v ? LEVELS[v] : "any")))),
          h("table", { class: "logs" }, logs)));
    };
    render();
  };
  refresh = draw;
  await draw();
  watch(`/api/events?run=${encodeURIComponent(id)}`);
}

function tree(runs, root, selected, pick) {
  const children = new Map();
  for (const r of runs) if (r.parent_id) (children.get(r.parent_id) || children.set(r.parent_id, []).get(r.parent_id)).push(r);
  const item = (r) => h("li", { "data-run": r.name },
    h("button", { class: r.id === selected ? "selected" : "", onclick: () => pick(r.id) }, r.name),
    " ", badge(r), " ", h("span", { class: "note" }, seconds(r.duration), r.run_count > 1 ? ` · ${r.run_count} attempts` : "",
      r.worker ? h("span", { class: "worker" }, ` · ran in ${r.worker}`) : null),
    (children.get(r.id) || []).length ? h("ul", {}, children.get(r.id).map(item)) : null);
  return h("ul", { class: "tree" }, item(root));
}

function detail(run, byId, pick) {
  const rows = [];
  const fact = (name, ...value) => rows.push(h("tr", {}, h("th", {}, name), h("td", {}, value)));
  fact("State", badge(run), run.state_message ? ` ${run.state_message}` : "");
  fact("Definition", `${run.kind} ${run.flow}`);
  fact("Attempts", String(run.run_count));
  if (run.worker) fact("Ran in", h("span", { class: "worker" }, run.worker));
  fact("Duration", seconds(run.duration));
  if (run.cache) fact("Cache", run.cache);
  if (run.result !== null) fact("Result", h("code", { class: "result" }, run.result));
  if (run.result_location) {
    fact(run.result === null && run.state_type === "COMPLETED" ? "Result (not kept in memory)" : "Result persisted at",
      h("code", { class: "result-location" }, run.result_location));
  }
  for (const [name, value] of Object.entries(run.parameters)) fact(`Parameter ${name}`, h("code", {}, value));
  for (const [name, ids] of Object.entries(run.task_inputs)) {
    fact(`Input ${name}`, ids.map((i) => byId.get(i)
      ? h("button", { class: "link", onclick: () => pick(i) }, byId.get(i).name) : i.slice(0, 8)));
  }
  return [
    h("table", {}, rows),
    run.error && run.state_type !== "COMPLETED" ? h("p", { class: "error" }, run.error) : null,
    run.traceback ? h("pre", { class: "traceback" }, run.traceback) : null,
    h("h2", {}, "State history"),
    h("table", { class: "states" }, run.states.map((st) =>
      h("tr", {}, h("td", {}, clock(st.timestamp)), h("td", {}, h("span", { class: `state s-${st.type} n-${st.name}` }, st.name)),
        h("td", {}, st.message || ""), h("td", { class: "worker" }, st.worker ? `ran in ${st.worker}` : "")))),
  ];
}

// One row per run under the root; one bar per attempt; dashed lines for waits.
function timeline(data, pick) {
  const runs = data.runs.filter((r) => r.id !== data.root_id);
  const root = data.runs.find((r) => r.id === data.root_id);
  if (!runs.length) return h("p", { class: "quiet" }, "No task runs yet.");
  const t0 = root.created;
  const ends = data.runs.flatMap((r) => [r.end || data.now, ...r.attempts.map((a) => a.end)]);
  const span = Math.max(Math.max(...ends) - t0, 0.001);
  const label = 150, width = 900, row = 20, top = 22;
  const x = (t) => label + ((t - t0) / span) * (width - label - 10);
  const svg = s("svg", { viewBox: `0 0 ${width} ${top + runs.length * row + 4}`, width: "100%", class: "gantt", role: "img" },
    s("title", {}, "Task runs over time"));
  const axis = s("g", { class: "axis" });
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (span * i) / 5;
    axis.append(s("line", { x1: x(t), x2: x(t), y1: 14, y2: top + runs.length * row }),
      s("text", { x: x(t), y: 10, "text-anchor": i === 5 ? "end" : "middle" }, seconds(t - t0)));
  }
  svg.append(axis);
  runs.forEach((r, i) => {
    const y = top + i * row;
    const g = s("g", { class: "row", "data-run": r.name });
    g.addEventListener("click", () => pick(r.id));
    g.append(s("text", { x: 0, y: y + 13 }, r.name.length > 22 ? r.name.slice(0, 21) + "…" : r.name));
    for (const w of r.waits) {
      g.append(s("line", { class: `wait wait-${w.kind}`, x1: x(w.start), x2: Math.max(x(w.end), x(w.start) + 1), y1: y + 9, y2: y + 9 },
        s("title", {}, `${w.kind === "Pending" ? "waiting to start" : "waiting to retry"}: ${seconds(w.end - w.start)}`)));
    }
    r.attempts.forEach((a, n) => {
      // A sync body may wait for a worker thread after its attempt began: that wait is
      // the start of the attempt, drawn dashed, and the bar begins when the body did.
      let x1 = x(a.start);
      const ready = Math.min(a.start + (a.thread_wait || 0), a.end);
      if (x(ready) - x1 >= 1) {
        g.append(s("line", { class: "wait wait-thread", "data-attempt": n + 1, x1, x2: x(ready), y1: y + 9, y2: y + 9 },
          s("title", {}, `${r.name} attempt ${n + 1}: waiting for a worker thread: ${seconds(a.thread_wait)}`)));
        x1 = x(ready);
      }
      const w = Math.max(x(a.end) - x1, 3);
      g.append(s("rect", { class: `bar b-${a.state_type} bn-${a.state_name}`, x: x1, y: y + 3, width: w, height: row - 7,
        "data-attempt": n + 1, "data-start": a.start, "data-end": a.end, "data-outcome": a.state_name },
        s("title", {}, `${r.name} attempt ${n + 1}: ${a.state_name}, ${seconds(a.end - a.start)}` +
          `${a.worker ? ", ran in " + a.worker : ""}${a.message ? " – " + a.message : ""}`)));
    });
    svg.append(g);
  });
  const legend = h("div", { class: "legend" },
    [["Completed", "completed"], ["Cached", "cached"], ["Failed", "failed"], ["TimedOut", "timedout"],
     ["Retried", "scheduled"], ["Running", "running"], ["Crashed", "crashed"], ["Cancelled", "cancelled"]].map(([name, colour]) => {
      const swatch = h("i"); swatch.style.background = `var(--${colour})`;
      return h("span", {}, swatch, name);
    }), h("span", {}, "dashed: waiting to start, for a worker thread, or to retry"));
  return [svg, legend];
}

// Upstream links (task_inputs) as a left-to-right graph: a run sits one column right of
// its furthest upstream.
function graph(runs, pick) {
  const byId = new Map(runs.map((r) => [r.id, r]));
  const edges = [];
  for (const r of runs) for (const ids of Object.values(r.task_inputs)) for (const i of ids) if (byId.has(i)) edges.push([i, r.id]);
  if (!edges.length) return h("p", { class: "quiet" }, "No task run took another's result.");
  const linked = runs.filter((r) => edges.some(([a, b]) => a === r.id || b === r.id));
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const ups = edges.filter(([, b]) => b === id).map(([a]) => depthOf(a, seen) + 1);
    const d = ups.length ? Math.max(...ups) : 0;
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const r of linked) (columns[depthOf(r.id)] ||= []).push(r);
  const w = 150, gap = 50, rh = 34;
  const place = new Map();
  columns.forEach((col, c) => col.forEach((r, i) => place.set(r.id, [10 + c * (w + gap), 10 + i * rh])));
  const height = 20 + Math.max(...columns.map((c) => c.length)) * rh;
  const svg = s("svg", { viewBox: `0 0 ${20 + columns.length * (w + gap)} ${height}`, width: "100%", class: "graph", role: "img" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8d96aa" }))));
  for (const [a, b] of edges) {
    const [x1, y1] = place.get(a), [x2, y2] = place.get(b);
    svg.append(s("path", { class: "edge", "data-from": byId.get(a).name, "data-to": byId.get(b).name,
      d: `M${x1 + w},${y1 + 12} C${x1 + w + gap / 2},${y1 + 12} ${x2 - gap / 2},${y2 + 12} ${x2},${y2 + 12}` }));
  }
  for (const r of linked) {
    const [x0, y0] = place.get(r.id);
    const node = s("g", { class: "node", "data-run": r.name, transform: `translate(${x0},${y0})` },
      s("rect", { width: w, height: 24, class: `b-${r.state_type}` }),
      s("rect", { width: 6, height: 24, class: `bar b-${r.state_type} bn-${r.state_name}` }),
      s("text", { x: 12, y: 16 }, r.name.length > 20 ? r.name.slice(0, 19) + "…" : r.name));
    node.addEventListener("click", () => pick(r.id));
    svg.append(node);
  }
  return svg;
}

// The artifacts made outside any flow or task run: they have no run page of their own.
async function showArtifacts() {
  const main = document.getElementById("main");
  const list = h("div", { class: "artifacts" });
  main.replaceChildren(h("p", {}, h("a", { href: "#/" }, "← All runs")),
    h("h1", {}, "Artifacts made outside runs"), list);
  const draw = async () => {
    const found = (await api("/api/artifacts")).artifacts;
    list.replaceChildren(...found.map((a) => artifact(a, new Map())));
    if (!found.length) list.append(h("p", { class: "quiet" }, "None yet: artifacts made outside any flow or task run show here."));
  };
  refresh = draw;
  watch("/api/events");
  await draw();
}

function artifact(a, byId) {
  const run = byId.get(a.run_id);
  const owner = a.run_id === null ? "no run" : run ? run.name : "";
  const head = h("div", { class: "note" }, `${a.type}${a.key ? " " + a.key : ""} · ${owner} · ${clock(a.created)}`);
  let body;
  if (a.type === "progress") {
    body = h("div", { class: "artifact-progress" },
      h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": a.progress },
        bar(a.progress / 100)),
      h("span", { class: "note" }, `${a.progress}%`));
  } else if (a.type === "markdown") {
    body = h("div", { class: "md" });
    body.innerHTML = a.html;  // rendered by the server from escaped text: see ui/_markdown.py
  } else if (a.type === "table") {
    const cell = (v) => h("td", {}, v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));
    body = h("table", { class: "artifact-table" },
      a.table.columns ? h("thead", {}, h("tr", {}, a.table.columns.map((c) => h("th", {}, c)))) : null,
      h("tbody", {}, a.table.rows.map((r) => h("tr", {}, r.map(cell)))));
  } else {
    const text = a.link.link_text || a.link.link;
    body = /^(https?:|mailto:)/i.test(a.link.link)
      ? h("a", { href: a.link.link, rel: "noopener noreferrer" }, text) : h("span", {}, text, " (", a.link.link, ")");
  }
  let description = null;
  if (a.description_html) { description = h("div", { class: "md note" }); description.innerHTML = a.description_html; }
  return h("div", { class: "card artifact", "data-type": a.type }, head, description, body);
}

function transaction(t, byId) {
  const run = byId.get(t.run_id);
  const what = t.action === "commit" ? "committed" : "rolled back";
  const hooks = t.hooks.map((k) => h("li", { class: k.error ? "error" : "" },
    `${k.kind} hook ${k.hook}`, k.task_run ? ` (${k.task_run})` : "", k.error ? ` raised ${k.error}` : ""));
  return h("tr", { class: `txn-${t.action}`, "data-action": t.action },
    h("td", {}, clock(t.created)),
    h("td", {}, h("b", {}, what), t.key ? ` key ${t.key}` : "", t.task_run ? ` (transaction of ${t.task_run})` : ""),
    h("td", {}, run ? run.name : ""),
    h("td", {}, hooks.length ? h("ul", { class: "hooks" }, hooks) : "no hooks"));
}

async function route() {
  refresh = null;
  const hash = location.hash || "#/";
  const match = hash.match(/^#\/run\/([^?]+)/);
  try {
    if (match) await showRun(decodeURIComponent(match[1]));
    else if (hash.startsWith("#/artifacts")) await showArtifacts();
    else await showList();
  } catch (err) {
    document.getElementById("main").replaceChildren(h("p", { class: "error" }, String(err.message || err)));
  }
}

window.addEventListener("hashchange", route);
route();

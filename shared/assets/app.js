// grd dashboard: polls the JSON API and renders the map, tables and charts.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  // Local: every 2 s. A deployed stack's pipeline moves hourly and every poll reads its tables,
  // so there the page polls every 15 s.
  const POLL_MS = { local: 2000, aws: 15000 };
  const grd = (window.grd = { state: null, charts: {}, selectedNode: null, world: null });

  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v, d = 2) => (v == null || Number.isNaN(v) ? "-" : Number(v).toFixed(d));
  const hourLabel = (t) => (t ? String(t).slice(0, 13).replace("T", " ") + "h" : "-");
  const tokenInput = $("#token");
  tokenInput.value = localStorage.getItem("grd-token") || "";
  tokenInput.addEventListener("change", () => localStorage.setItem("grd-token", tokenInput.value));

  function say(text, isError) {
    const m = $("#message");
    m.textContent = text;
    m.className = "message" + (isError ? " error" : "");
    m.hidden = false;
    clearTimeout(say.t);
    say.t = setTimeout(() => (m.hidden = true), 6000);
  }

  function authHeaders() {
    return tokenInput.value ? { Authorization: "Bearer " + tokenInput.value } : {};
  }

  async function getJson(path) {
    const r = await fetch(path, { cache: "no-store", headers: authHeaders() });
    if (r.status === 401) say("this dashboard needs its token: enter it in the token field", true);
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }

  async function send(method, path, body) {
    const headers = authHeaders();
    if (body !== undefined && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const r = await fetch(path, { method, headers, body });
    let data = null;
    try { data = await r.json(); } catch (_) { /* no body */ }
    if (!r.ok) {
      say((data && data.error) || (method + " " + path + ": " + r.status), true);
      throw new Error("request failed");
    }
    return data;
  }

  // Green (cheap) to red (dear) across the current prices.
  function priceColour(p, lo, hi) {
    if (p == null) return "#9ca3af";
    const t = hi > lo ? Math.min(1, Math.max(0, (p - lo) / (hi - lo))) : 0.5;
    const stops = [[26, 152, 80], [254, 224, 139], [215, 48, 39]];
    const [a, b, u] = t < 0.5 ? [stops[0], stops[1], t * 2] : [stops[1], stops[2], (t - 0.5) * 2];
    const c = a.map((x, i) => Math.round(x + (b[i] - x) * u));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  // ---- map -------------------------------------------------------------
  const svg = $("#map-svg");
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  async function loadWorld() {
    try {
      const topo = await getJson("/vendor/countries-110m.json");
      grd.world = topojson.feature(topo, topo.objects.countries);
    } catch (e) {
      grd.world = { type: "FeatureCollection", features: [] };
    }
  }

  function drawMap(nodes) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 760, H = 380;
    const pts = { type: "MultiPoint", coordinates: nodes.map((n) => [n.lon, n.lat]) };
    const projection = d3.geoNaturalEarth1();
    if (nodes.length) projection.fitExtent([[60, 40], [W - 60, H - 40]], pts);
    if (nodes.length === 1) projection.scale(600).center([nodes[0].lon, nodes[0].lat]).translate([W / 2, H / 2]);
    const path = d3.geoPath(projection);
    el("path", { class: "graticule", d: path(d3.geoGraticule10()) }, svg);
    if (grd.world) el("path", { class: "land", d: path(grd.world) }, svg);
    const prices = nodes.map((n) => n.price && n.price.usd_per_chr).filter((p) => p != null);
    const lo = Math.min(...prices), hi = Math.max(...prices);
    // Boxes taken by marks and labels, so labels keep clear of both.
    const placed = nodes.map((n) => projection([n.lon, n.lat])).filter(Boolean)
      .map(([x, y]) => ({ x: x - 9, y: y + 4, w: 18 }));
    for (const n of nodes) {
      const xy = projection([n.lon, n.lat]);
      if (!xy) continue;
      const p = n.price ? n.price.usd_per_chr : null;
      const g = el("g", { class: "node-mark", "data-node": n.id }, svg);
      const r = 7 + Math.min(10, Math.sqrt(n.capacity_units) / 2);
      const c = el("circle", { class: "node" + (n.drained ? " drained" : ""), cx: xy[0], cy: xy[1], r, fill: priceColour(p, lo, hi), "data-node": n.id, "data-stale": n.stale }, g);
      const title = el("title", {}, c);
      title.textContent = `${n.id} ${n.name}\n$${fmt(p, 4)}/c-hr${n.stale ? " (stale)" : ""}${n.drained ? " (drained)" : ""}${n.what_if ? " (what-if price)" : ""}`;
      if (n.stale) el("circle", { class: "stale-ring", cx: xy[0], cy: xy[1], r: r + 4 }, g);
      const label = `${n.id} $${fmt(p, 3)}${n.stale ? " STALE" : ""}${n.what_if ? " WHAT-IF" : ""}`;
      const w = label.length * 6.2, x = xy[0] + r + 3;
      let y = xy[1] + 4;
      while (placed.some((b) => x < b.x + b.w && b.x < x + w && Math.abs(b.y - y) < 13 && !(b.x === xy[0] - 9 && b.y === xy[1] + 4))) y += 13;
      placed.push({ x, y, w });
      if (y !== xy[1] + 4) el("line", { x1: xy[0], y1: xy[1], x2: x - 2, y2: y - 4, stroke: "#6b7280", "stroke-width": 0.7 }, g);
      const t = el("text", { x, y }, g);
      t.textContent = label;
      c.addEventListener("click", () => selectNode(n.id));
    }
    $("#legend").innerHTML = prices.length
      ? `<span>$${fmt(lo, 3)}</span><span class="bar"></span><span>$${fmt(hi, 3)} per compute-hour</span>`
      : "<span>no current prices</span>";
  }

  // ---- tables ----------------------------------------------------------
  function drawNodes(nodes) {
    const rows = nodes.map((n) => {
      const p = n.price || {};
      const state = [n.drained ? '<span class="badge drained">drained</span>' : "in service",
        n.stale ? '<span class="badge stale">stale</span>' : "",
        n.what_if ? '<span class="badge whatif">what-if</span>' : ""].join(" ");
      const btn = n.drained
        ? `<button data-node-action="undrain" data-id="${esc(n.id)}">undrain</button>`
        : `<button data-node-action="drain" data-id="${esc(n.id)}">drain</button>`;
      return `<tr data-node="${esc(n.id)}" data-drained="${n.drained}" class="${n.id === grd.selectedNode ? "selected" : ""}">
        <td>${esc(n.id)}</td><td>${esc(n.region)}</td><td class="num">${fmt(p.usd_per_chr, 4)}</td>
        <td class="num">${fmt(p.energy_usd_per_mwh, 1)}</td><td class="num">${fmt(p.pue, 2)}</td>
        <td class="num">${n.reserved_units}/${p.capacity_units ?? n.capacity_units}</td><td>${state}</td><td>${btn}</td></tr>`;
    });
    $("#nodes tbody").innerHTML = rows.join("");
  }

  function actionsFor(j) {
    const b = (a, label) => `<button data-job-action="${a}" data-id="${esc(j.id)}">${label || a}</button>`;
    const out = [];
    if (j.status === "pending") out.push(b("hold"), b("priority"), b("cancel"));
    if (j.status === "held") out.push(b("release"), b("priority"), b("cancel"));
    if (j.status === "dispatched") out.push(b("complete"), b("cancel"));
    out.push(b("explain", "why?"));
    return out.join("");
  }

  function drawJobs(state) {
    const filter = $("#status-filter").value;
    const jobs = state.jobs.filter((j) => !filter || j.status === filter);
    $("#jobs-count").textContent = `${jobs.length} shown of ${state.jobs_total} jobs`;
    $("#jobs tbody").innerHTML = jobs.slice(0, 300).map((j) => `<tr data-job="${esc(j.id)}" data-status="${j.status}">
      <td>${esc(j.id)}</td><td class="num">${j.priority}</td><td class="num">${fmt(j.compute_hours, 1)}</td><td class="num">${j.units}</td>
      <td><span class="badge ${j.status}">${j.status}</span></td><td>${esc(j.node || "")}</td>
      <td class="num">${j.usd_per_chr == null ? "" : fmt(j.usd_per_chr, 4)}</td>
      <td>${j.start ? hourLabel(j.start) : ""}</td><td>${j.end ? hourLabel(j.end) : ""}</td>
      <td>${actionsFor(j)}</td></tr>`).join("");
    const s = state.summary;
    const chr = (k) => fmt(s.compute_hours[k] || 0, 1);
    $("#summary").innerHTML = `
      <div>pending c-hr<b id="sum-pending">${chr("pending")}</b></div>
      <div>held c-hr<b>${chr("held")}</b></div>
      <div>dispatched c-hr<b id="sum-dispatched">${chr("dispatched")}</b></div>
      <div>completed c-hr<b id="sum-completed">${chr("completed")}</b></div>
      <div>cost<b id="sum-cost">$${fmt(s.cost_usd, 2)}</b></div>
      <div>avg $/c-hr<b id="sum-avg">${fmt(s.usd_per_chr, 4)}</b></div>
      <div>jobs<b>${Object.entries(s.jobs).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ") || "none"}</b></div>`;
  }

  function drawOverrides(state) {
    $("#overrides tbody").innerHTML = state.overrides.map((o) => `<tr data-override="${o.id}">
      <td>${o.id}</td><td>${esc(o.node_id)}</td><td>${hourLabel(new Date(o.from * 3600e3).toISOString())}</td>
      <td>${hourLabel(new Date(o.to * 3600e3).toISOString())}</td><td class="num">${fmt(o.usd_per_mwh, 1)}</td>
      <td><button data-remove-override="${o.id}">remove</button></td></tr>`).join("");
    $("#whatif-banner").hidden = !state.what_if;
  }

  function fillNodeSelects(nodes) {
    for (const id of ["#series-node", "#ov-node"]) {
      const sel = $(id);
      const have = Array.from(sel.options).map((o) => o.value).join(",");
      const want = nodes.map((n) => n.id).join(",");
      if (have !== want) {
        const keep = sel.value;
        sel.innerHTML = nodes.map((n) => `<option>${esc(n.id)}</option>`).join("");
        if (keep) sel.value = keep;
      }
    }
    if (!grd.selectedNode && nodes.length) selectNode(nodes[0].id);
  }

  // ---- charts ----------------------------------------------------------
  const PALETTE = ["#2f6fd6", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f", "#92400e", "#334155"];

  function seriesChart() {
    if (grd.charts.series) return grd.charts.series;
    grd.charts.series = new Chart($("#series-chart"), {
      type: "line",
      data: { labels: [], datasets: [] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: {
          y: { position: "left", title: { display: true, text: "$/c-hr" } },
          y1: { position: "right", title: { display: true, text: "PUE" }, grid: { drawOnChartArea: false } },
          y2: { position: "right", title: { display: true, text: "capacity" }, grid: { drawOnChartArea: false } },
        },
        plugins: { legend: { labels: { boxWidth: 12 } } },
      },
    });
    return grd.charts.series;
  }

  async function drawSeries() {
    const id = grd.selectedNode;
    if (!id) return;
    const data = await getJson(`/api/nodes/${encodeURIComponent(id)}/series?back=48`);
    const pts = data.points;
    const labels = pts.map((p) => hourLabel(p.t));
    const hist = (f) => pts.map((p) => (p.forecast ? null : f(p)));
    const fc = (f) => pts.map((p, i) => (p.forecast || (pts[i + 1] && pts[i + 1].forecast) ? f(p) : null));
    const price = (p) => p.usd_per_chr, pue = (p) => p.pue, cap = (p) => p.capacity_units;
    const ch = seriesChart();
    ch.data.labels = labels;
    ch.data.datasets = [
      { label: "$/c-hr", data: hist(price), borderColor: PALETTE[0], pointRadius: 0, yAxisID: "y" },
      { label: "$/c-hr forecast", data: fc(price), borderColor: PALETTE[0], borderDash: [5, 4], pointRadius: 0, yAxisID: "y" },
      { label: "$/c-hr what-if", data: pts.map((p) => (p.market_usd_per_mwh != null ? p.usd_per_chr : null)), borderColor: "#f59e0b", backgroundColor: "#f59e0b", showLine: false, pointRadius: 3, yAxisID: "y" },
      { label: "PUE", data: hist(pue), borderColor: PALETTE[2], pointRadius: 0, yAxisID: "y1" },
      { label: "PUE forecast", data: fc(pue), borderColor: PALETTE[2], borderDash: [5, 4], pointRadius: 0, yAxisID: "y1" },
      { label: "capacity", data: hist(cap), borderColor: PALETTE[4], pointRadius: 0, stepped: true, yAxisID: "y2" },
      { label: "capacity forecast", data: fc(cap), borderColor: PALETTE[4], borderDash: [5, 4], pointRadius: 0, stepped: true, yAxisID: "y2" },
    ];
    ch.update();
  }

  async function drawLoad() {
    const hours = $("#load-hours").value;
    const data = await getJson(`/api/load?hours=${hours}`);
    if (!grd.charts.load) {
      grd.charts.load = new Chart($("#load-chart"), {
        type: "bar",
        data: { labels: [], datasets: [] },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "units reserved" } } },
          plugins: { legend: { labels: { boxWidth: 12 } } },
        },
      });
    }
    const ch = grd.charts.load;
    ch.data.labels = data.hours.map(hourLabel);
    ch.data.datasets = data.nodes.map((n, i) => ({ label: n.node, data: n.units, backgroundColor: PALETTE[i % PALETTE.length] }));
    ch.update();
  }

  async function drawExplanations() {
    const data = await getJson("/api/explanations?limit=12");
    $("#explanations tbody").innerHTML = data.explanations.map((e) => {
      const c = e.chosen || {}, r = e.runner_up || {};
      const h = (x) => (x == null ? "-" : hourLabel(new Date(x * 3600e3).toISOString()));
      return `<tr data-explain="${esc(e.job_id)}" title="${esc(e.summary)}"><td>${esc(e.job_id)}</td><td>${e.status}</td>
        <td>${esc(c.node_id || "")}</td><td>${h(c.start)}</td><td class="num">${fmt(c.cost_usd)}</td>
        <td>${esc(r.node_id || "none")}</td><td>${h(r.start)}</td><td class="num">${fmt(r.cost_usd)}</td>
        <td class="num">${fmt(e.saving_usd)}</td></tr>`;
    }).join("");
  }

  function selectNode(id) {
    grd.selectedNode = id;
    $("#series-node").value = id;
    document.querySelectorAll("#nodes tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.node === id));
    drawSeries().catch(() => {});
  }

  // ---- polling ---------------------------------------------------------
  let ticks = 0;
  async function refresh() {
    try {
      const state = await getJson("/api/state");
      grd.state = state;
      $("#clock").textContent = "clock " + hourLabel(state.clock);
      $("#speed-now").textContent = state.replay_speed == null ? "run's own speed" : `${state.replay_speed} h/s`;
      // A deployed stack's replay speed is a stack parameter: no control for it here.
      $("#speed-form").hidden = state.mode === "aws";
      drawMap(state.nodes);
      drawNodes(state.nodes);
      drawJobs(state);
      drawOverrides(state);
      fillNodeSelects(state.nodes);
      await Promise.all([drawLoad(), drawSeries(), ticks % 3 === 0 ? drawExplanations() : null]);
      ticks++;
      $("#live").textContent = "live · updated " + new Date().toLocaleTimeString();
      $("#live").className = "live";
      document.body.dataset.ready = "true";
    } catch (e) {
      $("#live").textContent = "disconnected: " + e.message;
      $("#live").className = "live down";
    }
  }

  // ---- controls --------------------------------------------------------
  document.addEventListener("click", async (ev) => {
    const t = ev.target;
    try {
      if (t.dataset.jobAction) {
        const id = t.dataset.id, a = t.dataset.jobAction;
        if (a === "explain") {
          const e = await getJson(`/api/jobs/${encodeURIComponent(id)}/explain`);
          const box = $("#explain-one");
          box.textContent = `${e.job_id} (${e.status}): ${e.summary}`;
          box.hidden = false;
          box.scrollIntoView({ block: "nearest" });
          return;
        }
        let body;
        if (a === "priority") {
          const n = prompt(`New priority for ${id} (0 most urgent .. 9)`);
          if (n === null) return;
          body = { priority: Number(n) };
        }
        const out = await send("POST", `/api/jobs/${encodeURIComponent(id)}/${a}`, body);
        say(`job ${out.job_id}: ${out.from} → ${out.to}` + (out.freed_unit_hours ? `, ${out.freed_unit_hours} unit-hours freed` : ""));
        await refresh();
      } else if (t.dataset.nodeAction) {
        const out = await send("POST", `/api/nodes/${encodeURIComponent(t.dataset.id)}/${t.dataset.nodeAction}`);
        say(`node ${out.node_id}: ${out.drained ? "drained" : "in service"}`);
        await refresh();
      } else if (t.dataset.removeOverride) {
        await send("DELETE", `/api/overrides/${t.dataset.removeOverride}`);
        say("override removed; the market price is back");
        await refresh();
      } else if (t.closest && t.closest("#nodes tbody tr") && t.tagName !== "BUTTON") {
        selectNode(t.closest("tr").dataset.node);
      }
    } catch (_) { /* reported by send */ }
  });

  $("#submit-btn").addEventListener("click", async () => {
    try {
      const r = await send("POST", "/api/jobs", $("#submit-lines").value);
      say(`${r.lines} lines: ${r.accepted} accepted, ${r.duplicates} duplicates, ${r.rejected} rejected`);
      await refresh();
    } catch (_) { /* reported */ }
  });
  $("#node-btn").addEventListener("click", async () => {
    try {
      const n = await send("POST", "/api/nodes", $("#node-json").value);
      say(`node ${n.id} saved`);
      await refresh();
    } catch (_) { /* reported */ }
  });
  $("#override-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const from = $("#ov-from").value.trim();
    try {
      const o = await send("POST", "/api/overrides", {
        node_id: $("#ov-node").value, from: from || null,
        hours: Number($("#ov-hours").value), usd_per_mwh: Number($("#ov-price").value),
      });
      say(`what-if override ${o.id} on ${o.node_id}: ${o.usd_per_mwh} USD/MWh`);
      await refresh();
    } catch (_) { /* reported */ }
  });
  $("#speed-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = $("#speed").value.trim();
    try {
      const r = await send("POST", "/api/speed", { hours_per_second: v === "" ? null : Number(v) });
      say(r.replay_speed == null ? "replay speed cleared: each run keeps its own --speed" : `replay speed ${r.replay_speed} simulated hours per second`);
      await refresh();
    } catch (_) { /* reported */ }
  });
  $("#series-node").addEventListener("change", (e) => selectNode(e.target.value));
  $("#status-filter").addEventListener("change", () => grd.state && drawJobs(grd.state));
  $("#load-hours").addEventListener("change", () => drawLoad().catch(() => {}));

  loadWorld().then(async () => {
    await refresh();
    try {
      const defs = await getJson("/api/nodes");
      if (defs.nodes.length && !$("#node-json").value) {
        const n = Object.assign({}, defs.nodes[0].node, { id: "new1", name: "New site" });
        $("#node-json").value = JSON.stringify(n);
      }
    } catch (_) { /* the template is a convenience */ }
    const pollMs = () => POLL_MS[grd.state && grd.state.mode] || POLL_MS.local;
    const poll = async () => {
      await refresh();
      setTimeout(poll, pollMs());
    };
    setTimeout(poll, pollMs());
  });
})();

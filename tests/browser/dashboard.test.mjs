// Drives the grd dashboard in headless Chromium: the map, tables and charts render with
// data; holding a job and draining a node through the page take effect; a screenshot is
// saved. Expects GRD_URL (a running `grd serve`) and optionally GRD_SCREENSHOT, CHROMIUM.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const url = process.env.GRD_URL;
if (!url) {
  console.error("GRD_URL is not set (the address of a running `grd serve`)");
  process.exit(2);
}
const screenshot = process.env.GRD_SCREENSHOT || "dashboard.png";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const userDataDir = mkdtempSync(join(tmpdir(), "grd-chromium-"));
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function api(path) {
  const r = await fetch(url + path);
  assert.equal(r.status, 200, path);
  return r.json();
}

const checks = [];
function ok(name) {
  checks.push(name);
  console.log("ok -", name);
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: FLAGS,
  viewport: { width: 1400, height: 1000 },
});
try {
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  const external = [];
  page.on("request", (r) => !r.url().startsWith(url) && external.push(r.url()));

  await page.goto(url + "/");
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  const state = await api("/api/state");

  // Map: a mark per node over the land, coloured by price, stale nodes ringed.
  await page.waitForFunction((n) => document.querySelectorAll("#map-svg circle.node").length === n, state.nodes.length);
  const land = await page.$eval("#map-svg path.land", (p) => p.getAttribute("d").length);
  assert.ok(land > 1000, "countries drawn");
  const fills = await page.$$eval("#map-svg circle.node", (cs) => cs.map((c) => c.getAttribute("fill")));
  assert.ok(fills.every((f) => f.startsWith("rgb(")), "every priced node coloured: " + fills);
  const stale = state.nodes.filter((n) => n.stale).length;
  assert.equal(await page.$$eval("#map-svg circle.stale-ring", (r) => r.length), stale);
  ok(`map: ${state.nodes.length} nodes, ${stale} stale, land drawn`);

  // Tables and summary.
  assert.equal(await page.$$eval("#nodes tbody tr", (r) => r.length), state.nodes.length);
  const jobRows = await page.$$eval("#jobs tbody tr", (r) => r.length);
  assert.ok(jobRows > 0, "job rows");
  const cost = await page.$eval("#sum-cost", (e) => e.textContent);
  assert.match(cost, /^\$\d+\.\d\d$/);
  ok(`tables: ${jobRows} job rows, cost ${cost}`);

  // Charts hold data: the selected node's series and the load per node.
  await page.waitForFunction(() => {
    const c = window.grd.charts;
    return c.series && c.load && c.series.data.datasets.length > 0 && c.load.data.datasets.length > 0;
  });
  const charts = await page.evaluate(() => {
    const s = window.grd.charts.series.data.datasets, l = window.grd.charts.load.data.datasets;
    const count = (d) => d.data.filter((v) => v != null).length;
    return {
      history: count(s[0]), forecast: count(s[1]),
      loadSeries: l.length, loadUnits: l.reduce((a, d) => a + d.data.reduce((x, y) => x + y, 0), 0),
    };
  });
  assert.ok(charts.history > 0 && charts.forecast > 0, JSON.stringify(charts));
  assert.equal(charts.loadSeries, state.nodes.length);
  assert.ok(charts.loadUnits > 0, "dispatched work shows as load");
  const painted = await page.$eval("#series-chart", (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert.ok(painted > 1000, "the series chart is drawn");
  ok(`charts: ${charts.history} history + ${charts.forecast} forecast points, ${charts.loadUnits} unit-hours of load`);

  await page.waitForFunction(() => document.querySelectorAll("#explanations tbody tr").length > 0);
  ok("explanations listed");

  // Hold a pending job through the page.
  const pending = state.jobs.find((j) => j.status === "pending");
  assert.ok(pending, "a pending job to hold");
  await page.click(`#jobs tr[data-job="${pending.id}"] button[data-job-action="hold"]`);
  await page.waitForSelector(`#jobs tr[data-job="${pending.id}"][data-status="held"]`);
  assert.equal((await api("/api/state")).jobs.find((j) => j.id === pending.id).status, "held");
  ok(`held ${pending.id} from the page`);

  // Drain a node through the page.
  const node = state.nodes.find((n) => !n.drained);
  await page.click(`#nodes tr[data-node="${node.id}"] button[data-node-action="drain"]`);
  await page.waitForSelector(`#nodes tr[data-node="${node.id}"][data-drained="true"]`);
  await page.waitForSelector(`#map-svg circle.node.drained[data-node="${node.id}"]`);
  assert.equal((await api("/api/state")).nodes.find((n) => n.id === node.id).drained, true);
  ok(`drained ${node.id} from the page`);

  // A what-if price for another node shows as such.
  // (a node without running work, so the dispatch explanations stay at market prices)
  const other = state.nodes.find((n) => n.id !== node.id && n.reserved_units === 0)
    || state.nodes.find((n) => n.id !== node.id);
  await page.selectOption("#ov-node", other.id);
  await page.fill("#ov-hours", "6");
  await page.fill("#ov-price", "900");
  await page.click("#override-form button[type=submit]");
  await page.waitForSelector("#whatif-banner:not([hidden])");
  await page.waitForSelector(`#nodes tr[data-node="${other.id}"] .badge.whatif`);
  ok(`what-if override on ${other.id} marked`);

  await page.click(`#nodes tr[data-node="${other.id}"] td`);
  await page.waitForTimeout(800);
  await page.screenshot({ path: screenshot, fullPage: true });
  ok("screenshot " + screenshot);

  assert.deepEqual(errors, [], "no page errors");
  assert.deepEqual(external, [], "no request leaves the server (no CDN)");
  console.log(`browser test passed: ${checks.length} checks`);
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

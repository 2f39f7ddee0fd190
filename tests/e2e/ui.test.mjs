// The web UI in Debian's headless Chromium against a running xlbd (see run.sh): every page loads
// without console errors, the services are listed, the ring-share chart has one bar per backend,
// a drain through the API shows on the page, and service names that are markup stay text.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.XLB_URL;
const token = readFileSync(process.env.XLB_TOKEN_FILE, "utf8").trim();
const artifacts = process.env.XLB_ARTIFACTS;
const xssNames = ["<script>alert(1)</script>", "<img/src/onerror=alert(2)>"];

let context;
let profile;

before(async () => {
  profile = mkdtempSync(join(tmpdir(), "xlb-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

// Opens a page and records what would show a broken or attacked page: console errors, uncaught
// exceptions and dialogs (an alert() from an injected script).
async function open(path) {
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`exception: ${e.message}`));
  page.on("dialog", async (d) => { problems.push(`dialog: ${d.message()}`); await d.dismiss(); });
  // Not "networkidle": the events page keeps a long poll open.
  await page.goto(base + path);
  return { page, problems };
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function api(path, options = {}) {
  const response = await fetch(base + path, options);
  if (!response.ok) assert.fail(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function drain(service, backend, drained) {
  return api(`/api/v1/services/${encodeURIComponent(service)}/backends/${backend}/${drained ? "drain" : "undrain"}`,
             { method: "POST", headers: { Authorization: `Bearer ${token}` }, body: JSON.stringify({ by: "e2e" }) });
}

test("the overview shows the node and the totals", async () => {
  const { page, problems } = await open("/");
  await page.waitForFunction(() => document.getElementById("total-services").textContent === "4");
  const node = await api("/api/v1/node");
  assert.equal(await page.textContent("#node-name"), node.hostname);
  assert.match(await page.textContent("#node-facts"), /Revision in force/);
  assert.equal(await page.textContent("#total-endpoints"), "4 frontends, 6 backends");
  await shot(page, "overview");
  assert.deepEqual(problems, []);
  await page.close();
});

test("the overview shows the decision rule's verdict and inputs, and the crossover once measured", async () => {
  const { page, problems } = await open("/");
  const advice = await api("/api/v1/advice");
  await page.waitForFunction((v) => document.getElementById("advice-verdict").textContent === v, advice.verdict);
  assert.equal(await page.textContent("#advice-reason"), advice.reason);
  assert.match(await page.textContent("#advice-inputs"), /kernel/);
  assert.equal(await page.isHidden("#advice-measured"), true);
  // What xlbctl advise --measure leaves in xlbd's state directory: socket-LB ahead from 2 services.
  const saved = join(dirname(process.env.XLB_TOKEN_FILE), "advise.json");
  writeFileSync(saved, JSON.stringify({
    measured: { points: [{ services: 1, socket_lb_p50_us: 20, iptables_p50_us: 20 },
                         { services: 2, socket_lb_p50_us: 20, iptables_p50_us: 31 }],
                measured_at: "2026-11-26T12:00:00Z", kernel: "6.18.0", seconds: 30 },
    nodes: 2, kube_proxy_mode: "", kube_proxy_services: 0, needs: [] }));
  try {
    await page.reload();
    await page.waitForFunction(() => !document.getElementById("advice-measured").hidden);
    assert.match(await page.textContent("#advice-measured-when"), /crossover: 2 services/);
    assert.equal(await page.locator("#advice-points tr").count(), 2);
    // 4 services here, at or above the crossover measured: the verdict follows the measurement.
    await page.waitForFunction(() => document.getElementById("advice-verdict").textContent === "replace kube-proxy with xlb");
    assert.match(await page.textContent("#advice-reason"), /measured crossover of 2/);
    await shot(page, "overview-advice");
  } finally {
    rmSync(saved, { force: true });
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test("the services table lists every configured service, and the search filters it", async () => {
  const { page, problems } = await open("/services.html");
  await page.waitForSelector("#services tbody a");
  const names = await page.$$eval("#services tbody td.name", (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(names.sort(), ["dns", "web", ...xssNames].sort());
  await shot(page, "services");

  await page.fill("#search", "udp");
  assert.deepEqual(await page.$$eval("#services tbody td.name", (cells) => cells.map((c) => c.textContent)), ["dns"]);
  await page.fill("#search", "nothing-matches-this");
  assert.equal(await page.textContent("#services tbody"), "No service matches");
  assert.deepEqual(problems, []);
  await page.close();
});

test("service names that are markup are shown as text, never run", async () => {
  const { page, problems } = await open("/services.html");
  await page.waitForSelector("#services tbody a");
  // Only the page's own scripts and no element made from a name.
  assert.equal(await page.locator("script").count(), 2);
  assert.equal(await page.locator("main img").count(), 0);
  for (const name of xssNames) {
    const link = page.locator("#services tbody a", { hasText: name });
    assert.equal(await link.count(), 1, name);
    await link.click();
    await page.waitForFunction((n) => document.getElementById("service-name").textContent === n, name);
    assert.equal(await page.locator("main img").count(), 0);
    assert.equal(await page.locator("script").count(), 2);
    await page.goBack();
    await page.waitForSelector("#services tbody a");
  }
  await shot(page, "services-markup-names");
  assert.deepEqual(problems, []);
  await page.close();
});

test("the service page charts each backend's ring share, one bar per backend", async () => {
  const { page, problems } = await open("/service.html?name=web");
  await page.waitForSelector("svg.ring-chart rect.ring-bar");
  const bars = await page.$$eval("svg.ring-chart rect.ring-bar", (rects) =>
    rects.map((r) => ({ backend: r.dataset.backend, width: Number(r.getAttribute("width")) })));
  assert.deepEqual(bars.map((b) => b.backend).sort(), ["10.200.1.2:8080", "10.200.2.2:8080", "10.200.3.2:8080"]);
  // Weights 1:1:2: the weight-2 backend's bar is about twice as long as each other one.
  const width = Object.fromEntries(bars.map((b) => [b.backend, b.width]));
  assert.ok(Math.abs(width["10.200.3.2:8080"] / width["10.200.1.2:8080"] - 2) < 0.2, JSON.stringify(width));
  assert.equal(await page.locator("#backends tr").count(), 3);
  assert.equal(await page.textContent("#frontends"), "198.18.0.1080tcpvip");
  assert.match(await page.textContent("#service-disruption"), /%/);
  await shot(page, "service-web");
  assert.deepEqual(problems, []);
  await page.close();
});

test("a backend drained through the API shows as draining, and the page can undrain it", async () => {
  const { page, problems } = await open("/service.html?name=web");
  const row = page.locator('#backends tr[data-backend="10.200.1.2:8080"]');
  await row.locator(".badge", { hasText: "active" }).waitFor();

  await drain("web", "10.200.1.2:8080", true);
  await row.locator(".badge", { hasText: "draining" }).waitFor({ timeout: 10000 });
  const bar = page.locator('rect.ring-bar[data-backend="10.200.1.2:8080"]');
  assert.equal(await bar.getAttribute("width"), "0.0");
  assert.match(await bar.getAttribute("class"), /state-draining/);
  await shot(page, "service-web-drained");

  // Undrain from the page, with the token typed in.
  await page.click("details.token summary");
  await page.fill("#token", token);
  await row.locator("button", { hasText: "Undrain" }).click();
  await row.locator(".badge", { hasText: "active" }).waitFor({ timeout: 10000 });
  assert.deepEqual(problems, []);
  await page.close();
});

test("the events page shows drains as they happen", async () => {
  const { page, problems } = await open("/events.html");
  await page.waitForSelector("#events tr");
  await drain("dns", "10.200.2.2:5353", true);
  await page.locator("#events tr", { hasText: "dns 10.200.2.2:5353" }).first().waitFor({ timeout: 30000 });
  assert.match(await page.textContent("#events"), /drained by e2e \(127\.0\.0\.1\)/);
  await shot(page, "events");
  await drain("dns", "10.200.2.2:5353", false);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the history lists the revisions with what they changed", async () => {
  const { page, problems } = await open("/history.html");
  await page.waitForSelector("#revisions tr td.num");
  const text = await page.textContent("#revisions");
  assert.match(text, /api: drained web 10\.200\.1\.2:8080 by e2e/);
  assert.match(text, /~backend 10\.200\.1\.2:8080 -> 10\.200\.1\.2:8080 draining/);
  assert.match(text, /api: undrained web 10\.200\.1\.2:8080 by web UI \(127\.0\.0\.1\)/);
  assert.ok(text.includes("+<script>alert(1)</script>"), text);
  await shot(page, "history");
  assert.deepEqual(problems, []);
  await page.close();
});

test("an unknown service says so", async () => {
  const { page, problems } = await open("/service.html?name=nope");
  await page.waitForSelector("#problem:not([hidden])");
  assert.match(await page.textContent("#problem"), /no service named "nope"/);
  // The only error is the browser's note of the 404 itself.
  assert.ok(problems.every((p) => p.includes("404")), problems.join("\n"));
  await page.close();
});

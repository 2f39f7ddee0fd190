// One service: frontends, backends with state, weight, ring share and live rates, a bar chart of
// each backend's share of the Maglev ring, and the share of flows its last change moved.
// Drain and undrain buttons send the API token typed into this tab.
"use strict";

(() => {
  const { api, el, svg, byId, clear, count, percent, rate, rateText, badge, every, problem } = xlb;
  const name = new URLSearchParams(location.search).get("name");
  const path = "/api/v1/services/" + encodeURIComponent(name || "");
  const tokenKey = "xlb-api-token";
  let previous = null;  // the last body, for rates

  function slotsOf(service, key) {
    let slots = 0;
    let size = 0;
    for (const ring of service.rings) {
      const share = ring.shares.find((s) => s.backend === key);
      if (share) {
        slots += share.slots;
        size += ring.size;
      }
    }
    return size ? { slots, share: slots / size } : null;
  }

  function backendRate(key, field, body) {
    if (!previous) return null;
    const before = previous.service.backends.find((b) => b.key === key);
    const now = body.service.backends.find((b) => b.key === key);
    return before && now ? rate(now.counters[field], before.counters[field], body.sampled_at_ms, previous.sampled_at_ms) : null;
  }

  async function setDrained(key, drained) {
    const token = byId("token").value.trim();
    if (!token) {
      byId("token").closest("details").open = true;
      problem("Paste the API token below to drain or undrain.");
      return;
    }
    sessionStorage.setItem(tokenKey, token);
    try {
      await api(`${path}/backends/${encodeURIComponent(key)}/${drained ? "drain" : "undrain"}`, {
        method: "POST",
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify({ by: "web UI" }),
      });
      problem("");
      await refresh();
    } catch (e) {
      problem(e.message);
    }
  }

  function drainButton(backend) {
    const draining = backend.state === "draining";
    const button = el("button", { type: "button" }, draining ? "Undrain" : "Drain");
    button.addEventListener("click", () => setDrained(backend.key, !draining));
    return button;
  }

  function backendRow(body, backend) {
    const share = slotsOf(body.service, backend.key);
    return el("tr", { "data-backend": backend.key },
      el("td", { class: "name" }, backend.key, backend.node ? el("div", { class: "note" }, backend.node) : null),
      el("td", { class: "state" }, badge(backend.state)),
      el("td", { class: "num" }, count(backend.weight)),
      el("td", { class: "num" }, share ? `${percent(share.share)} (${count(share.slots)} slots)` : "–"),
      el("td", { class: "num" }, rateText(backendRate(backend.key, "packets", body), "")),
      el("td", { class: "num" }, rateText(backendRate(backend.key, "new_flows", body), "")),
      el("td", {}, drainButton(backend)));
  }

  // One horizontal bar per backend: its share of the ring's slots.
  function ringChart(ring, backends) {
    const rowHeight = 28, labelWidth = 190, barWidth = 360, width = labelWidth + barWidth + 130;
    const chart = svg("svg", { class: "ring-chart", "data-family": ring.family, width,
                               height: rowHeight * ring.shares.length + 8, role: "img",
                               "aria-label": `Ring share per backend, ${ring.family}` });
    ring.shares.forEach((share, i) => {
      const y = 4 + i * rowHeight;
      const backend = backends.find((b) => b.key === share.backend);
      const fraction = ring.size ? share.slots / ring.size : 0;
      const label = svg("text", { x: 8, y: y + 18 });
      label.textContent = share.backend;
      const value = svg("text", { x: labelWidth + barWidth + 8, y: y + 18, class: "muted" });
      value.textContent = `${percent(fraction)} · ${count(share.slots)}`;
      chart.append(
        label,
        svg("rect", { x: labelWidth, y: y + 4, width: barWidth, height: rowHeight - 10, rx: 3, class: "ring-track" }),
        svg("rect", { x: labelWidth, y: y + 4, width: (fraction * barWidth).toFixed(1), height: rowHeight - 10, rx: 3,
                      class: "ring-bar state-" + (backend ? backend.state : "active"), "data-backend": share.backend }),
        value);
    });
    return chart;
  }

  function render(body) {
    const s = body.service;
    document.title = `${s.name} · xlb`;
    byId("service-name").textContent = s.name;
    byId("service-mode").textContent = s.mode;
    byId("service-source").textContent = "from " + s.source;
    byId("service-disruption").textContent = percent(s.last_disruption);
    byId("service-health").textContent = s.health.type;
    byId("service-health-detail").textContent =
      s.health.type === "none" ? "no active checks" : `every ${s.health.interval_ms} ms, timeout ${s.health.timeout_ms} ms`;
    const packets = previous ? rate(s.counters.packets, previous.service.counters.packets, body.sampled_at_ms, previous.sampled_at_ms) : null;
    const flows = previous ? rate(s.counters.new_flows, previous.service.counters.new_flows, body.sampled_at_ms, previous.sampled_at_ms) : null;
    byId("service-rate").textContent = rateText(packets);
    byId("service-flows").textContent = `${rateText(flows)} new flows`;

    const frontends = clear(byId("frontends"));
    for (const f of s.frontends)
      frontends.append(el("tr", {}, el("td", {}, f.address), el("td", { class: "num" }, f.port),
                          el("td", {}, f.protocol), el("td", {}, f.kind)));
    const backends = clear(byId("backends"));
    for (const b of s.backends) backends.append(backendRow(body, b));
    if (s.backends.length === 0) backends.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No backends")));

    const rings = clear(byId("rings"));
    for (const ring of s.rings) {
      rings.append(el("p", { class: "note" }, `${ring.family}: ${count(ring.size)} slots`), ringChart(ring, s.backends));
    }
    if (s.rings.length === 0) rings.append(el("p", { class: "empty" }, "No ring"));
    previous = body;
  }

  async function refresh() {
    render(await api(path));
  }

  byId("token").value = sessionStorage.getItem(tokenKey) || "";
  if (!name) {
    problem("No service given: open one from the Services page.");
    return;
  }
  every(2000, refresh);
})();

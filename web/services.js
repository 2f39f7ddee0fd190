// Services: every service with its frontends, backends, ring and live packet rate; a search box
// filters by name, address or port.
"use strict";

(() => {
  const { api, el, byId, clear, count, percent, rate, rateText, serviceLink, every } = xlb;
  let latest = null;
  let previous = new Map();  // name -> {packets, at}

  function frontendText(f) {
    const address = f.address.includes(":") ? `[${f.address}]` : f.address;
    return `${address}:${f.port}/${f.protocol}`;
  }

  function matches(service, query) {
    if (!query) return true;
    const haystack = [service.name, ...service.frontends.map(frontendText), ...service.backends.map((b) => b.key)];
    return haystack.some((text) => text.toLowerCase().includes(query));
  }

  function row(service, packetRate) {
    const active = service.backends.filter((b) => b.state === "active" && b.weight > 0).length;
    const ring = service.rings.map((r) => r.size).join(" / ") || "–";
    return el("tr", {},
      el("td", { class: "name" }, serviceLink(service.name)),
      el("td", {}, service.mode),
      el("td", {}, service.frontends.map(frontendText).join(", ")),
      el("td", { class: "num", title: "active / all" }, `${active} / ${service.backends.length}`),
      el("td", { class: "num" }, ring),
      el("td", { class: "num" }, rateText(packetRate, "")),
      el("td", { class: "num" }, percent(service.last_disruption)));
  }

  function render() {
    if (!latest) return;
    const query = byId("search").value.trim().toLowerCase();
    const tbody = clear(byId("services").tBodies[0]);
    const shown = latest.services.filter((s) => matches(s, query));
    for (const s of shown) {
      const before = previous.get(s.name);
      tbody.append(row(s, before ? rate(s.counters.packets, before.packets, latest.sampled_at_ms, before.at) : null));
    }
    if (shown.length === 0)
      tbody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, query ? "No service matches" : "No services")));
    byId("shown").textContent = `${shown.length} of ${latest.services.length} services`;
  }

  byId("search").addEventListener("input", render);

  every(2000, async () => {
    const body = await api("/api/v1/services");
    if (latest) previous = new Map(latest.services.map((s) => [s.name, { packets: s.counters.packets, at: latest.sampled_at_ms }]));
    latest = body;
    render();
  });
})();

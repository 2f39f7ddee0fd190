// Overview: the node, totals with live rates and a packets-per-second sparkline, datapath,
// preflight and drops.
"use strict";

(() => {
  const { api, el, byId, clear, count, bytes, rate, rateText, sparkline, every } = xlb;
  const kSamples = 90;  // 3 minutes at one sample every 2 s
  const packetRates = [];
  let previous = null;

  function rows(tbody, items, emptyText, toRow) {
    clear(tbody);
    if (items.length === 0) tbody.append(el("tr", {}, el("td", { colspan: 3, class: "empty" }, emptyText)));
    for (const item of items) tbody.append(toRow(item));
  }

  function facts(node) {
    const list = clear(byId("node-facts"));
    for (const [label, value] of [["Host", node.hostname], ["Kernel", node.kernel], ["xlbd", node.version],
                                  ["XDP mode", node.datapath_mode], ["Revision in force", node.revision]]) {
      list.append(el("dt", {}, label), el("dd", {}, value));
    }
  }

  function totals(node) {
    const t = node.totals;
    byId("total-services").textContent = count(t.services);
    byId("total-endpoints").textContent = `${count(t.frontends)} frontends, ${count(t.backends)} backends`;
    const before = previous;
    previous = { totals: t, at: node.sampled_at_ms };
    const r = (field) => before ? rate(t[field], before.totals[field], node.sampled_at_ms, before.at) : null;
    byId("rate-packets").textContent = rateText(r("packets"));
    byId("rate-bytes").textContent = r("bytes") === null ? "per second" : bytes(r("bytes")) + "/s";
    byId("rate-flows").textContent = rateText(r("new_flows"));
    if (r("packets") !== null) packetRates.push(r("packets"));
    if (packetRates.length > kSamples) packetRates.shift();
    sparkline(byId("sparkline"), packetRates);
  }

  every(2000, async () => {
    const node = await api("/api/v1/node");
    facts(node);
    totals(node);
    rows(byId("sources"), node.sources, "No source", (src) =>
      el("tr", {}, el("td", {}, src.name), el("td", {}, xlb.badge(src.state)), el("td", { class: "num" }, count(src.services)),
         el("td", {}, src.detail, ...src.problems.map((p) => el("div", { class: "problem-line" }, p)))));
    rows(byId("attachments"), node.attachments, "No program attached", (a) =>
      el("tr", {}, el("td", {}, a.interface), el("td", {}, a.program), el("td", {}, a.mode)));
    rows(byId("preflight"), node.preflight, "No checks reported", (c) =>
      el("tr", {}, el("td", {}, c.name), el("td", {}, xlb.badge(c.ok ? "active" : "down")), el("td", {}, c.detail)));
    rows(byId("drops"), Object.entries(node.drops), "No packet dropped", ([reason, n]) =>
      el("tr", {}, el("td", {}, reason), el("td", { class: "num" }, count(n))));
    bgp(node.bgp);
  });

  // The VIPs this node announces over BGP, and its sessions; shown only with [bgp] enabled.
  function bgp(b) {
    byId("bgp").hidden = !b || !b.enabled;
    if (!b || !b.enabled) return;
    const error = byId("bgp-error");
    error.hidden = !b.error;
    error.textContent = b.error ? "bird: " + b.error : "";
    rows(byId("bgp-vips"), b.vips, "No VIP", (v) =>
      el("tr", {}, el("td", {}, v.address), el("td", {}, xlb.badge(v.announced ? "active" : "down")),
         el("td", {}, v.announced ? v.services.join(", ") : v.reason)));
    rows(byId("bgp-peers"), b.peers, "No peer", (p) =>
      el("tr", {}, el("td", {}, p.address + " (AS " + p.asn + ")"), el("td", {}, xlb.badge(p.established ? "active" : "down")),
         el("td", {}, p.state + " " + p.info)));
  }
})();

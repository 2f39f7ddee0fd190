// Overview, "Decision rule": does replacing kube-proxy with xlb pay off on this node? The verdict,
// its reason and every input (GET /api/v1/advice), and the crossover `xlbctl advise --measure`
// measured here, with its points, once it has run.
"use strict";

(() => {
  const { api, el, byId, clear, every } = xlb;
  const micros = (v) => Number(v).toFixed(1) + " µs";

  function measured(m) {
    byId("advice-measured").hidden = !m;
    if (!m) return;
    byId("advice-measured-when").textContent =
      `measured ${m.measured_at} on kernel ${m.kernel} in ${Math.round(m.seconds)} s; ` +
      (m.crossover === null
        ? `socket-LB was not ahead by ${Math.round((m.margin - 1) * 100)}% at any size up to ${m.points.at(-1).services}`
        : `crossover: ${m.crossover} services (socket-LB ahead by ${Math.round((m.margin - 1) * 100)}% or more from there on)`);
    const body = clear(byId("advice-points"));
    for (const p of m.points) {
      body.append(el("tr", m.crossover !== null && p.services >= m.crossover ? { class: "ahead" } : {},
        el("td", { class: "num" }, String(p.services)), el("td", { class: "num" }, micros(p.socket_lb_p50_us)),
        el("td", { class: "num" }, micros(p.iptables_p50_us)),
        el("td", { class: "num" }, (p.iptables_p50_us / Math.max(p.socket_lb_p50_us, 0.001)).toFixed(2) + "×")));
    }
  }

  every(10000, async () => {
    const a = await api("/api/v1/advice");
    const verdict = byId("advice-verdict");
    verdict.textContent = a.verdict;
    verdict.className = "verdict verdict-" + a.verdict_code;
    byId("advice-reason").textContent = a.reason;
    const notes = clear(byId("advice-notes"));
    for (const n of a.notes) notes.append(el("li", {}, n));
    const inputs = clear(byId("advice-inputs"));
    for (const i of a.inputs)
      inputs.append(el("tr", {}, el("td", {}, i.input), el("td", {}, i.value), el("td", {}, i.source)));
    measured(a.measured);
  });
})();

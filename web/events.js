// Events as they happen (long polling /api/v1/events), and drops by reason.
"use strict";

(() => {
  const { api, el, byId, clear, count, time, every, problem } = xlb;
  const kShown = 500;
  let lastId = 0;

  function add(events) {
    const tbody = byId("events");
    const empty = tbody.querySelector(".empty");
    if (empty && events.length) empty.closest("tr").remove();
    for (const e of events) {
      tbody.prepend(el("tr", {}, el("td", {}, time(e.created_at)), el("td", { class: "kind" }, e.kind),
                       el("td", { class: "name" }, e.subject), el("td", {}, e.message)));
      lastId = Math.max(lastId, e.id);
    }
    while (tbody.rows.length > kShown) tbody.deleteRow(-1);
  }

  async function follow() {
    const first = await api("/api/v1/events?limit=200").catch((e) => (problem(e.message), null));
    if (first) {
      if (first.events.length === 0) byId("events").append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No events yet")));
      add(first.events);
    }
    for (;;) {
      byId("live").textContent = "Live: new events appear at the top.";
      try {
        const next = await api(`/api/v1/events?after=${lastId}&wait=25`);
        add(next.events);
        problem("");
      } catch (e) {
        byId("live").textContent = "Reconnecting…";
        problem(e.message);
        await new Promise((resolve) => setTimeout(resolve, 3000));
      }
    }
  }

  follow();
  every(5000, async () => {
    const node = await api("/api/v1/node");
    const tbody = clear(byId("drops"));
    const drops = Object.entries(node.drops);
    if (drops.length === 0) tbody.append(el("tr", {}, el("td", { colspan: 2, class: "empty" }, "No packet dropped")));
    for (const [reason, n] of drops) tbody.append(el("tr", {}, el("td", {}, reason), el("td", { class: "num" }, count(n))));
  });
})();

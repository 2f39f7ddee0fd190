// History: every applied revision, newest first, with what it changed.
"use strict";

(() => {
  const { api, el, byId, clear, time, every } = xlb;

  function changes(revision) {
    if (revision.changes.length === 0) return el("span", {}, revision.summary);
    const sign = { added: "+", removed: "−", changed: "~" };
    return el("ul", { class: "changes" }, revision.changes.map((c) =>
      el("li", {}, el("span", { class: "kind" }, `${sign[c.kind] || ""}${c.service}`),
         c.details.length ? ": " + c.details.join("; ") : "")));
  }

  every(10000, async () => {
    const body = await api("/api/v1/revisions?limit=200");
    const tbody = clear(byId("revisions"));
    if (body.revisions.length === 0) tbody.append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No revision yet")));
    for (const r of body.revisions)
      tbody.append(el("tr", {}, el("td", { class: "num" }, r.id), el("td", {}, time(r.created_at)),
                      el("td", { class: "name" }, r.source), el("td", {}, changes(r))));
  });
})();

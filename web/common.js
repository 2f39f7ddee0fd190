// Shared by every page of the xlb dashboard: fetching the API, building elements, formatting.
//
// Every value from the API goes into the page as text (textContent, setAttribute on our own
// attributes), never as markup: a service named "<script>" is shown, not run. The server's
// Content-Security-Policy forbids inline scripts as a second guard.
"use strict";

const xlb = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  // GET (or POST) an API path; resolves to the JSON body, rejects with the server's error words.
  async function api(path, options = {}) {
    const response = await fetch(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(`${path}: ${response.status} ${response.statusText} (not JSON)`);
    }
    if (!response.ok) throw new Error(body && body.error ? body.error : `${path}: ${response.status}`);
    return body;
  }

  // el("td", {class: "num"}, "text", childNode, ...): strings become text nodes.
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    setAttributes(node, attributes);
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attributes = {}) {
    const node = document.createElementNS(SVG, tag);
    setAttributes(node, attributes);
    return node;
  }

  function setAttributes(node, attributes) {
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function serviceLink(name) {
    return el("a", { href: "service.html?name=" + encodeURIComponent(name) }, name);
  }

  function badge(state) {
    return el("span", { class: "badge state-" + String(state).replace(/[^a-z]/g, "") }, state);
  }

  const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

  function count(n) {
    return numberFormat.format(n);
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return numberFormat.format(n) + " " + units[i];
  }

  function percent(ratio) {
    return numberFormat.format(ratio * 100) + " %";
  }

  function time(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // Per-second rates from two samples of cumulative counters taken at sampled_at_ms.
  function rate(now, before, nowMs, beforeMs) {
    const seconds = (nowMs - beforeMs) / 1000;
    if (!before || seconds <= 0) return null;
    return Math.max(0, (now - before) / seconds);
  }

  function rateText(value, unit = "/s") {
    return value === null ? "–" : count(value) + unit;
  }

  // A small line chart of the last values, drawn into an <svg> of the given size.
  function sparkline(node, values, width = 240, height = 48) {
    clear(node);
    setAttributes(node, { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    if (values.length < 2) return;
    const max = Math.max(1, ...values);
    const step = width / (values.length - 1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    node.append(svg("polyline", { points: points.join(" "), class: "spark" }));
  }

  // Shows an error above the page's content until the next success.
  function problem(message) {
    const box = byId("problem");
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  // Runs `task` now and then every `ms`, one at a time; a failure shows and the polling goes on.
  function every(ms, task) {
    const run = async () => {
      try {
        await task();
        problem("");
      } catch (e) {
        problem(e.message);
      }
      setTimeout(run, ms);
    };
    run();
  }

  // The header's node name and revision, on every page. Its failures stay quiet: the page's own
  // polling reports a server that does not answer.
  async function header() {
    try {
      const node = await api("/api/v1/node");
      byId("node-name").textContent = node.hostname;
      byId("node-revision").textContent = "revision " + node.revision;
    } catch (e) {
      byId("node-revision").textContent = "not answering";
    }
    setTimeout(header, 5000);
  }

  document.addEventListener("DOMContentLoaded", header);

  return { api, el, svg, clear, byId, serviceLink, badge, count, bytes, percent, time, rate, rateText, sparkline,
           problem, every };
})();

/* The page's side of the blotter: live sections from server-sent events, uPlot charts.
   Sections arrive as HTML rendered on the server; each update ends with a `seq` event, which the
   benchmarks and tests read back from window.omsUpdates ([seq, time shown in ms]). */
(() => {
  "use strict";
  window.omsUpdates = [];
  window.omsCharts = { pnl: null, positions: null };
  const palette = ["#1f5fa8", "#b3261e", "#1b7f3b", "#9a6700", "#6f42c1", "#0f766e", "#c2410c", "#4b5563",
                   "#be185d", "#0369a1", "#65a30d", "#7c2d12", "#a21caf", "#0e7490", "#ca8a04", "#334155"];

  // One colour per instrument (or currency), whatever else is drawn and on every page: from its name.
  function colour(name) {
    let h = 0;
    for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return palette[h % palette.length];
  }

  function cursorPlugin(cursor) {
    return { hooks: { draw: [(u) => {
      if (cursor == null) return;
      const x = u.valToPos(cursor, "x", true);
      const ctx = u.ctx;
      ctx.save(); ctx.strokeStyle = "#b3261e"; ctx.lineWidth = 2 * devicePixelRatio;
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
    }] } };
  }

  function plot(key, el, series, data, cursor) {
    const old = window.omsCharts[key];
    const shape = series.map((s) => s.label).join("|");
    if (old && old._shape === shape && old._cursor === cursor) { old.setData(data); return; }
    if (old) old.destroy();
    const width = Math.max(320, Math.floor(el.getBoundingClientRect().width) || 600);
    const chart = new uPlot({ width, height: 220, series: [{}, ...series], plugins: [cursorPlugin(cursor)],
                              scales: { x: { time: true } }, legend: { live: false }, tzDate: zoned }, data, el);
    chart._shape = shape; chart._cursor = cursor;
    window.omsCharts[key] = chart;
  }

  // The page's one clock: the service's zone (the charts' time axis too).
  let zone = "UTC";
  const zoned = (ts) => uPlot.tzDate(new Date(ts * 1e3), zone);

  function tick() {
    const el = document.querySelector("#clock .now");
    if (!el) return;
    const clockZone = document.getElementById("clock").dataset.zone || "UTC";
    el.textContent = new Intl.DateTimeFormat("en-GB", { timeZone: clockZone, hour: "2-digit", minute: "2-digit",
                                                         second: "2-digit", hourCycle: "h23" }).format(new Date());
  }

  // The window (or the grid) resized: each chart takes its box's width again, never its own.
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = Object.values(window.omsCharts).find((c) => c && c.root.parentNode === entry.target);
      const width = Math.max(320, Math.floor(entry.contentRect.width));
      if (chart && chart.width !== width) chart.setSize({ width, height: chart.height });
    }
  });
  for (const el of document.querySelectorAll(".chart")) resized.observe(el);

  function draw(d) {
    if (d.zone && d.zone !== zone) {  // the axis is laid out for a zone: a new one redraws
      zone = d.zone;
      for (const chart of Object.values(window.omsCharts)) if (chart) chart.destroy();
      window.omsCharts = { pnl: null, positions: null };
    }
    const pnlEl = document.getElementById("chart-pnl"), posEl = document.getElementById("chart-positions");
    if (!pnlEl || !posEl || typeof uPlot === "undefined") return;
    if (!d.pnl.x.length && !d.positions.length) {  // nothing filled yet: say so instead of empty axes
      for (const chart of Object.values(window.omsCharts)) if (chart) chart.destroy();
      window.omsCharts = { pnl: null, positions: null };
      for (const el of [pnlEl, posEl]) el.innerHTML = '<p class="empty">no fills yet</p>';
      return;
    }
    for (const el of [pnlEl, posEl]) el.querySelector("p.empty")?.remove();
    const curs = Object.keys(d.pnl.series);
    plot("pnl", pnlEl, curs.map((c) => ({ label: c, stroke: colour(c), width: 2 })),
         [d.pnl.x, ...curs.map((c) => d.pnl.series[c])], d.cursor);
    // positions: every instrument on one time axis, carried forward; fills as dots on the line
    const xs = [...new Set(d.positions.flatMap((p) => p.x))].sort((a, b) => a - b);
    const series = [], data = [xs];
    d.positions.forEach((p) => {
      const qty = [], fillAt = [];
      let j = 0, last = null;
      xs.forEach((x, k) => {
        let filled = false;
        while (j < p.x.length && p.x[j] <= x) { last = p.qty[j]; filled = filled || p.fills[j] != null; j++; }
        qty.push(last);
        if (filled) fillAt.push(k);
      });
      const color = colour(p.instrument);
      series.push({ label: p.label, stroke: color, width: 2, paths: uPlot.paths.stepped({ align: 1 }),
                    points: { show: true, size: 8, fill: color, filter: () => fillAt } });
      data.push(qty);
    });
    plot("positions", posEl, series, data, d.cursor);
  }

  function drawFrom(root) {
    const el = (root || document).querySelector("#chart-data");
    if (el) draw(JSON.parse(el.textContent));
  }

  // A few orders changed: move or replace just their rows (newest on top), then tidy the tables.
  function orderRows(rows) {
    for (const r of rows) {
      const table = document.querySelector("#sec-orders table.orders." + r.table);
      if (!table) continue;
      const holder = document.createElement("tbody");
      holder.innerHTML = r.html;
      const row = holder.firstElementChild, body = table.tBodies[0];
      const old = document.getElementById("order-" + r.id);
      if (old && old.parentNode === body && r.table === "working") old.replaceWith(row);
      else { if (old) old.remove(); body.prepend(row); }
      htmx.process(row);
    }
    for (const table of document.querySelectorAll("#sec-orders table.orders")) {
      const body = table.tBodies[0], limit = Number(table.dataset.limit || 0);
      let rows = [...body.rows].filter((r) => !r.classList.contains("empty-row"));
      if (limit && rows.length > limit) { rows.slice(limit).forEach((r) => r.remove()); rows = rows.slice(0, limit); }
      const empty = body.querySelector(".empty-row");
      if (rows.length && empty) empty.remove();
      if (!rows.length && !empty) body.innerHTML = '<tr class="empty-row"><td colspan="14" class="empty">none</td></tr>';
      table.querySelector("caption .count").textContent = "(" + rows.length + ")";
    }
  }

  function follow(url) {
    const source = new EventSource(url);
    for (const name of ["status", "orders", "positions", "fills", "accounts"]) {
      source.addEventListener(name, (e) => {
        const el = document.getElementById("sec-" + name);
        if (el) { el.innerHTML = e.data; htmx.process(el); }
      });
    }
    source.addEventListener("order-rows", (e) => orderRows(JSON.parse(e.data)));
    source.addEventListener("charts", (e) => draw(JSON.parse(e.data)));
    source.addEventListener("seq", (e) => {
      const [seq] = JSON.parse(e.data);
      document.body.dataset.seq = seq;
      window.omsUpdates.push([seq, Date.now()]);
      if (window.omsUpdates.length > 200000) window.omsUpdates.splice(0, 100000);
    });
    window.omsSource = source;
  }

  // A command's answer, as the service gave it: accepted, or denied with its code, message and reason.
  // Read from the request itself: the button may be gone by then (its row moved on a live update).
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    const what = e.detail.elt && e.detail.elt.dataset ? e.detail.elt.dataset.command : null;
    const out = document.getElementById("command-result");
    if (!what || !out) return;
    const xhr = e.detail.xhr;
    xhr.addEventListener("loadend", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText || "{}"); } catch (_) { body = {}; }
      const err = body.error || {};
      out.className = body.ok ? "ok" : "bad";
      out.textContent = body.ok
        ? `${what} on ${body.service}${body.account ? " for account " + body.account : ""}: accepted`
        : `${what}: denied (${err.code || xhr.status || "no answer"}) ${err.message || ""}${err.reason ? " - " + err.reason : ""}`;
    });
  });

  // The filters apply as soon as one is picked (no inline handler: the page's CSP allows none).
  for (const select of document.querySelectorAll("form.filters select, form.filters input[type=checkbox]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  if (document.getElementById("live")) { tick(); setInterval(tick, 1000); }  // recorded pages: no "now"
  drawFrom(document);
  document.body.addEventListener("htmx:afterSwap", (e) => drawFrom(e.detail.target));
  const live = document.getElementById("live");
  if (live) follow(live.dataset.sse);
})();

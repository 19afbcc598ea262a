// bothost serve / report.html: renders the page's data (views.page_data) with plain DOM calls.
// Read-only: no form, no button that could place or cancel an order. Nothing is fetched from
// anywhere but this server (live) or nothing at all (report.html: the data is in the file).
(function () {
  "use strict";

  var MODE = document.body.getAttribute("data-mode") || "report";
  var LABELS = {
    open_position: "position", last_price: "last price",
    realized_pnl: "realized P&L (gross)", fees: "fees", net_realized_pnl: "net realized P&L",
    unrealized_pnl: "unrealized P&L", total_pnl: "total P&L", equity: "equity",
    market_value: "market value", open_cost: "open cost", lowest_equity: "lowest equity",
    peak_capital_committed: "peak capital", max_drawdown: "max drawdown", fills: "fills"
  };

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
        if (k === "text") node.textContent = String(attrs[k]);
        else if (k === "cls") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function show(v) { return v === null || v === undefined || v === "" ? "–" : String(v); }

  function signClass(key, text) {
    if (!/pnl$|equity$/.test(key) || text === "–") return "";
    var n = parseFloat(text);
    return isNaN(n) || n === 0 ? "" : (n < 0 ? "neg" : "pos");
  }

  function table(columns, rows, opts) {
    // columns: [{key, label, num}], rows: [{cells: {key: text}, attrs: {...}, cls, keys: {column: data-key}}]
    opts = opts || {};
    var thead = el("thead", null, el("tr", null));
    columns.forEach(function (c) { thead.firstChild.appendChild(el("th", {cls: c.num ? "num" : "", text: c.label})); });
    var tbody = el("tbody");
    rows.forEach(function (r) {
      var tr = el("tr", r.attrs || null);
      if (r.cls) tr.className = r.cls;
      if (r.span) {
        tr.appendChild(el("td", {colspan: String(columns.length), text: r.span}));
      } else {
        columns.forEach(function (c) {
          var text = c.blank && !r.cells[c.key] ? "" : show(r.cells[c.key]);
          var cls = (c.num ? "num " : "") + (c.cls || "") + " " + signClass(r.keys && r.keys[c.key] || c.key, text);
          tr.appendChild(el("td", {cls: cls.trim(), "data-col": c.key, "data-key": r.keys ? r.keys[c.key] : null, text: text}));
        });
      }
      tbody.appendChild(tr);
    });
    var t = el("table", opts.attrs || null, thead, tbody);
    if (!rows.length) return el("p", {cls: "muted", text: opts.empty || "none"});
    return opts.scroll ? el("div", {cls: "scroll", "data-scroll": opts.scroll}, t) : t;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  // ---------------------------------------------------------------- the chart (inline SVG)
  var NY = null;
  try {
    NY = {
      day: new Intl.DateTimeFormat("en-US", {timeZone: "America/New_York", month: "short", day: "numeric"}),
      time: new Intl.DateTimeFormat("en-US", {timeZone: "America/New_York", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23"})
    };
  } catch (e) { NY = null; }

  function fmtTime(ms, span) {
    var d = new Date(ms);
    if (!NY) return d.toISOString().slice(0, 16).replace("T", " ");
    return (span > 3 * 86400000 ? NY.day : NY.time).format(d);
  }

  function niceTicks(lo, hi, n) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = (span / n) / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v * 100) / 100);
    return out;
  }

  function chartSvg(chart, fills, lastPrice, width) {
    var W = Math.max(320, Math.round(width || 1000)), H = 330, L = 56, R = 64, T = 12, B = 26;
    var ts = chart.t || [], ps = chart.p || [];
    var buys = fills.buys || [], sells = fills.sells || [];
    var tmin = Infinity, tmax = -Infinity, pmin = Infinity, pmax = -Infinity;
    function take(t, p) {
      if (t < tmin) tmin = t; if (t > tmax) tmax = t; if (p < pmin) pmin = p; if (p > pmax) pmax = p;
    }
    for (var i = 0; i < ts.length; i++) take(ts[i], ps[i]);
    buys.forEach(function (m) { take(m[0], m[1]); });
    sells.forEach(function (m) { take(m[0], m[1]); });
    if (!isFinite(tmin)) {
      return '<svg viewBox="0 0 ' + W + ' 80" role="img" aria-label="price chart"><text class="axis" x="10" y="40">no prices yet</text></svg>';
    }
    if (tmax === tmin) { tmax = tmin + 60000; }
    if (pmax === pmin) { pmax += 0.5; pmin -= 0.5; }
    var pad = (pmax - pmin) * 0.04; pmin -= pad; pmax += pad;
    function x(t) { return L + (t - tmin) / (tmax - tmin) * (W - L - R); }
    function y(p) { return T + (pmax - p) / (pmax - pmin) * (H - T - B); }
    var out = ['<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none" role="img" aria-label="price with fills marked">'];
    niceTicks(pmin, pmax, 6).forEach(function (v) {
      var yy = y(v).toFixed(1);
      out.push('<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + yy + '" y2="' + yy + '"/>');
      out.push('<text class="axis end" x="' + (L - 6) + '" y="' + yy + '" dominant-baseline="middle">' + v.toFixed(2) + '</text>');
    });
    var span = tmax - tmin;
    for (var k = 0; k <= 5; k++) {
      var tt = tmin + span * k / 5;
      out.push('<text class="axis' + (k === 0 ? "" : k === 5 ? " end" : " mid") + '" x="' + x(tt).toFixed(1) + '" y="' +
        (H - 8) + '">' + esc(fmtTime(tt, span)) + '</text>');
    }
    if (ts.length) {
      var pts = [];
      for (var j = 0; j < ts.length; j++) pts.push(x(ts[j]).toFixed(1) + "," + y(ps[j]).toFixed(1));
      out.push('<polyline class="price" points="' + pts.join(" ") + '"/>');
    }
    function marks(list, up) {
      if (!list.length) return "";
      var d = [];
      list.forEach(function (m) {
        var mx = x(m[0]), my = y(m[1]);
        d.push(up ? "M" + (mx - 4).toFixed(1) + " " + (my + 9).toFixed(1) + "h8l-4-7z"
                  : "M" + (mx - 4).toFixed(1) + " " + (my - 9).toFixed(1) + "h8l-4 7z");
      });
      return '<path class="' + (up ? "buy" : "sell") + '" d="' + d.join("") + '"/>';
    }
    out.push(marks(buys, true));
    out.push(marks(sells, false));
    var last = parseFloat(lastPrice);
    if (!isNaN(last) && last >= pmin && last <= pmax) {
      var ly = y(last).toFixed(1);
      out.push('<line class="last" x1="' + L + '" x2="' + (W - R) + '" y1="' + ly + '" y2="' + ly + '"/>');
      out.push('<text class="lastlabel" x="' + (W - R + 4) + '" y="' + ly + '" dominant-baseline="middle">' + esc(last.toFixed(2)) + '</text>');
    }
    out.push("</svg>");
    return out.join("");
  }

  // ---------------------------------------------------------------- sections
  function card(key, label, value, cls) {
    var text = show(value);
    return el("div", {cls: "card"}, el("div", {cls: "label", text: label}),
      el("div", {cls: ("value " + (cls || signClass(key, text))).trim(), "data-key": key, text: text}));
  }

  // A strategy's section: what it holds and has working (its Holdings, in the host's words, each
  // order under the strategy's own label), its price levels, then its records as it published
  // them (the way `bothost status` prints them). No word here belongs to any one strategy.
  function hasAny(rows, key) {
    return rows.some(function (r) { return r[key] !== null && r[key] !== undefined && r[key] !== ""; });
  }

  function present(columns, rows) {
    // optional columns (a label, a level, an exit price) only when the strategy gave one
    return columns.filter(function (c) { return !c.optional || hasAny(rows, c.key); });
  }

  function lotsTable(s, lots) {
    var columns = present([{key: "label", label: "lot", optional: true}, {key: "level", label: "level", num: true, optional: true},
      {key: "quantity", label: "quantity", num: true}, {key: "price", label: "purchase", num: true},
      {key: "exit_price", label: "exit at", num: true, optional: true}], lots);
    return table(columns, lots.map(function (l) {
      return {cells: l, attrs: {"data-lot-level": l.level === null || l.level === undefined ? null : String(l.level)}};
    }), {scroll: "lots-" + s.id, empty: "no open lot", attrs: {"data-table": "lots"}});
  }

  function ordersTable(orders) {
    var columns = present([{key: "label", label: "order", optional: true}, {key: "side", label: "side"},
      {key: "level", label: "level", num: true, optional: true}, {key: "quantity", label: "quantity", num: true},
      {key: "price", label: "limit", num: true}, {key: "filled", label: "filled", num: true},
      {key: "order_id", label: "order id", num: true}], orders);
    return table(columns, orders.map(function (o) {
      return {cells: o, attrs: {"data-order": o.order_id, "class": "order side-" + o.side}};
    }), {empty: "no working order", attrs: {"data-table": "working"}});
  }

  function levelsTable(lad) {
    var rows = [], marked = false;
    lad.rows.forEach(function (r) {
      if (!marked && lad.last !== null && !r.above_last) {
        rows.push({span: "last price " + lad.last, cls: "lastline"});
        marked = true;
      }
      var held = r.lots.map(function (l) {
        return l.quantity + " @ " + l.price + (l.exit_price ? " → " + l.exit_price : "");
      }).join("; ");
      var working = r.orders.map(function (o) {
        return o.side + " " + o.quantity + " @ " + o.price + (o.label ? " (" + o.label + ")" : "");
      }).join("; ");
      rows.push({cells: {level: r.level, price: r.price, held: held, working: working},
        cls: held ? "held" : (working ? "working" : ""), attrs: {"data-ladder-level": String(r.level)}});
    });
    if (!marked && lad.last !== null) rows.push({span: "last price " + lad.last, cls: "lastline"});
    return table([{key: "level", label: "level", num: true, cls: "lvl"}, {key: "price", label: "price", num: true},
      {key: "held", label: "lots held: quantity @ purchase → exit"}, {key: "working", label: "working orders"}], rows,
      {attrs: {"data-table": "ladder"}});
  }

  function isScalar(v) { return v === null || typeof v !== "object"; }

  function scalarText(v) {
    if (isScalar(v)) return show(v);
    return Array.isArray(v) && !v.length ? "none" : JSON.stringify(v);
  }

  // One record as published: a mapping is a what/value table (its lists and mappings below it,
  // folded), a list of mappings a table of their keys, a list of anything else a list, anything
  // else one line. `path` names it in data-key/data-record: "strategy.<id>.<record>[.<key>...]".
  function recordBlock(path, title, value, folded) {
    var box = el("div", {cls: "record", "data-record": path});
    var head = el(folded ? "summary" : "h3", {text: title});
    var body = folded ? el("details", {"data-fold": path}, head) : el("div", null, head);
    box.appendChild(body);
    if (Array.isArray(value) && value.length && value.every(function (v) { return v && typeof v === "object" && !Array.isArray(v); })) {
      var cols = [];
      value.forEach(function (row) { Object.keys(row).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); }); });
      body.appendChild(table(cols.map(function (k) { return {key: k, label: k.replace(/_/g, " ")}; }),
        value.map(function (row) {
          var cells = {};
          cols.forEach(function (k) { cells[k] = k in row ? scalarText(row[k]) : ""; });
          return {cells: cells};
        }), {scroll: path, attrs: {"data-table": path}}));
    } else if (Array.isArray(value)) {
      if (!value.length) {
        body.appendChild(el("p", {cls: "muted", "data-list": path, text: "none"}));
      } else {
        var ul = el("ul", {cls: "findings", "data-list": path});
        value.forEach(function (v) { ul.appendChild(el("li", {text: scalarText(v)})); });
        body.appendChild(ul);
      }
    } else if (value && typeof value === "object") {
      var keys = Object.keys(value);
      var flat = keys.filter(function (k) { return !(value[k] && typeof value[k] === "object" && Object.keys(value[k]).length); });
      body.appendChild(table([{key: "what", label: "what"}, {key: "value", label: "value", num: true}],
        flat.map(function (k) {
          return {cells: {what: k.replace(/_/g, " "), value: scalarText(value[k])}, keys: {value: path + "." + k}};
        }), {empty: "nothing", attrs: {"data-table": path}}));
      keys.filter(function (k) { return flat.indexOf(k) < 0; }).forEach(function (k) {
        var n = Array.isArray(value[k]) ? " (" + value[k].length + ")" : "";
        body.appendChild(recordBlock(path + "." + k, title + " / " + k.replace(/_/g, " ") + n, value[k], true));
      });
    } else {
      body.appendChild(el("p", {"data-key": path, text: show(value)}));
    }
    return box;
  }

  function strategySection(s) {
    var held = s.holdings;
    var lots = held ? held.lots : [], orders = held ? held.orders : [];
    var sec = el("section", {cls: "panel", "data-strategy": s.id});
    sec.appendChild(el("h2", null, s.id + (s.symbol ? " · " + s.symbol : ""),
      el("span", {cls: "muted", text: held ? "  ·  position " + held.shares + ", open cost " + held.open_cost
        : "  ·  reports no holdings"}),
      el("span", {cls: "muted", text: s.source === "bot_state.json" ? "  ·  from the run's checkpoint" : ""})));
    if (held) {
      var left = el("div", null, el("h3", {text: "open lots (" + lots.length + ")"}), lotsTable(s, lots));
      var right = el("div", null, el("h3", {text: "working orders (" + orders.length + ")"}), ordersTable(orders));
      if (s.ladder) {
        right.appendChild(el("h3", {text: "price levels (" + s.ladder.rows.length + " of " + s.ladder.levels + ", around the last price)"}));
        right.appendChild(levelsTable(s.ladder));
      }
      sec.appendChild(el("div", {cls: "cols"}, left, right));
    }
    var records = el("div", {cls: "records"});
    Object.keys(s.records || {}).forEach(function (k) {
      records.appendChild(recordBlock("strategy." + s.id + "." + k, k, s.records[k], false));
    });
    if (records.childNodes.length) sec.appendChild(records);
    return sec;
  }

  var lastData = null;
  var live = {state: MODE === "live" ? "connecting" : null};

  function render(data) {
    lastData = data;
    var app = document.getElementById("app");
    var scrolls = {};
    app.querySelectorAll("[data-scroll]").forEach(function (n) { scrolls[n.getAttribute("data-scroll")] = n.scrollTop; });
    var opened = {};  // a record's folded part the reader opened stays open through the next update
    app.querySelectorAll("details[data-fold]").forEach(function (n) { if (n.open) opened[n.getAttribute("data-fold")] = true; });
    var root = document.createDocumentFragment();
    var strategies = data.strategies || [];
    var symbols = strategies.map(function (s) { return s.symbol; }).filter(Boolean);
    var status = data.status || (data.has_data ? "unknown" : "no run yet");
    var head = el("header", null, el("h1", {text: "bothost" + (symbols.length ? " · " + symbols.join(", ") : "")}),
      el("span", {cls: "badge " + status, "data-key": "status", text: status}));
    if (MODE === "live") {
      head.appendChild(el("span", {cls: "meta"}, el("span", {cls: "dot " + (live.state === "live" ? "on" : "off")}),
        el("span", {"data-key": "live", text: live.state})));
    }
    head.appendChild(el("span", {cls: "meta", text: (data.state_dir ? "state " + data.state_dir : "out " + show(data.out_dir)) +
      (data.written_at ? " · status written " + data.written_at : "")}));
    root.appendChild(head);
    if (!data.has_data) {
      root.appendChild(el("p", {cls: "panel muted", text: "No run has written here yet: this page fills in as soon as one does."}));
    }
    if (data.alert) root.appendChild(el("div", {cls: "panel alert", "data-key": "alert"}, el("strong", {text: "alert: "}), data.alert));
    (data.warnings || []).forEach(function (w) {
      root.appendChild(el("div", {cls: "panel warning", "data-key": "warning"}, el("strong", {text: "warning: " + w.title}),
        (w.count > 1 ? " (" + w.count + " times)" : "") + (w.details ? ": " + w.details : "") + (w.first ? " · first " + w.first : "")));
    });
    var pos = data.position || {};
    var cards = el("div", {cls: "cards"});
    ["open_position", "last_price", "realized_pnl", "fees", "net_realized_pnl", "unrealized_pnl", "total_pnl",
     "equity", "market_value", "open_cost", "max_drawdown", "lowest_equity", "peak_capital_committed"].forEach(function (k) {
      if (pos[k] === null && ["max_drawdown", "lowest_equity", "peak_capital_committed"].indexOf(k) >= 0) return;
      cards.appendChild(card("position." + k, LABELS[k] || k, pos[k]));
    });
    cards.appendChild(card("fills.count", "fills", data.fills ? data.fills.count : 0, " "));
    root.appendChild(cards);
    var chart = el("section", {cls: "panel chart"}, el("h3", {text: "price, fills marked"}));
    var holder = el("div", {"data-chart": "price"});
    chart.appendChild(holder);
    chart.appendChild(el("div", {cls: "legend"}, el("span", {cls: "b", text: "BUY fill"}), el("span", {cls: "s", text: "SELL fill"}),
      el("span", {cls: "l", text: "last price"})));
    root.appendChild(chart);
    strategies.forEach(function (s) { root.appendChild(strategySection(s)); });
    var f = data.fills || {recent: []};
    var fills = el("section", {cls: "panel"}, el("h2", null, "fills ", el("span", {cls: "muted", text: "(" + show(f.count) +
      (f.source ? ", from " + f.source : "") + (f.count > f.recent.length ? "; newest " + f.recent.length + " shown" : "") + ")"})));
    fills.appendChild(table([{key: "n", label: "#", num: true}, {key: "time", label: "time (exchange)"}, {key: "side", label: "side"},
      {key: "level", label: "level", num: true}, {key: "quantity", label: "shares", num: true}, {key: "price", label: "price", num: true},
      {key: "commission", label: "commission", num: true}, {key: "order_id", label: "order", num: true}],
      f.recent.map(function (r) {
        return {cells: r, attrs: {"data-fill-n": String(r.n), "class": "fill side-" + r.side}};
      }), {scroll: "fills", empty: "no fill yet", attrs: {"data-table": "fills"}}));
    root.appendChild(fills);
    var sum = data.summary || {};
    var keys = Object.keys(sum);
    if (keys.length) {
      var s2 = el("section", {cls: "panel"}, el("h2", null, "last run ",
        el("span", {cls: "muted", text: data.summary_fresh ? "(summary)" : "(the summary of the previous status.json; this run is still going)"})));
      s2.appendChild(table([{key: "what", label: "what"}, {key: "value", label: "value", num: true}],
        keys.map(function (k) {
          return {cells: {what: k.replace(/_/g, " "), value: sum[k]}, attrs: {"data-key": "summary." + k}};
        }), {attrs: {"data-table": "summary"}}));
      root.appendChild(s2);
    }
    if ((data.problems || []).length) {
      root.appendChild(el("p", {cls: "muted", text: "not read this time: " + data.problems.join("; ")}));
    }
    root.appendChild(el("footer", {text: MODE === "live"
      ? "Read-only: this page shows what the bot writes to its files and updates as it writes them. It cannot place or cancel orders."
      : "report.html: a snapshot written from the run's files; self-contained (nothing is fetched)."}));
    app.textContent = "";
    app.appendChild(root);
    holder.innerHTML = chartSvg(data.chart || {}, f, pos.last_price, holder.clientWidth || app.clientWidth);
    app.querySelectorAll("[data-scroll]").forEach(function (n) {
      var k = n.getAttribute("data-scroll");
      if (scrolls[k]) n.scrollTop = scrolls[k];
    });
    app.querySelectorAll("details[data-fold]").forEach(function (n) { if (opened[n.getAttribute("data-fold")]) n.open = true; });
  }

  function initial() {
    var node = document.getElementById("bothost-data");
    try { return JSON.parse(node.textContent); } catch (e) { return {has_data: false}; }
  }

  render(initial());

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (lastData) render(lastData); }, 150);
  });

  if (MODE === "live" && window.EventSource) {
    var token = new URLSearchParams(window.location.search).get("token");
    var source = new EventSource("events" + (token ? "?token=" + encodeURIComponent(token) : ""));
    source.addEventListener("data", function (e) {
      live.state = "live";
      try { render(JSON.parse(e.data)); } catch (err) { /* a torn message: the next one follows */ }
    });
    source.onopen = function () { live.state = "live"; if (lastData) render(lastData); };
    source.onerror = function () { live.state = "reconnecting"; if (lastData) render(lastData); };
  }
})();

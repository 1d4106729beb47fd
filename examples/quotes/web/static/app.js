// Outrigger quotes: keeps the server-rendered page live. Plain JavaScript,
// no build step. The page embeds the board (#state) with the position of
// every channel it reflects; this script subscribes from those positions
// through the broadcast client (broadcast.js), so it misses nothing between
// the render and the stream, and resumes from its last offsets on another
// replica when its own goes away.
(function () {
  "use strict";

  var state = JSON.parse(document.getElementById("state").textContent);
  var config = JSON.parse(document.getElementById("config").textContent);
  var viewerID = "v-" + randomHex(12);
  var fmtPrice = new Intl.NumberFormat("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  var fmtInt = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});

  // diag is what the page saw, for people (the integrity line) and tests.
  var diag = window.quotesLive = {
    served: state.replica,
    via: null,            // the replica holding this page's connection
    lastVia: null,        // the one that delivered the last quote
    status: "connecting",
    missing: 0,           // offsets skipped within an epoch
    repeated: 0,          // offsets seen twice
    resyncs: 0,
    received: 0,
    symbols: {},          // symbol -> {epoch, offset, ids: [...]}
  };

  var rows = {};
  var colors = {}; // replica -> colour class (replicaColor)
  var replicas = {}; // name -> {f: figures, seen: ms (local clock)}
  var viewers = state.viewers || {symbols: {}, total: 0};
  var lastUpdate = 0;
  var dirty = new Set();
  var frame = 0;
  var skew = Date.now() - Date.parse(state.at); // local minus server clock

  state.symbols.forEach(function (sb) {
    var tr = document.getElementById("row-" + sb.symbol);
    rows[sb.symbol] = {
      tr: tr,
      price: tr.querySelector(".price .p"),
      tick: tr.querySelector(".price .tick"),
      change: tr.querySelector(".change"),
      svg: tr.querySelector(".chart svg"),
      updates: tr.querySelector(".updates"),
      viewers: tr.querySelector(".viewers"),
      by: tr.querySelector(".by span"),
      byDot: tr.querySelector(".by .rdot"),
      points: sb.points.slice(),
      last: sb.last || null,
      count: sb.updates,
      dir: 0,
    };
    diag.symbols[sb.symbol] = {epoch: sb.pos.epoch, offset: sb.pos.offset, ids: []};
    tr.dataset.offset = sb.pos.offset;
    dirty.add(sb.symbol);
  });
  state.replicas.forEach(function (f) {
    replicas[f.replica] = {f: f, seen: Date.parse(f.at) + skew};
  });

  var endpoints = config.endpoints.map(function (e) {
    return e + (e.indexOf("?") < 0 ? "?" : "&") + "viewer=" + viewerID;
  });
  var live = new OutriggerBroadcast(endpoints, {onStatus: onStatus});

  state.symbols.forEach(function (sb) {
    live.subscribe("quotes:" + sb.symbol, function (q, m) { onQuote(sb.symbol, q, m); }, {
      since: sincePos(sb.pos),
      onResync: function () { onResync(sb.symbol); },
    });
  });
  live.subscribe("replicas", onFigures, {since: sincePos(state.replicas_pos)});
  live.subscribe("viewers", function (v) { viewers = v; renderViewers(); }, {since: sincePos(state.viewers_pos)});
  // Our own viewer channel: the Join of this connection names its replica.
  live.subscribe("viewer:" + viewerID, function () {}, {
    presence: true,
    onJoin: function (member) {
      if (member.client === viewerID) {
        diag.via = member.node;
        renderConn();
        renderReplicas();
      }
    },
  });

  schedule();
  renderViewers();
  renderReplicas();
  setInterval(function () { renderAge(); renderReplicas(); renderKPIs(); }, 500);

  function sincePos(p) {
    return p && p.epoch ? {epoch: p.epoch, offset: p.offset} : undefined;
  }

  function onStatus(s) {
    diag.status = s;
    if (s !== "open") diag.via = null;
    renderConn();
  }

  function onQuote(sym, q, m) {
    var d = diag.symbols[sym];
    if (d.epoch === m.epoch) {
      if (m.offset <= d.offset) diag.repeated++;
      else if (m.offset > d.offset + 1) diag.missing += m.offset - d.offset - 1;
    }
    d.epoch = m.epoch;
    d.offset = m.offset;
    d.ids.push(q.id);
    if (d.ids.length > 20000) d.ids.splice(0, d.ids.length - 20000);
    diag.received++;
    diag.lastVia = diag.via;

    // Offsets are publish order; replicas store batches concurrently, so
    // the chart and the latest price go by the quote's time.
    var r = rows[sym];
    var t = Date.parse(q.ts);
    r.count++;
    if (!r.last || t >= Date.parse(r.last.ts)) {
      var prev = r.last ? r.last.price : q.price;
      r.dir = q.price > prev ? 1 : q.price < prev ? -1 : r.dir;
      r.last = q;
    }
    var i = r.points.length;
    while (i > 0 && r.points[i - 1].t > t) i--;
    r.points.splice(i, 0, {t: t, p: q.price});
    if (r.points.length > 120) r.points.splice(0, r.points.length - 120);
    r.tr.dataset.offset = m.offset;
    r.tr.dataset.id = q.id;
    lastUpdate = Date.now();
    dirty.add(sym);
    schedule();
  }

  // The history could not cover a gap (e.g. a long disconnect): reload the
  // symbol's row from the board and carry on from the new position.
  function onResync(sym) {
    diag.resyncs++;
    diag.symbols[sym].epoch = null;
    fetch("v1/board", {headers: {"Accept": "application/json"}})
      .then(function (res) { return res.json(); })
      .then(function (st) {
        st.symbols.forEach(function (sb) {
          if (sb.symbol !== sym) return;
          var r = rows[sym];
          r.points = sb.points.slice();
          r.last = sb.last || r.last;
          dirty.add(sym);
          schedule();
        });
      })
      .catch(function () {});
  }

  function onFigures(f) {
    replicas[f.replica] = {f: f, seen: Date.now()};
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    dirty.forEach(renderRow);
    dirty.clear();
    renderIntegrity();
    renderAge();
    renderKPIs();
  }

  function renderRow(sym) {
    var r = rows[sym];
    if (!r.last) return;
    r.price.textContent = fmtPrice.format(r.last.price);
    r.updates.textContent = fmtInt.format(r.count);
    r.by.textContent = r.last.stored_by;
    r.byDot.className = "rdot " + replicaColor(r.last.stored_by);
    r.tick.textContent = r.dir > 0 ? "▲" : r.dir < 0 ? "▼" : "";
    r.tick.className = "tick " + (r.dir > 0 ? "up" : r.dir < 0 ? "down" : "");
    r.tick.title = r.dir > 0 ? "latest update: up" : r.dir < 0 ? "latest update: down" : "";
    var first = r.points.length ? r.points[0].p : r.last.price;
    var ch = first > 0 ? (r.last.price / first - 1) * 100 : 0;
    r.change.textContent = (ch >= 0 ? "+" : "") + ch.toFixed(2) + "%";
    r.change.className = "num change " + (ch >= 0 ? "up" : "down");
    drawChart(r.svg, r.points, ch >= 0, sym);
  }

  var NS = "http://www.w3.org/2000/svg";

  function drawChart(svg, pts, up, sym) {
    var W = 220, H = 40, pad = 3;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (pts.length < 2) return;
    var lo = Infinity, hi = -Infinity;
    pts.forEach(function (p) { lo = Math.min(lo, p.p); hi = Math.max(hi, p.p); });
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    var n = pts.length;
    var xy = pts.map(function (p, i) {
      var x = (i / (120 - 1)) * W + (W - ((n - 1) / (120 - 1)) * W); // right-aligned: newest at the edge
      var y = pad + (1 - (p.p - lo) / (hi - lo)) * (H - 2 * pad);
      return [x, y];
    });
    var color = up ? "#26c281" : "#f0556a";
    var id = "g-" + sym;
    var defs = el("defs");
    var grad = el("linearGradient", {id: id, x1: 0, y1: 0, x2: 0, y2: 1});
    grad.appendChild(el("stop", {offset: "0%", "stop-color": color, "stop-opacity": 0.32}));
    grad.appendChild(el("stop", {offset: "100%", "stop-color": color, "stop-opacity": 0}));
    defs.appendChild(grad);
    svg.appendChild(defs);
    var line = xy.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" ");
    var x0 = xy[0][0].toFixed(1), x1 = xy[n - 1][0].toFixed(1);
    svg.appendChild(el("polygon", {points: x0 + "," + H + " " + line + " " + x1 + "," + H, fill: "url(#" + id + ")"}));
    svg.appendChild(el("polyline", {points: line, fill: "none", stroke: color, "stroke-width": 1.6, "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke"}));
  }

  function el(name, attrs) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  function renderConn() {
    var pill = document.getElementById("conn");
    pill.dataset.state = diag.status;
    var label = {open: "Live via", connecting: "Connecting", waiting: "Reconnecting", closed: "Disconnected"}[diag.status] || diag.status;
    document.getElementById("conn-label").textContent = label;
    document.getElementById("via").textContent = diag.status === "open" ? (diag.via || "…") : "";
  }

  function renderAge() {
    var age = document.getElementById("last-age");
    if (!lastUpdate) return;
    var s = (Date.now() - lastUpdate) / 1000;
    age.textContent = s < 1 ? Math.round(s * 1000) + " ms ago" : s < 60 ? s.toFixed(1) + " s ago" : Math.round(s / 60) + " min ago";
    document.getElementById("last-via").textContent = diag.lastVia || "–";
  }

  function renderIntegrity() {
    var e = document.getElementById("integrity");
    e.textContent = fmtInt.format(diag.missing) + " missing · " + fmtInt.format(diag.repeated) + " repeated" +
      (diag.resyncs ? " · " + diag.resyncs + " resynced" : "");
    e.className = diag.missing || diag.repeated ? "bad" : "";
  }

  function renderViewers() {
    config.symbols.forEach(function (sym) {
      rows[sym].viewers.textContent = fmtInt.format((viewers.symbols || {})[sym] || 0);
    });
    document.getElementById("kpi-viewers").textContent = fmtInt.format(viewers.total || 0);
  }

  function liveReplicas() {
    var now = Date.now();
    return Object.keys(replicas).filter(function (n) {
      var r = replicas[n];
      return !r.f.stopping && now - r.seen < 3000;
    });
  }

  function renderKPIs() {
    var ingest = 0, storedRate = 0, denied = 0, queue = null, newest = 0;
    liveReplicas().forEach(function (n) {
      var f = replicas[n].f;
      ingest += f.feed_per_s;
      storedRate += f.stored_per_s;
      denied += f.denied;
      if (replicas[n].seen > newest) { newest = replicas[n].seen; queue = f.queue; }
    });
    var stored = 0;
    config.symbols.forEach(function (sym) { stored += diag.symbols[sym].offset || 0; });
    text("kpi-ingest", fmtInt.format(ingest));
    text("kpi-stored", fmtInt.format(stored));
    text("kpi-stored-rate", fmtInt.format(storedRate) + " quotes/s into the database");
    text("kpi-queue", queue === null ? "–" : fmtInt.format(queue));
    text("kpi-denied", fmtInt.format(denied));
  }

  function renderReplicas() {
    var ul = document.getElementById("replicas");
    var names = Object.keys(replicas).sort();
    var alive = new Set(liveReplicas());
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    if (!names.length) {
      var li = document.createElement("li");
      li.className = "empty";
      li.textContent = "Waiting for the replicas' first figures…";
      ul.appendChild(li);
      return;
    }
    names.forEach(function (n) {
      var f = replicas[n].f;
      var li = document.createElement("li");
      li.dataset.replica = n;
      var up = alive.has(n);
      li.className = (up ? "live" : "gone") + (n === diag.served ? " me" : "") + (n === diag.via ? " via" : "");
      var head = div("rname");
      head.appendChild(document.createElement("i")).className = "rdot " + replicaColor(n);
      head.appendChild(document.createTextNode(n));
      var tags = [];
      if (n === diag.served) tags.push("page");
      if (n === diag.via) tags.push("stream");
      if (!up) tags = [f.stopping ? "stopped" : "unreachable"];
      if (tags.length) head.appendChild(span("tag", tags.join(" · ")));
      li.appendChild(head);
      var st = div("rstats");
      stat(st, "feed", up ? fmtInt.format(f.feed_per_s) + "/s" : "–");
      stat(st, "stored", up ? fmtInt.format(f.stored_per_s) + "/s" : "–");
      stat(st, "clients", up ? fmtInt.format(f.connections) : "–");
      stat(st, "CPU", up ? Math.round(f.cpu * 100) + "%" : "–");
      stat(st, "memory", up ? Math.round(f.rss_bytes / 1048576) + " MB" : "–");
      stat(st, "sent", up ? fmtInt.format(f.delivered_per_s) + "/s" : "–");
      li.appendChild(st);
      ul.appendChild(li);
    });
  }

  function stat(parent, k, v) {
    var d = div("");
    var b = document.createElement("b");
    b.textContent = v;
    d.appendChild(b);
    d.appendChild(document.createTextNode(k));
    parent.appendChild(d);
  }

  // replicaColor gives each replica a colour class, the same everywhere.
  function replicaColor(name) {
    if (!(name in colors)) {
      var h = 0;
      for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
      var used = Object.keys(colors).map(function (k) { return colors[k]; });
      var c = h % 6;
      for (var j = 0; j < 6 && used.indexOf("c" + c) >= 0; j++) c = (c + 1) % 6;
      colors[name] = "c" + c;
    }
    return colors[name];
  }

  function div(cls) { var d = document.createElement("div"); if (cls) d.className = cls; return d; }
  function span(cls, t) { var s = document.createElement("span"); if (cls) s.className = cls; s.textContent = t; return s; }
  function text(id, t) { var e = document.getElementById(id); if (e.textContent !== t) e.textContent = t; }

  function randomHex(n) {
    var b = new Uint8Array(n);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x < 16 ? "0" : "") + x.toString(16); }).join("");
  }
})();

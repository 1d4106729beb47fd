// Outrigger broadcast browser client: plain JavaScript, no build step.
// Served by broadcast.ClientJS. Speaks the WebSocket protocol documented in
// the Go package (broadcast/doc.go).
//
//   const live = new OutriggerBroadcast("/live");          // or a list of URLs, tried in turn
//   const sub = live.subscribe("quotes", (data, msg) => render(data), {
//     onResync: (channel) => reload(),                      // history could not cover a gap
//   });
//   live.publish("chat", {text: "hi"}).then((pos) => ...); // if Authorize allows it
//   live.presence("room").then((members) => ...);
//   sub.unsubscribe(); live.close();
//
// After a disconnect it reconnects (exponential back-off with jitter, 0.5s to
// 10s) and subscribes again with "since" = the last position it delivered,
// so nothing is lost and nothing repeated on any server that shares the
// Redis; when the server cannot recover, onResync is called and the
// subscription starts again from the current position.
(function (global) {
  "use strict";

  function OutriggerBroadcast(urls, options) {
    if (!(this instanceof OutriggerBroadcast)) return new OutriggerBroadcast(urls, options);
    this.urls = (Array.isArray(urls) ? urls : [urls]).map(absoluteURL);
    this.options = options || {};
    this.subs = new Map(); // channel -> {handler, opts, pos}
    this.pending = new Map(); // request id -> {resolve, reject}
    this.nextID = 1;
    this.urlIndex = 0;
    this.attempt = 0;
    this.closed = false;
    this.ws = null;
    this.connected = false;
    this.queue = []; // frames waiting for the connection
    this.connect();
  }

  function absoluteURL(u) {
    var url = new URL(u, global.location ? global.location.href : undefined);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    return url.toString();
  }

  OutriggerBroadcast.prototype.status = function (s, detail) {
    this.state = s;
    if (this.options.onStatus) this.options.onStatus(s, detail);
  };

  OutriggerBroadcast.prototype.connect = function () {
    if (this.closed) return;
    var self = this;
    var url = this.urls[this.urlIndex % this.urls.length];
    this.status("connecting", url);
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = function () {
      self.connected = true;
      self.attempt = 0;
      self.status("open", url);
      self.subs.forEach(function (s, channel) { self.sendSubscribe(channel, s); });
      var q = self.queue;
      self.queue = [];
      q.forEach(function (f) { ws.send(f); });
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      self.dispatch(m);
    };
    ws.onclose = function (ev) {
      if (self.ws !== ws) return;
      self.connected = false;
      self.ws = null;
      self.status("closed", ev.code);
      self.pending.forEach(function (p) { p.reject(new Error("connection closed")); });
      self.pending.clear();
      self.retry();
    };
    ws.onerror = function () { /* onclose follows */ };
  };

  OutriggerBroadcast.prototype.retry = function () {
    if (this.closed) return;
    var self = this;
    this.attempt++;
    if (this.attempt > 1 || this.urls.length > 1) this.urlIndex++; // try the next server
    var base = Math.min(10000, 500 * Math.pow(2, Math.max(0, this.attempt - 1)));
    var delay = this.attempt === 1 ? 100 : base / 2 + Math.random() * base / 2;
    this.status("waiting", delay);
    this.timer = setTimeout(function () { self.connect(); }, delay);
  };

  OutriggerBroadcast.prototype.send = function (frame) {
    var text = JSON.stringify(frame);
    if (this.connected && this.ws) this.ws.send(text);
    else this.queue.push(text);
  };

  OutriggerBroadcast.prototype.request = function (frame) {
    var self = this;
    frame.id = String(this.nextID++);
    return new Promise(function (resolve, reject) {
      self.pending.set(frame.id, {resolve: resolve, reject: reject});
      self.send(frame);
    });
  };

  OutriggerBroadcast.prototype.sendSubscribe = function (channel, s) {
    var frame = {op: "subscribe", channel: channel};
    if (s.pos) frame.since = {epoch: s.pos.epoch, offset: s.pos.offset};
    if (s.opts.presence) frame.presence = true;
    s.hadSince = !!s.pos;
    var text = JSON.stringify(frame);
    if (this.connected && this.ws) this.ws.send(text);
  };

  OutriggerBroadcast.prototype.dispatch = function (m) {
    var s = m.channel !== undefined ? this.subs.get(m.channel) : undefined;
    switch (m.op) {
      case "subscribed":
        if (!s) return;
        if (s.hadSince && !m.recovered) this.resync(m.channel, s);
        s.pos = {epoch: m.epoch, offset: m.offset};
        if (s.opts.onSubscribed) s.opts.onSubscribed(m);
        return;
      case "message":
        if (!s) return;
        if (s.pos && s.pos.epoch === m.epoch && m.offset <= s.pos.offset) return; // seen
        s.pos = {epoch: m.epoch, offset: m.offset};
        s.handler(m.data, m);
        return;
      case "join":
      case "leave":
        if (s && s.opts["on" + (m.op === "join" ? "Join" : "Leave")]) s.opts["on" + (m.op === "join" ? "Join" : "Leave")](m.member, m);
        return;
      case "resync":
        if (!s) return;
        s.pos = null;
        this.resync(m.channel, s);
        this.sendSubscribe(m.channel, s);
        return;
      case "presence":
      case "published":
      case "unsubscribed":
      case "error":
        var p = m.id !== undefined ? this.pending.get(m.id) : undefined;
        if (p) {
          this.pending.delete(m.id);
          if (m.op === "error") p.reject(Object.assign(new Error(m.message), {code: m.code}));
          else if (m.op === "presence") p.resolve(m.members);
          else p.resolve(m);
        } else if (m.op === "error" && this.options.onError) {
          this.options.onError(m);
        }
        return;
    }
  };

  OutriggerBroadcast.prototype.resync = function (channel, s) {
    if (s.opts.onResync) s.opts.onResync(channel);
    else if (this.options.onResync) this.options.onResync(channel);
  };

  // subscribe delivers the channel's messages to handler(data, frame).
  // opts: since {epoch, offset}, presence (also join/leave), onJoin(member),
  // onLeave(member), onResync(channel), onSubscribed(frame).
  OutriggerBroadcast.prototype.subscribe = function (channel, handler, opts) {
    var self = this;
    opts = opts || {};
    var s = {handler: handler, opts: opts, pos: opts.since || null};
    this.subs.set(channel, s);
    this.sendSubscribe(channel, s);
    return {
      unsubscribe: function () {
        if (self.subs.get(channel) !== s) return;
        self.subs.delete(channel);
        if (self.connected) self.send({op: "unsubscribe", channel: channel});
      },
      position: function () { return s.pos; },
    };
  };

  OutriggerBroadcast.prototype.publish = function (channel, data) {
    return this.request({op: "publish", channel: channel, data: data});
  };

  OutriggerBroadcast.prototype.presence = function (channel) {
    return this.request({op: "presence", channel: channel});
  };

  OutriggerBroadcast.prototype.close = function () {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.status("closed", 1000);
  };

  global.OutriggerBroadcast = OutriggerBroadcast;
})(typeof window !== "undefined" ? window : this);

// vigil.js: the browser client of vigil (github.com/vigilhq/vigil).
// One ES module, no dependencies. Same semantics as the Go client package
// `client`, following docs/PROTOCOL.md. Types: vigil.d.ts.

export const CONNECTING = "connecting";
export const OPEN = "open";
export const RECONNECTING = "reconnecting";
export const OFFLINE = "offline";
export const CLOSED = "closed";

const G = globalThis;

// retryable reports whether to reconnect after close code `code`
// (docs/PROTOCOL.md): 1000, 1007, 1008, 1009 and 4500-4999 mean no.
export const retryable = (code) =>
  !(code == 1000 || (code > 1006 && code < 1010) || (code >= 4500 && code < 5000));

// backoff is the delay before attempt n: full jitter over
// [0, min(max, base * 2^n)).
export const backoff = (n, base = 500, max = 30000, rnd = Math.random) =>
  rnd() * Math.min(max, base * 2 ** n);

// DEFAULTS are the options' defaults, shared with the Go client (pinned by
// testdata/protocol.json: vigil.test.js and the Go test TestProtocolFile).
export const DEFAULTS = Object.freeze({
  pingInterval: 25000, // ms of silence before an application ping
  pongTimeout: 10000, // ms to wait for any message after a ping
  connectTimeout: 10000, // ms for a socket to open
  ping: "ping",
  pong: "pong",
  backoffBase: 500,
  backoffMax: 30000,
  stableAfter: 10000, // ms open before the backoff starts again from the base
  drainWindow: 5000, // spread of the first attempt after 1001
  maxAttempts: 0, // 0: never give up
  queue: 64, // messages held while not open; 0: none
  awayHidden: 60000, // ms hidden before the user counts as away; 0: never
  awayIdle: 300000, // ms without input before the user counts as away; 0: never
});

const on = (t, type, fn) => t && t.addEventListener && t.addEventListener(type, fn);
const off = (t, type, fn) => t && t.removeEventListener && t.removeEventListener(type, fn);

// Base: an EventTarget with a state, 'statechange' and per-state events, the
// browser's online/offline/visibility signals, and the user's activity: away
// after awayHidden hidden or awayIdle without input, active again on input
// or on becoming visible ('activity' event, detail {away, idle}), reported
// to the server by _report (docs/PROTOCOL.md, "Activity").
class Base extends EventTarget {
  constructor(opts) {
    super();
    this.opts = opts = { ...DEFAULTS, ...opts };
    this.state = CONNECTING;
    // attempt counts the failed attempts in a row: detail.attempt and what
    // maxAttempts limits. A drop is not an attempt. _step is the backoff
    // exponent: the reconnects since the last stable connection, which
    // keeps growing across connections that drop before stableAfter.
    this.attempt = this._step = 0;
    this._now = opts.now || Date.now;
    this._win = "window" in opts ? opts.window : G.window;
    this._doc = "document" in opts ? opts.document : G.document;
    this._h = {
      online: () => this._online(),
      offline: () => this._offline(),
      visibilitychange: () => (this._hidden() ? ((this._input = this._now()), this._ac()) : this._active(), this._visible()),
      pageshow: () => this._visible(),
      pagehide: () => this._pagehide(),
    };
    this.away = false;
    this._input = this._now();
    for (const k of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"]) this._h[k] = () => this._active();
    for (const k in this._h) on(k == "visibilitychange" ? this._doc : this._win, k, this._h[k]);
    this._ac();
  }
  _hidden() {
    return !!this._doc && this._doc.visibilityState == "hidden";
  }
  // _ac decides whether the user is away, and checks again when that may
  // change; an away user comes back through _active, not a timer.
  _ac() {
    clearTimeout(this._at);
    const o = this.opts, idle = this._now() - this._input;
    let wait = o.awayIdle > 0 ? o.awayIdle - idle : 1 / 0;
    if (this._hidden() && o.awayHidden > 0) wait = Math.min(wait, o.awayHidden - idle);
    if (wait <= 0) this._became(true);
    else if (wait < 1 / 0) this._at = setTimeout(() => this._ac(), wait);
  }
  // _active records input (or a page becoming visible): an away user is back.
  _active() {
    this._input = this._now();
    if (this.away && this.state != CLOSED) this._became(false), this._ac();
  }
  _became(away) {
    if (this.away == away) return;
    this.away = away;
    this.dispatchEvent(new CustomEvent("activity", { detail: { away, idle: this._idle() } }));
    this._report();
  }
  // _idle is how long the user has been idle, in whole ms: 0 when active.
  _idle() {
    return this.away ? Math.max(0, Math.round(this._now() - this._input)) : 0;
  }
  _isOffline() {
    const n = this.opts.navigator || G.navigator;
    return !!n && n.onLine === false;
  }
  _set(state, detail = {}) {
    const prev = this.state;
    this.state = state;
    detail = { state, prev, attempt: this.attempt, ...detail };
    this.dispatchEvent(new CustomEvent("statechange", { detail }));
    if (prev != state) this.dispatchEvent(new CustomEvent(state, { detail }));
  }
  _unlisten() {
    for (const k in this._h) off(k == "visibilitychange" ? this._doc : this._win, k, this._h[k]);
    clearTimeout(this._timer);
    clearTimeout(this._at);
  }
  // _ended records the end of an attempt or connection: a failed attempt
  // counts; a drop does not, and restarts the backoff if it was stable.
  _ended() {
    if (this.state != OPEN) this.attempt++;
    else if (this._now() - this._opened >= this.opts.stableAfter) this._step = 0;
  }
  // _open announces an open connection, then starts the count again.
  _open() {
    this._opened = this._now();
    this._set(OPEN);
    this.attempt = 0;
  }
  // _delay returns the wait before the next attempt and counts a backoff
  // step, or -1 when maxAttempts attempts in a row have failed.
  _delay(code) {
    const o = this.opts;
    if (o.maxAttempts > 0 && this.attempt >= o.maxAttempts) return -1;
    const n = this._step++;
    return code == 1001 && !n ? Math.random() * o.drainWindow : backoff(n, o.backoffBase, o.backoffMax);
  }
  _pagehide() {}
  _report() {}
}

// VigilSocket is a WebSocket that stays connected: application pings,
// dead-server detection by message age, reconnects with full-jitter backoff,
// offline awareness, and a clean close. Events: 'statechange' and one per
// state (detail: {state, prev, attempt, delay, code, reason}), 'message'
// (MessageEvent), 'open'.
export class VigilSocket extends Base {
  constructor(url, opts = {}) {
    super(opts);
    this.url = url;
    this._q = [];
    this._ws = null;
    this._WS = opts.WebSocket || G.WebSocket;
    this._isOffline() ? this._set(OFFLINE) : this._connect();
  }

  // send sends data, or queues it while not open. It returns false when
  // the message was neither sent nor queued.
  send(data) {
    const ws = this._ws;
    if (this.state == OPEN && ws && ws.readyState == 1) return ws.send(data), true;
    if (this.state == CLOSED || this._q.length >= this.opts.queue) return false;
    this._q.push(data);
    return true;
  }

  // close closes the connection cleanly and never reconnects.
  close(code = 1000, reason = "") {
    if (this.state == CLOSED) return;
    const ws = this._ws;
    this._stop();
    if (ws) ws.close(code, reason);
    this._set(CLOSED, { code, reason });
  }

  // _msg is the activity message of docs/PROTOCOL.md.
  _msg() {
    return this.away ? "vigil:away " + this._idle() : "vigil:active";
  }

  _report() {
    const ws = this._ws;
    if (this.state == OPEN && ws && ws.readyState == 1) ws.send(this._msg());
  }

  _stop() {
    this._unlisten();
    clearInterval(this._tick);
    this._ws = null;
    this._q = [];
  }

  _connect() {
    clearTimeout(this._timer);
    if (this._ws || this.state == CLOSED) return; // never two sockets
    const o = this.opts;
    const ws = (this._ws = new this._WS(this.url, o.protocols));
    this._started = this._last = this._checked = this._now();
    this._pinged = -1;
    ws.onopen = () => {
      if (ws != this._ws) return;
      this._last = this._now();
      if (this.away) ws.send(this._msg()); // a new session starts active
      for (const m of this._q.splice(0)) ws.send(m);
      this._open();
    };
    ws.onmessage = (e) => {
      if (ws != this._ws) return;
      this._last = this._now(); // any message is proof of life
      if (e.data !== o.pong) this.dispatchEvent(new MessageEvent("message", { data: e.data }));
    };
    ws.onclose = (e) => ws == this._ws && this._dropped(e.code, e.reason);
    clearInterval(this._tick);
    this._tick = setInterval(() => this._check(), Math.max(100, Math.min(o.pingInterval, o.pongTimeout) / 4));
  }

  // _check looks at the age of the last message rather than trusting a
  // timer to fire on time: hidden tabs run timers about once a minute.
  _check() {
    const ws = this._ws, o = this.opts, now = this._now();
    // Woken late (a hidden, frozen or suspended page): the messages that
    // arrived meanwhile may not have been handled yet, so probe afresh
    // instead of judging on stale evidence.
    const late = now - this._checked > o.pongTimeout;
    this._checked = now;
    if (!ws) return;
    if (late && ws.readyState == 1) return this._ping();
    if (ws.readyState == 0) {
      if (now - this._started > o.connectTimeout) this._kill();
    } else if (this._pinged > this._last) {
      if (now - this._pinged >= o.pongTimeout) this._kill();
    } else if (now - this._last >= o.pingInterval) this._ping();
  }

  // _ping sends an application ping, and checks again once pongTimeout is
  // over: the ticks alone could see it a tick late.
  _ping() {
    const ws = this._ws;
    if (!ws || ws.readyState != 1) return;
    ws.send(this.opts.ping);
    this._pinged = this._now();
    clearTimeout(this._pt);
    this._pt = setTimeout(() => this._check(), this.opts.pongTimeout + 1);
  }

  // _abandon drops the socket without waiting for its close event (a dead
  // server never answers the close handshake), so it cannot act again.
  _abandon(code) {
    const ws = this._ws;
    this._ws = null;
    clearInterval(this._tick);
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(code);
      } catch {}
    }
  }

  // _kill abandons a dead socket and reconnects once.
  _kill() {
    this._abandon(4000);
    this._dropped(1006, "timeout");
  }

  _dropped(code, reason) {
    this._ws = null;
    clearInterval(this._tick);
    if (this.state == CLOSED) return;
    this._ended();
    if (!retryable(code)) return this._stop(), this._set(CLOSED, { code, reason });
    if (this._isOffline()) return this._set(OFFLINE, { code, reason });
    const delay = this._delay(code);
    if (delay < 0) return this._stop(), this._set(CLOSED, { code, reason, gaveUp: true });
    this._due = this._now() + delay;
    this._set(RECONNECTING, { code, reason, delay });
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _online() {
    if (this.state == OFFLINE || this.state == RECONNECTING) {
      this.attempt = 0;
      this._connect(); // at once: the network is back
    } else if (this.state == OPEN) this._ping(); // probe a socket that may be dead
  }

  _offline() {
    if (this.state == CLOSED) return;
    clearTimeout(this._timer);
    this._abandon();
    this._set(OFFLINE);
  }

  _visible() {
    if (this._doc && this._doc.visibilityState == "hidden") return;
    this._check();
    // A hidden tab's reconnect timer may be late: go now if it is due.
    if (this.state == RECONNECTING && !this._ws && this._now() >= this._due) this._connect();
  }
}

// VigilHeartbeat keeps a page online without a WebSocket: it POSTs to
// `${prefix}/heartbeat` every interval_ms the server returns, and sends a
// beacon to `${prefix}/leave` on pagehide. States and events as VigilSocket.
export class VigilHeartbeat extends Base {
  constructor(prefix, opts = {}) {
    super(opts);
    this.prefix = prefix.replace(/\/$/, "");
    this.session = opts.session || "tab-" + Math.random().toString(36).slice(2, 12);
    this.interval = 0;
    this._fetch = opts.fetch || G.fetch.bind(G);
    this._isOffline() ? this._set(OFFLINE) : this._beat();
  }

  _body() {
    const b = { session: this.session, ts: this._now(), state: this.away ? "away" : "active" };
    if (this.away) b.idle_ms = this._idle();
    return JSON.stringify(b);
  }

  // A change of activity is sent at once, with a heartbeat.
  _report() {
    if (this.state == OPEN) this._beat();
  }

  async _beat() {
    clearTimeout(this._timer);
    if (this.state == CLOSED || this.state == OFFLINE) return;
    this._sent = this._now();
    let res;
    try {
      res = await this._fetch(this.prefix + "/heartbeat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: this._body(),
        credentials: "same-origin",
      });
    } catch {
      return this._failed(0, 0);
    }
    if (this.state == CLOSED) return;
    if (res.ok) {
      const j = await res.json().catch(() => ({}));
      this.interval = j.interval_ms || this.opts.pingInterval;
      this.ttl = j.ttl_ms;
      if (this.state != OPEN) this._open();
      this._timer = setTimeout(() => this._beat(), this.interval);
    } else this._failed(res.status, +res.headers.get("Retry-After") || 0);
  }

  // _failed handles a failed heartbeat: while open, it is a drop.
  _failed(status, retryAfter) {
    if (this.state == CLOSED) return;
    this._ended();
    if (status && status != 408 && status != 429 && status < 500) return this.stop(false, status);
    if (this._isOffline()) return this._set(OFFLINE);
    const delay = this._delay(0);
    if (delay < 0) return this.stop(false, status);
    this._set(RECONNECTING, { status, delay: delay + retryAfter * 1000 });
    this._timer = setTimeout(() => this._beat(), delay + retryAfter * 1000);
  }

  // stop ends the heartbeats; with leave (default), it tells the server the
  // session has ended.
  stop(leave = true, status) {
    if (this.state == CLOSED) return;
    this._unlisten();
    if (leave) this._leave();
    this._set(CLOSED, { status });
  }

  _leave() {
    const n = this.opts.navigator || G.navigator, url = this.prefix + "/leave";
    const body = JSON.stringify({ session: this.session });
    if (!(n && n.sendBeacon && n.sendBeacon(url, body)))
      this._fetch(url, { method: "POST", body, keepalive: true, credentials: "same-origin" }).catch(() => {});
  }

  _pagehide() {
    this._leave();
  }

  _online() {
    if (this.state != OPEN && this.state != CLOSED) (this.state = CONNECTING), (this.attempt = 0), this._beat();
  }

  _offline() {
    if (this.state == CLOSED) return;
    clearTimeout(this._timer);
    this._set(OFFLINE);
  }

  // A hidden tab's timer may have fired late: beat at once if one is due.
  _visible() {
    if (this.state == OPEN && this._now() - this._sent >= this.interval) this._beat();
  }
}

// PresenceFeed follows the server's live presence feed (Server-Sent
// Events). Version 1 (no room, ids or window option): `online` is a Map of
// client ID to {id, since}, replaced by each snapshot and updated by each
// online and offline. Events: 'snapshot', 'online', 'offline', 'away', 'back' (detail:
// the client), the rooms' 'join', 'leave' and 'update' (detail: {id, room,
// session, meta, reason, seq}), and 'change' after each. Per client, events
// come in seq order; late ones are dropped.
//
// With opts.room, opts.ids (a list of client IDs) or opts.coalesce (the
// whole node), it follows the coalesced feed: `members` is a Map of ID to
// {id, state, sessions, meta, since, last_seen, last_active}, with `count`
// and `countOnly`; at most one message per window (opts.window ms). Events:
// 'snapshot', 'diff' (the message), then for each member named 'join' or
// 'leave' (room), 'online' or 'offline' (node, ids), 'away', 'back',
// 'update' (new meta) (detail: the member, or {id} when it left), and
// 'change' (detail: members) after each message.
export class PresenceFeed extends EventTarget {
  constructor(url, opts = {}) {
    super();
    this.online = new Map();
    this._seq = new Map();
    const { room, ids, window: w, coalesce } = opts;
    const q = new URLSearchParams();
    if (room != null) q.set("room", room);
    if (ids) q.set("ids", [].concat(ids).join(","));
    if (w) q.set("window", w);
    if (coalesce) q.set("v", 2);
    const v2 = (this.coalesced = !!(room != null || ids || w || coalesce));
    if (v2) url += (url.includes("?") ? "&" : "?") + q;
    const ES = opts.EventSource || G.EventSource;
    const es = (this._es = new ES(url, { withCredentials: !!opts.withCredentials }));
    const fire = (type, detail) => this.dispatchEvent(new CustomEvent(type, { detail }));
    const emit = (type, detail) => {
      fire(type, detail);
      fire("change", this.online);
    };
    const listen = (type, fn) => es.addEventListener(type, (e) => fn(JSON.parse(e.data)));
    if (v2) {
      listen("snapshot", (s) => {
        this.members = this.online = new Map(s.members.map((m) => [m.id, m]));
        this.count = s.count;
        this.countOnly = s.count_only;
        emit("snapshot", s);
      });
      listen("diff", (d) => {
        const m = this.members, ev = [];
        if (d.count != null) this.count = d.count;
        for (const c of d.set || []) {
          const p = m.get(c.id), off = (x) => !x || x.state == "offline";
          m.set(c.id, c);
          if (room != null ? !p : off(p) != off(c)) ev.push([room != null ? "join" : off(c) ? "offline" : "online", c]);
          if (p && p.state != c.state && !off(p) && !off(c)) ev.push([c.state == "away" ? "away" : "back", c]);
          if (p && JSON.stringify(p.meta) != JSON.stringify(c.meta)) ev.push(["update", c]);
        }
        for (const id of d.gone || []) m.delete(id), ev.push([room != null ? "leave" : "offline", { id }]);
        fire("diff", d);
        for (const [t, c] of ev) fire(t, c);
        fire("change", m);
      });
      return;
    }
    listen("snapshot", (s) => {
      this.online = new Map(s.clients.map((c) => [c.id, c]));
      this._seq.clear();
      emit("snapshot", s);
    });
    for (const type of ["online", "offline", "join", "leave", "update", "away", "back"])
      listen(type, (c) => {
        if (c.seq <= (this._seq.get(c.id) || 0)) return; // a duplicate or late event
        this._seq.set(c.id, c.seq);
        if (type == "online") this.online.set(c.id, c);
        if (type == "offline") this.online.delete(c.id);
        emit(type, c);
      });
  }

  close() {
    this._es.close();
  }
}

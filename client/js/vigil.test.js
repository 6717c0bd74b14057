// Node test suite of vigil.js: node --test client/js (no browser). A fake
// WebSocket and mocked timers drive the state machine; the browser tests
// (Go, build tag browser) run the real thing in Chromium.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import {
  VigilSocket, VigilHeartbeat, PresenceFeed, retryable, backoff, DEFAULTS,
  CONNECTING, OPEN, RECONNECTING, OFFLINE, CLOSED,
} from "./vigil.js";

const dir = fileURLToPath(new URL(".", import.meta.url));

// FakeWS records every socket made; at most one may be live at a time.
class FakeWS {
  static all = [];
  static live() { return FakeWS.all.filter((s) => s.readyState < 2); }
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWS.all.push(this);
    assert.ok(FakeWS.live().length <= 1, "two sockets at once");
  }
  send(d) { assert.equal(this.readyState, 1, "send on a socket not open"); this.sent.push(d); }
  close(code = 1005, reason = "") { if (this.readyState > 1) return; this.readyState = 2; this.closedWith = code; }
  // Test side.
  open() { this.readyState = 1; this.onopen?.({}); }
  recv(data) { this.onmessage?.({ data }); }
  drop(code = 1006, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
}

let win, doc, nav;
beforeEach(() => {
  FakeWS.all = [];
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
  win = new EventTarget();
  doc = new EventTarget();
  doc.visibilityState = "visible";
  nav = { onLine: true };
});
afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

const opts = (o = {}) => ({ WebSocket: FakeWS, window: win, document: doc, navigator: nav, ...o });
const last = () => FakeWS.all[FakeWS.all.length - 1];
// Advance in small steps: a mocked tick moves the clock to its end before it
// runs the timers due, which would look to vigil.js like a page woken late.
const tick = (ms) => {
  for (let done = 0; done < ms; done += 25) mock.timers.tick(Math.min(25, ms - done));
};
function record(t) {
  const states = [];
  t.addEventListener("statechange", (e) => states.push(e.detail));
  return states;
}

test("retryable follows the close-code table", () => {
  const table = { 1000: false, 1001: true, 1006: true, 1007: false, 1008: false, 1009: false, 1011: true, 1012: true, 1013: true, 4000: true, 4001: true, 4499: true, 4500: false, 4501: false, 4999: false, 3000: true };
  for (const [code, want] of Object.entries(table)) assert.equal(retryable(+code), want, `code ${code}`);
});

// testdata/protocol.json holds the Go client's defaults and close-code
// decisions (kept equal to them by the Go test TestProtocolFile): a change
// on one side fails the other's test.
test("defaults and close codes agree with the Go client", () => {
  const p = JSON.parse(readFileSync(dir + "testdata/protocol.json", "utf8"));
  for (const [k, v] of Object.entries(p.defaults)) assert.equal(DEFAULTS[k], v, `DEFAULTS.${k}`);
  for (const [code, want] of Object.entries(p.retryable)) assert.equal(retryable(+code), want, `retryable(${code})`);
});

test("backoff is full jitter under a cap", () => {
  assert.equal(backoff(0, 500, 30000, () => 0), 0);
  assert.ok(backoff(0, 500, 30000, () => 0.999999) < 500);
  assert.ok(backoff(3, 500, 30000, () => 0.999999) < 4000);
  assert.ok(backoff(50, 500, 30000, () => 0.999999) < 30000);
  let sum = 0;
  for (let i = 0; i < 10000; i++) sum += backoff(2, 500, 30000);
  assert.ok(Math.abs(sum / 10000 - 1000) < 50, "mean of uniform [0, 2000)");
});

test("connects, delivers messages, hides pongs, pings when silent", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 1000, pongTimeout: 500 }));
  const states = record(s), msgs = [];
  s.addEventListener("message", (e) => msgs.push(e.data));
  assert.equal(s.state, CONNECTING);
  last().open();
  assert.equal(s.state, OPEN);
  last().recv("hello");
  last().recv("pong");
  assert.deepEqual(msgs, ["hello"]);
  tick(900);
  assert.deepEqual(last().sent, []); // not silent long enough
  tick(250);
  assert.deepEqual(last().sent, ["ping"]);
  last().recv("pong");
  tick(400);
  assert.equal(s.state, OPEN);
  assert.deepEqual(states.map((d) => d.state), [OPEN]);
  s.close();
  assert.equal(s.state, CLOSED);
  assert.equal(last().closedWith, 1000);
});

test("a ping off the tick still gets its deadline on time", () => {
  // Ticks every 125 ms; the probe ping after 'online' goes out between
  // two, and its deadline falls between two: the socket must be dropped
  // then, not at the tick after.
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 1000, pongTimeout: 500 }));
  last().open();
  tick(610);
  win.dispatchEvent(new Event("online")); // probes the open socket: ping at 610
  assert.deepEqual(last().sent, ["ping"]);
  tick(502);
  assert.equal(s.state, RECONNECTING);
  s.close();
});

test("a dead server is dropped after pongTimeout and replaced by exactly one socket", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 1000, pongTimeout: 500, backoffBase: 100 }));
  const states = record(s);
  const first = last();
  first.open();
  tick(1250); // ping sent
  assert.deepEqual(first.sent, ["ping"]);
  tick(500); // no answer
  assert.equal(s.state, RECONNECTING);
  assert.equal(states.at(-1).code, 1006);
  // The abandoned socket's late close event must not start a second reconnect
  // (the classic heartCheck bug).
  first.drop(1006);
  tick(200);
  assert.equal(FakeWS.all.length, 2);
  assert.equal(FakeWS.live().length, 1);
  last().open();
  assert.equal(s.state, OPEN);
  s.close();
});

test("hidden tab: timers fire once a minute, replies keep it open", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 25000, pongTimeout: 10000 }));
  last().open();
  const ws = last();
  // Throttled: move the clock a minute at a time with no interval ticks in
  // between, then one tick; the ping sent on it is answered at once.
  for (let i = 0; i < 5; i++) {
    mock.timers.setTime(Date.now() + 60000);
    tick(2500);
    assert.equal(ws.sent.filter((m) => m == "ping").length, i + 1, "one ping per late tick");
    ws.recv("pong");
  }
  assert.equal(s.state, OPEN);
  assert.equal(FakeWS.all.length, 1);
  s.close();
});

test("close codes: kicked stops, going away reconnects within the drain window", () => {
  // A backoff of hours: a first delay under 300ms can only come from drainWindow.
  const s = new VigilSocket("ws://x/ws", opts({ drainWindow: 300, backoffBase: 1e7, backoffMax: 1e7 }));
  const states = record(s);
  last().open();
  last().drop(1001, "shutdown");
  const d = states.at(-1);
  assert.equal(d.state, RECONNECTING);
  assert.ok(d.delay >= 0 && d.delay < 300, `delay ${d.delay}`);
  tick(300);
  assert.equal(FakeWS.all.length, 2);
  last().open();
  last().drop(4500, "kicked");
  assert.equal(s.state, CLOSED);
  assert.equal(states.at(-1).code, 4500);
  tick(60000);
  assert.equal(FakeWS.all.length, 2, "no attempt after 4500");
});

test("backoff grows per failed attempt and resets after a stable connection", () => {
  const s = new VigilSocket("ws://x/ws", opts({ backoffBase: 100, backoffMax: 1000, stableAfter: 5000 }));
  const states = record(s);
  last().open();
  for (let i = 0; i < 6; i++) {
    last().drop(1006); // first the drop, then failed attempts
    const d = states.at(-1);
    assert.equal(d.attempt, i);
    assert.ok(d.delay < Math.min(1000, 100 * 2 ** i), `attempt ${i}: ${d.delay}`);
    tick(1000);
  }
  last().open();
  tick(5000);
  last().drop(1006);
  assert.ok(states.at(-1).delay < 100, "reset after stableAfter");
  s.close();
});

// The attempt counting of the Go client (client.Config.MaxAttempts,
// StateChange.Attempt): detail.attempt is the failed attempts in a row, a
// drop is not an attempt, an attempt that opens succeeds however soon it
// drops, and maxAttempts is the number of attempts made before giving up,
// at first and after each drop alike.
const attempts = (states) => states.filter((d) => d.state == RECONNECTING).map((d) => d.attempt);
// failAll fails each attempt at once until the socket gives up (at most n).
const failAll = (s, n = 10) => {
  for (let i = 0; i < n && s.state != CLOSED; i++) tick(20), last().drop(1006);
};

test("maxAttempts: the first connect makes exactly maxAttempts attempts", () => {
  const s = new VigilSocket("ws://x/ws", opts({ maxAttempts: 3, backoffBase: 10, backoffMax: 10 }));
  const states = record(s);
  last().drop(1006);
  failAll(s);
  assert.equal(s.state, CLOSED);
  assert.equal(FakeWS.all.length, 3, "attempts");
  assert.deepEqual(attempts(states), [1, 2]);
  assert.equal(states.at(-1).attempt, 3);
  assert.ok(states.at(-1).gaveUp);
});

test("maxAttempts: after a drop, exactly maxAttempts attempts, the first announced as attempt 0", () => {
  const s = new VigilSocket("ws://x/ws", opts({ maxAttempts: 3, backoffBase: 10, backoffMax: 10 }));
  const states = record(s);
  last().open();
  last().drop(1006);
  assert.equal(states.at(-1).state, RECONNECTING);
  assert.equal(states.at(-1).attempt, 0, "a drop is not an attempt");
  failAll(s);
  assert.equal(s.state, CLOSED);
  assert.equal(FakeWS.all.length - 1, 3, "attempts after the drop");
  assert.deepEqual(attempts(states), [0, 1, 2]);
  assert.equal(states.at(-1).attempt, 3);
  assert.ok(states.at(-1).gaveUp);
});

test("maxAttempts: an attempt that opens succeeds, however soon it drops", () => {
  const s = new VigilSocket("ws://x/ws", opts({ maxAttempts: 3, backoffBase: 10, backoffMax: 10 }));
  const states = record(s);
  last().open();
  last().drop(1006);
  tick(20), last().drop(1006); // two failed attempts
  tick(20), last().drop(1006);
  tick(20), last().open(); // the third opens: the count starts again
  assert.equal(states.at(-1).attempt, 2, "open reports the attempts that failed before it");
  last().drop(1006);
  failAll(s);
  assert.equal(FakeWS.all.length, 1 + 3 + 3);
  assert.deepEqual(attempts(states), [0, 1, 2, 0, 1, 2]);
  assert.equal(s.state, CLOSED);
});

test("a server that accepts and drops at once: no failed attempts, yet growing delays", () => {
  mock.method(Math, "random", () => 0.999); // delays at their ceilings
  const s = new VigilSocket("ws://x/ws", opts({ maxAttempts: 3, backoffBase: 100, backoffMax: 1e6, stableAfter: 5000 }));
  const states = record(s);
  const delays = [];
  for (let i = 0; i < 8; i++) {
    last().open();
    tick(50);
    last().drop(1006);
    const d = states.at(-1);
    assert.equal(d.state, RECONNECTING, `drop ${i}`);
    assert.equal(d.attempt, 0, `drop ${i}: a drop is not an attempt`);
    delays.push(d.delay);
    tick(d.delay + 25);
  }
  for (let i = 1; i < delays.length; i++) assert.ok(delays[i] > delays[i - 1], `delays ${delays}`);
  assert.ok(delays.at(-1) > 100 * 2 ** 6, `delays ${delays}`);
  last().open();
  tick(5000);
  last().drop(1006);
  assert.ok(states.at(-1).delay < 100, "the backoff starts again after stableAfter");
  s.close();
});

test("send queues while reconnecting and flushes in order", () => {
  const s = new VigilSocket("ws://x/ws", opts({ queue: 2, backoffBase: 10 }));
  assert.ok(s.send("a")); // before the first open
  last().open();
  assert.deepEqual(last().sent, ["a"]);
  last().drop(1006);
  assert.ok(s.send("b"));
  assert.ok(s.send("c"));
  assert.equal(s.send("d"), false, "queue full");
  tick(20);
  last().open();
  assert.deepEqual(last().sent, ["b", "c"]);
  s.close();
  assert.equal(s.send("e"), false);
});

test("offline pauses, online reconnects at once", () => {
  const s = new VigilSocket("ws://x/ws", opts({ backoffBase: 10000 }));
  last().open();
  nav.onLine = false;
  win.dispatchEvent(new Event("offline"));
  assert.equal(s.state, OFFLINE);
  assert.equal(FakeWS.live().length, 0);
  tick(120000);
  assert.equal(FakeWS.all.length, 1, "no attempts while offline");
  nav.onLine = true;
  win.dispatchEvent(new Event("online"));
  assert.equal(FakeWS.all.length, 2, "reconnects at once");
  last().open();
  assert.equal(s.state, OPEN);
  s.close();
});

test("a page becoming visible runs a due reconnect at once", () => {
  const s = new VigilSocket("ws://x/ws", opts({ backoffBase: 1000 }));
  last().open();
  last().drop(1006);
  // The timer is throttled: time passes but it does not fire.
  mock.timers.setTime(Date.now() + 5000);
  assert.equal(FakeWS.all.length, 1);
  doc.dispatchEvent(new Event("visibilitychange"));
  assert.equal(FakeWS.all.length, 2);
  s.close();
});

test("close() never reconnects, even when the close event comes later", () => {
  const s = new VigilSocket("ws://x/ws", opts());
  const states = record(s);
  last().open();
  const ws = last();
  s.close(1000, "bye");
  ws.drop(1006); // a retryable code: only close() stops the reconnect
  tick(120000);
  assert.equal(FakeWS.all.length, 1);
  assert.equal(s.state, CLOSED);
  assert.deepEqual(states.map((d) => d.state), [OPEN, CLOSED]);
});

test("HTTP heartbeat: server interval, Retry-After, leave beacon on pagehide", async () => {
  const calls = [];
  let reply = { status: 200, body: { online: true, interval_ms: 2000, ttl_ms: 5000 } };
  const fetch = async (url, init) => {
    calls.push({ url, body: JSON.parse(init.body) });
    const r = reply;
    return { ok: r.status == 200, status: r.status, headers: new Map(Object.entries(r.headers || {})), json: async () => r.body };
  };
  const beacons = [];
  nav.sendBeacon = (url, data) => (beacons.push({ url, data: JSON.parse(data) }), true);
  const flush = () => new Promise((r) => setImmediate(r));
  const h = new VigilHeartbeat("/presence/", opts({ fetch, session: "tab-1" }));
  await flush();
  assert.equal(h.state, OPEN);
  assert.equal(h.interval, 2000);
  assert.equal(calls[0].url, "/presence/heartbeat");
  assert.equal(calls[0].body.session, "tab-1");
  tick(1999);
  assert.equal(calls.length, 1);
  reply = { status: 503, headers: { "Retry-After": "3" } };
  tick(1);
  await flush();
  assert.equal(calls.length, 2);
  assert.equal(h.state, RECONNECTING);
  tick(2999);
  await flush();
  assert.equal(calls.length, 2, "waits for Retry-After");
  reply = { status: 200, body: { interval_ms: 2000 } };
  tick(600);
  await flush();
  assert.equal(calls.length, 3);
  assert.equal(h.state, OPEN);
  win.dispatchEvent(new Event("pagehide"));
  assert.deepEqual(beacons, [{ url: "/presence/leave", data: { session: "tab-1" } }]);
  reply = { status: 401 };
  tick(2000);
  await flush();
  assert.equal(h.state, CLOSED, "401 stops");
});

test("HTTP heartbeat: maxAttempts counts failed heartbeats, at first and after one fails while open", async () => {
  let calls = 0, ok = false;
  const fetch = async () => {
    calls++;
    return { ok, status: ok ? 200 : 503, headers: new Map(), json: async () => ({ interval_ms: 2000 }) };
  };
  const flush = () => new Promise((r) => setImmediate(r));
  const run = async (h) => {
    for (let i = 0; i < 10 && h.state != CLOSED; i++) await flush(), tick(20);
  };
  const o = opts({ fetch, session: "tab-1", maxAttempts: 3, backoffBase: 10, backoffMax: 10 });

  let h = new VigilHeartbeat("/presence", o);
  let states = record(h);
  await run(h);
  assert.equal(calls, 3, "attempts at first");
  assert.deepEqual(attempts(states), [1, 2]);
  assert.equal(states.at(-1).attempt, 3);

  calls = 0, ok = true;
  h = new VigilHeartbeat("/presence", o);
  states = record(h);
  await flush();
  assert.equal(h.state, OPEN);
  ok = false;
  tick(2000); // the next heartbeat fails: like a drop, not an attempt
  await run(h);
  assert.equal(calls - 2, 3, "attempts after a failed heartbeat");
  assert.deepEqual(attempts(states), [0, 1, 2]);
  assert.equal(h.state, CLOSED);
});

test("presence feed: snapshot, joins, leaves, duplicates ignored", () => {
  class FakeES extends EventTarget {
    constructor(url) { super(); this.url = url; FakeES.last = this; }
    emit(type, data) { const e = new Event(type); e.data = JSON.stringify(data); this.dispatchEvent(e); }
    close() { this.closed = true; }
  }
  const f = new PresenceFeed("/presence/feed", { EventSource: FakeES });
  const seen = [];
  f.addEventListener("change", (e) => seen.push([...e.detail.keys()].sort().join(",")));
  FakeES.last.emit("snapshot", { clients: [{ id: "a" }, { id: "b" }] });
  FakeES.last.emit("online", { id: "c", seq: 1 });
  FakeES.last.emit("offline", { id: "a", seq: 4 });
  FakeES.last.emit("online", { id: "a", seq: 3 }); // late: dropped
  FakeES.last.emit("offline", { id: "c", seq: 2 });
  assert.deepEqual(seen, ["a,b", "a,b,c", "b,c", "b"]);
  // The rooms' events share each client's seq; the online map stays.
  const rooms = [];
  for (const type of ["join", "leave", "update"])
    f.addEventListener(type, (e) => rooms.push(`${type} ${e.detail.id} ${e.detail.room}`));
  FakeES.last.emit("online", { id: "d", seq: 10 });
  FakeES.last.emit("join", { id: "d", seq: 11, room: "r", meta: { name: "D" } });
  FakeES.last.emit("join", { id: "d", seq: 11, room: "r" }); // a duplicate: dropped
  FakeES.last.emit("update", { id: "d", seq: 12, room: "r", meta: { name: "Dee" } });
  FakeES.last.emit("leave", { id: "d", seq: 13, room: "r", reason: "left" });
  assert.deepEqual(rooms, ["join d r", "update d r", "leave d r"]);
  assert.deepEqual([...f.online.keys()].sort(), ["b", "d"]);
  f.close();
  assert.ok(FakeES.last.closed);
});

// hide and show change the page's visibility the way a browser does.
const hide = () => ((doc.visibilityState = "hidden"), doc.dispatchEvent(new Event("visibilitychange")));
const show = () => ((doc.visibilityState = "visible"), doc.dispatchEvent(new Event("visibilitychange")));
// autoPong makes the fake server answer each application ping at once.
const autoPong = (ws) => {
  const send = ws.send.bind(ws);
  ws.send = (d) => (send(d), d == "ping" && ws.recv("pong"));
  return ws;
};
const activity = (t) => {
  const got = [];
  t.addEventListener("activity", (e) => got.push(e.detail));
  return got;
};

test("activity: away after awayHidden hidden, back on becoming visible", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 25000, pongTimeout: 10000 }));
  last().open();
  const ws = autoPong(last()), got = activity(s);
  const reports = () => ws.sent.filter((m) => m.startsWith("vigil:"));
  tick(1000);
  hide();
  tick(DEFAULTS.awayHidden - 100);
  assert.equal(s.away, false);
  assert.deepEqual(reports(), []);
  tick(100);
  assert.equal(s.away, true);
  assert.deepEqual(reports(), ["vigil:away 60000"]);
  tick(5000);
  show();
  assert.equal(s.away, false);
  assert.deepEqual(reports(), ["vigil:away 60000", "vigil:active"]);
  assert.deepEqual(got, [{ away: true, idle: 60000 }, { away: false, idle: 0 }]);
  s.close();
});

test("activity: away after awayIdle without input, back on the first input; input keeps it active", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 25000, pongTimeout: 10000, awayIdle: 120000 }));
  last().open();
  const ws = autoPong(last()), reports = () => ws.sent.filter((m) => m.startsWith("vigil:"));
  tick(100000);
  win.dispatchEvent(new Event("pointermove")); // input: the idle time starts again
  tick(110000);
  assert.equal(s.away, false);
  tick(10000);
  assert.equal(s.away, true);
  assert.deepEqual(reports(), ["vigil:away 120000"]);
  win.dispatchEvent(new Event("pointermove"));
  win.dispatchEvent(new Event("keydown"));
  assert.deepEqual(reports(), ["vigil:away 120000", "vigil:active"], "back once");
  tick(119000);
  assert.equal(s.away, false);
  s.close();
});

test("activity: re-sent on a new connection; awayHidden and awayIdle 0 turn it off", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 25000, pongTimeout: 10000, awayIdle: 0 }));
  last().open();
  autoPong(last());
  hide();
  tick(60000);
  assert.equal(s.away, true);
  last().drop(1012);
  tick(30000);
  last().open();
  assert.deepEqual(last().sent.filter((m) => m.startsWith("vigil:")), ["vigil:away 90000"], "idle since it was hidden");
  s.close();
  show();
  const t = new VigilSocket("ws://x/ws", opts({ awayIdle: 0, awayHidden: 0 }));
  last().open();
  hide();
  tick(3600000);
  assert.equal(t.away, false);
  t.close();
});

test("activity: the HTTP heartbeat sends state and idle_ms at once", async () => {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push(JSON.parse(init.body));
    return { ok: true, status: 200, headers: new Map(), json: async () => ({ interval_ms: 25000 }) };
  };
  const flush = () => new Promise((r) => setImmediate(r));
  const h = new VigilHeartbeat("/presence", opts({ fetch, session: "tab-1", awayHidden: 5000 }));
  await flush();
  assert.equal(calls[0].state, "active");
  hide();
  tick(5000);
  await flush();
  assert.equal(calls.length, 2, "a heartbeat at once");
  assert.equal(calls[1].state, "away");
  assert.equal(calls[1].idle_ms, 5000);
  show();
  await flush();
  assert.equal(calls.length, 3);
  assert.equal(calls[2].state, "active");
  assert.equal(calls[2].idle_ms, undefined);
  h.stop(false);
});

test("presence feed, coalesced: a room's snapshot, then diffs as typed events", () => {
  class FakeES extends EventTarget {
    constructor(url) { super(); this.url = url; FakeES.last = this; }
    emit(type, data) { const e = new Event(type); e.data = JSON.stringify(data); this.dispatchEvent(e); }
    close() { this.closed = true; }
  }
  const f = new PresenceFeed("/presence/feed", { EventSource: FakeES, room: "general", window: 1000 });
  assert.equal(FakeES.last.url, "/presence/feed?room=general&window=1000");
  const seen = [];
  for (const type of ["snapshot", "join", "leave", "update", "away", "back", "online", "offline", "change"])
    f.addEventListener(type, (e) => seen.push(type == "change" ? `change ${e.detail.size}` : `${type} ${e.detail.id || ""}`));
  FakeES.last.emit("snapshot", {
    scope: "room", room: "general", count: 2, count_only: false, window_ms: 1000,
    members: [{ id: "a", state: "online", meta: { name: "A" } }, { id: "b", state: "online" }],
  });
  assert.equal(f.count, 2);
  assert.equal(f.countOnly, false);
  FakeES.last.emit("diff", {
    count: 2,
    set: [{ id: "a", state: "away", meta: { name: "Ada" }, last_active: "2026-12-05T15:00:00Z" }, { id: "c", state: "online" }],
    gone: ["b"],
  });
  assert.deepEqual(seen, ["snapshot ", "change 2", "away a", "update a", "join c", "leave b", "change 2"]);
  assert.deepEqual([...f.members.keys()].sort(), ["a", "c"]);
  assert.equal(f.members.get("a").last_active, "2026-12-05T15:00:00Z");
  seen.length = 0;
  FakeES.last.emit("diff", { count: 2, set: [{ id: "a", state: "online", meta: { name: "Ada" } }] });
  assert.deepEqual(seen, ["back a", "change 2"]);
  // Counts only: the count moves, members stay empty.
  FakeES.last.emit("snapshot", { scope: "room", room: "general", count: 20001, count_only: true, members: [] });
  FakeES.last.emit("diff", { count: 20002 });
  assert.equal(f.count, 20002);
  assert.equal(f.countOnly, true);
  assert.equal(f.members.size, 0);
  f.close();
  assert.ok(FakeES.last.closed);
});

test("presence feed, coalesced: a friends list goes online, away, offline", () => {
  class FakeES extends EventTarget {
    constructor(url) { super(); this.url = url; FakeES.last = this; }
    emit(type, data) { const e = new Event(type); e.data = JSON.stringify(data); this.dispatchEvent(e); }
  }
  const f = new PresenceFeed("/presence/feed?x=1", { EventSource: FakeES, ids: ["ann", "bo b"] });
  assert.equal(FakeES.last.url, "/presence/feed?x=1&ids=ann%2Cbo+b");
  const seen = [];
  for (const type of ["online", "offline", "away", "back", "join", "leave"])
    f.addEventListener(type, (e) => seen.push(`${type} ${e.detail.id}`));
  FakeES.last.emit("snapshot", { scope: "ids", count: 0, members: [{ id: "ann", state: "offline" }, { id: "bo b", state: "offline" }] });
  FakeES.last.emit("diff", { count: 1, set: [{ id: "ann", state: "online" }] });
  FakeES.last.emit("diff", { count: 1, set: [{ id: "ann", state: "away" }] });
  FakeES.last.emit("diff", { count: 0, set: [{ id: "ann", state: "offline", last_seen: "2026-12-05T15:00:00Z" }] });
  assert.deepEqual(seen, ["online ann", "away ann", "offline ann"]);
  assert.equal(f.count, 0);
  assert.equal(f.members.get("ann").last_seen, "2026-12-05T15:00:00Z");
  // The whole node: coalesce.
  const n = new PresenceFeed("/presence/feed", { EventSource: FakeES, coalesce: true });
  assert.equal(FakeES.last.url, "/presence/feed?v=2");
  const ns = [];
  for (const type of ["online", "offline"]) n.addEventListener(type, (e) => ns.push(`${type} ${e.detail.id}`));
  FakeES.last.emit("snapshot", { scope: "node", count: 1, members: [{ id: "a", state: "online" }] });
  FakeES.last.emit("diff", { count: 1, set: [{ id: "b", state: "online" }], gone: ["a"] });
  assert.deepEqual(ns, ["online b", "offline a"]);
  assert.deepEqual([...n.online.keys()], ["b"]);
});

test("size: minified and gzipped at most 5 KB", () => {
  const esbuild = `${dir}testdata/node_modules/.bin/esbuild`;
  assert.ok(existsSync(esbuild), "esbuild missing: run npm ci in client/js/testdata (scripts/test does)");
  const min = execFileSync(esbuild, [`${dir}vigil.js`, "--minify", "--format=esm"]);
  const raw = readFileSync(`${dir}vigil.js`);
  const gz = gzipSync(min, { level: 9 }).length;
  console.log(`vigil.js: ${raw.length} B source, ${min.length} B minified, ${gz} B minified+gzipped`);
  assert.ok(gz <= 5120, `${gz} B gzipped`);
});

test("a page woken late probes before it judges the socket dead", () => {
  const s = new VigilSocket("ws://x/ws", opts({ pingInterval: 1000, pongTimeout: 500 }));
  last().open();
  tick(1150); // ping sent; the page freezes before the pong is handled
  assert.deepEqual(last().sent, ["ping"]);
  mock.timers.setTime(Date.now() + 30000);
  tick(125); // the first late tick: a fresh ping, not a verdict
  assert.equal(s.state, OPEN);
  assert.deepEqual(last().sent, ["ping", "ping"]);
  last().recv("pong"); // the queued answer is handled
  tick(1000);
  assert.equal(s.state, OPEN);
  assert.equal(FakeWS.all.length, 1);
  s.close();
});

// The browser driver against a fake app (fetch) and a fake WebSocket: it loads the
// snapshot, polls, follows pokes, and tells the page what changed. The real servers
// and Chromium come in the end-to-end tests.
import { test } from "node:test";
import assert from "node:assert/strict";

import { io as socketIoClientIo } from "socket.io-client";

import { DEFAULT_ENDPOINTS, TidingsClient, loadSocketIo, parseAdviceHeader } from "../../src/tidings/app/static/js/tidings-client/tidings-client.js";

/** The page's own rules for its snapshot (here: the one event type the fake app makes). */
function applyEvent(snapshot, event) {
  snapshot.version = event.version;
  if (event.type === "project_renamed") snapshot.name = event.data.name;
}

function fakeApp({ push, advice }) {
  const app = { events: [], snapshot: { id: 7, name: "Website", version: 1, next_id: 1, members: [], stories: [] }, tokens: 0, polls: 0 };
  app.change = (name) => {
    const event = { version: app.snapshot.version + 1, type: "project_renamed", data: { name }, actor: 1, ts: Date.now() / 1000 };
    app.events.push(event);
    app.snapshot = { ...app.snapshot, name, version: event.version };
    return event;
  };
  const json = (status, body, headers = {}) =>
    new Response(body === null ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
  app.fetch = async (url, init) => {
    const u = new URL(url);
    if (u.pathname === "/api/client-config") {
      return json(200, { push: { enabled: push, urls: { ws: "ws://push/ws", sse: "http://push/sse" } }, advice, flags: { push } });
    }
    if (u.pathname === "/api/projects/7") return json(200, app.snapshot);
    if (u.pathname === "/api/projects/7/events") {
      app.polls += 1;
      const since = Number(u.searchParams.get("since"));
      const headers = { ETag: `"${app.snapshot.version}"`, "Tidings-Advice": "push=1, interval=60, fallback=60, jitter=0.1" };
      if (init.headers["If-None-Match"] === `"${app.snapshot.version}"`) return new Response(null, { status: 304, headers });
      const events = app.events.filter((e) => e.version > since);
      return json(200, { project: 7, version: app.snapshot.version, since, events, has_more: false, reload: null, advice }, headers);
    }
    if (u.pathname === "/api/push/token" && init.method === "POST") {
      app.tokens += 1;
      return json(200, { token: `tok-${app.tokens}`, expires_at: Date.now() / 1000 + 600, projects: [7] });
    }
    if (u.pathname === "/api/telemetry") return json(204, null);
    return json(404, { error: "not_found" });
  };
  return app;
}

class FakeWebSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeWebSocket.instances.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  open() {
    this.readyState = 1;
    this.onopen();
  }
  deliver(body) {
    this.onmessage({ data: JSON.stringify(body) });
  }
}

function nextEvent(target, type, check = () => true, within = 2000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event`)), within);
    const listener = (event) => {
      if (!check(event.detail)) return;
      clearTimeout(timer);
      target.removeEventListener(type, listener);
      resolve(event.detail);
    };
    target.addEventListener(type, listener);
  });
}

test("the advice header is parsed", () => {
  assert.deepEqual(parseAdviceHeader("push=1, interval=60, fallback=5, jitter=0.2"), {
    push: true, interval: 60, fallback_interval: 5, jitter: 0.2,
  });
});

test("with push off, the client loads the snapshot and polls", async () => {
  const app = fakeApp({ push: false, advice: { push: false, interval: 0.05, fallback_interval: 0.05, jitter: 0.1 } });
  const client = new TidingsClient({ projects: [7], baseUrl: "http://app", fetch: app.fetch, applyEvent });
  const reloaded = nextEvent(client, "reload");
  const status = nextEvent(client, "status");
  await client.start();
  assert.equal((await reloaded).snapshot.version, 1);
  assert.equal((await status).status, "polling_push_off");
  const applied = nextEvent(client, "apply");
  app.change("Polled");
  const detail = await applied;
  client.stop();
  assert.deepEqual(detail.events.map((e) => e.version), [2]);
  assert.equal(detail.snapshot.name, "Polled");
  assert.equal(app.tokens, 0);
});

test("with push on, a poke over the WebSocket brings the change at once", async () => {
  FakeWebSocket.instances = [];
  const app = fakeApp({ push: true, advice: { push: true, interval: 60, fallback_interval: 60, jitter: 0.1 } });
  const client = new TidingsClient({
    projects: [7],
    baseUrl: "http://app",
    fetch: app.fetch,
    applyEvent,
    WebSocket: FakeWebSocket,
    controller: { poke_delay: 0.01 },
  });
  const reloaded = nextEvent(client, "reload");
  await client.start();
  await reloaded;
  for (let i = 0; i < 50 && FakeWebSocket.instances.length === 0; i += 1) await new Promise((r) => setTimeout(r, 5));
  const [ws] = FakeWebSocket.instances;
  assert.equal(ws.url, "ws://push/ws");
  ws.open();
  assert.deepEqual(ws.sent[0].type, "subscribe");
  assert.equal(ws.sent[0].token, "tok-1");
  const live = nextEvent(client, "status", (d) => d.status === "live");
  ws.deliver({ type: "subscribed", projects: { 7: 1 }, state: "ok", heartbeat: 25 });
  await live;
  const applied = nextEvent(client, "apply");
  const began = Date.now();
  const event = app.change("Pushed");
  ws.deliver({ type: "poke", project: 7, version: event.version, ts: event.ts });
  const detail = await applied;
  assert.ok(Date.now() - began < 1000);
  assert.equal(detail.snapshot.name, "Pushed");
  const unavailable = nextEvent(client, "status", (d) => d.status === "polling_push_unavailable");
  ws.onclose({ code: 1006 });
  await unavailable;
  client.stop();
});

test("without applyEvent the held snapshot keeps only the version; the page applies the events", async () => {
  const app = fakeApp({ push: false, advice: { push: false, interval: 0.05, fallback_interval: 0.05, jitter: 0.1 } });
  const client = new TidingsClient({ projects: [7], baseUrl: "http://app", fetch: app.fetch });
  const reloaded = nextEvent(client, "reload");
  await client.start();
  await reloaded;
  const applied = nextEvent(client, "apply");
  app.change("Renamed");
  const detail = await applied;
  client.stop();
  assert.equal(detail.events[0].data.name, "Renamed");
  assert.equal(detail.snapshot.version, 2);
  assert.equal(detail.snapshot.name, "Website");
});

test("an app's own URLs: endpoints with {project}, and poll: null polls each project on its own", async () => {
  const seen = [];
  const snapshots = { 3: { version: 5 }, 4: { version: 9 } };
  const fetch = async (url) => {
    const u = new URL(url);
    seen.push(u.pathname + u.search);
    const json = (body) => new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
    if (u.pathname === "/todo/push-config") return json({ push: { enabled: false, urls: {} }, advice: { push: false, interval: 0.05, fallback_interval: 0.05, jitter: 0 } });
    const m = /^\/todo\/lists\/(\d+)\/changes$/.exec(u.pathname);
    if (m) {
      const since = Number(u.searchParams.get("since"));
      return json({ version: since, events: [], has_more: false, reload: null });
    }
    return new Response("{}", { status: 404 });
  };
  const client = new TidingsClient({
    projects: [3, 4],
    baseUrl: "http://app",
    fetch,
    snapshots,
    endpoints: { config: "/todo/push-config", events: "/todo/lists/{project}/changes", poll: null },
  });
  await client.start();
  for (let i = 0; i < 100 && !(seen.some((x) => x.startsWith("/todo/lists/3/")) && seen.some((x) => x.startsWith("/todo/lists/4/"))); i += 1) {
    await new Promise((r) => setTimeout(r, 10));
  }
  client.stop();
  assert.equal(seen[0], "/todo/push-config");
  assert.ok(seen.includes("/todo/lists/3/changes?since=5&limit=100"), JSON.stringify(seen));
  assert.ok(seen.includes("/todo/lists/4/changes?since=9&limit=100"), JSON.stringify(seen));
  assert.ok(!seen.some((x) => x.startsWith("/api/")), JSON.stringify(seen));
  assert.equal(DEFAULT_ENDPOINTS.events, "/api/projects/{project}/events");
});

test("socketio: the io option is used as given, else socket.io-client is imported", async () => {
  const given = () => null;
  assert.equal(await loadSocketIo(given), given);
  assert.equal(await loadSocketIo(undefined), socketIoClientIo);
});

test("an unknown transport is refused at once", () => {
  assert.throws(() => new TidingsClient({ projects: [7], transport: "websocket" }), /transport must be/);
});

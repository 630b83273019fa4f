// The browser client (TidingsClient) in Node against the real stack, one client per
// transport at once: a change arrives by poke within a fraction of a second; with the
// push servers killed, by poll within the short interval, and by poke again once they
// are back; the kill switch turns push off within one poll interval and back on.
//
// Run by tests/integration/test_node_client.py:
//   node tests/integration/node_client.mjs '<json config>'
// Config: appUrl, token (an admin's API token), project, transports, bounds (seconds):
// pokeLatency, fallbackBound, flagOffBound, flagOnBound, goLive, reconnect.
// What only the test can do (stop and start processes) it asks for on stdout,
// {"step": "kill_push"} or {"step": "start_push"}, and goes on when stdin says "done".
// Last line: {"ok": true, "results": {...}} or {"ok": false, "error": ...}; exits 0 only
// when every check passed.
//
// Node 20 has no WebSocket or EventSource: the `ws` and `eventsource` packages are
// given to the client through its options.

import { createInterface } from "node:readline";

import WebSocket from "ws";
import { EventSource } from "eventsource";

import { TidingsClient } from "../../src/tidings/app/static/js/tidings-client/tidings-client.js";

const config = JSON.parse(process.argv[2]);
const { appUrl, token, project } = config;
const b = config.bounds;
const nowS = () => Date.now() / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Failure extends Error {}

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Ask the test to do something to the stack; resolves once it says "done". */
async function ask(step) {
  process.stdout.write(JSON.stringify({ step }) + "\n");
  const { value, done } = await stdin.next();
  if (done || value.trim() !== "done") throw new Failure(`the test did not do ${step}: ${value}`);
}

/** One client and everything it reported, with wall-clock times (seconds). */
class Observed {
  constructor(transport) {
    this.name = `node-${transport}`;
    this.statuses = [];
    this.applied = new Map();
    this.reports = [];
    this.waiters = new Set();
    const fetchAndRecord = async (url, init = {}) => {
      if ((init.method || "GET") === "POST" && new URL(url).pathname === "/api/telemetry") {
        this.reports.push(JSON.parse(init.body));
        this.wake();
      }
      return fetch(url, init);
    };
    this.client = new TidingsClient({
      projects: [project],
      baseUrl: appUrl,
      apiToken: token,
      transport,
      WebSocket,
      EventSource,
      fetch: fetchAndRecord,
      // Report each sample at once; retry a lost connection every second.
      controller: { telemetry_max_samples: 1, push_backoff_cap: 1 },
    });
    this.client.addEventListener("status", (e) => {
      this.statuses.push([nowS(), e.detail.status]);
      this.wake();
    });
    this.client.addEventListener("apply", (e) => {
      for (const event of e.detail.events) this.applied.set(event.version, nowS());
      this.wake();
    });
  }

  wake() {
    for (const w of this.waiters) w();
  }

  samples() {
    return this.reports.flatMap((r) => r.samples).filter((s) => s.project === project);
  }

  get missedPokes() {
    return this.reports.reduce((n, r) => n + r.missed_pokes, 0);
  }

  /** Wait (woken by every callback, re-checked every 100 ms) until check(); seconds taken. */
  async until(check, timeout, what) {
    const start = nowS();
    while (!check()) {
      const remaining = start + timeout - nowS();
      if (remaining <= 0) {
        throw new Failure(
          `${this.name}: timed out after ${timeout.toFixed(2)} s waiting for ${what}; ` +
            `statuses=${JSON.stringify(this.statuses.map(([, s]) => s))} ` +
            `applied=${JSON.stringify([...this.applied.keys()])} reports=${JSON.stringify(this.reports)}`,
        );
      }
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(remaining, 0.1) * 1000);
        this.waiters.add(done);
      });
    }
    return nowS() - start;
  }

  untilStatus(status, timeout) {
    return this.until(() => this.client.status === status, timeout, status);
  }

  /** Nothing (no regular poll) is due within `needed` s: a change seen sooner came by poke. */
  isQuiet(needed) {
    const deadline = this.client.controller.nextDeadline();
    return deadline === null || deadline > nowS() + needed;
  }

  async quiet(needed, timeout = 8) {
    const start = nowS();
    while (!this.isQuiet(needed)) {
      if (nowS() - start > timeout) throw new Failure(`${this.name}: never quiet for ${needed} s`);
      const deadline = this.client.controller.nextDeadline() ?? nowS();
      await sleep(Math.max(20, (deadline - nowS()) * 1000 + 50));
    }
  }
}

/** Until every client is quiet at the same moment. */
async function allQuiet(clients, needed = 1.0) {
  for (let n = 0; n < 10; n++) {
    for (const c of clients) await c.quiet(needed);
    if (clients.every((c) => c.isQuiet(needed))) return;
  }
  throw new Failure("the clients were never quiet at the same time");
}

async function api(method, path, body) {
  const response = await fetch(appUrl + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await response.text();
  if (!response.ok) throw new Failure(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A change; its version and commit time (latencies count from the commit). */
async function change(title) {
  const body = await api("POST", `/api/projects/${project}/commands`, {
    command: { type: "create_story", title },
  });
  return { version: body.version, committed: body.event.ts };
}

/** One change; every client applies it in time and reports it as `via`. */
async function changeArrives(clients, via, bound) {
  if (via === "poke") await allQuiet(clients);
  const counts = new Map(clients.map((c) => [c, c.samples().length]));
  const { version, committed } = await change(`by ${via}`);
  const latencies = {};
  for (const c of clients) {
    await c.until(() => c.applied.has(version), bound + 1, `version ${version} applied`);
    const latency = c.applied.get(version) - committed;
    if (latency >= bound) throw new Failure(`${c.name}: applied ${latency.toFixed(3)} s after the commit (bound ${bound})`);
    await c.until(() => c.samples().length > counts.get(c), 2, "its telemetry sample");
    const sample = c.samples().at(-1);
    if (sample.via !== via) throw new Failure(`${c.name}: came by ${sample.via}, expected ${via}`);
    latencies[c.name] = Math.round(latency * 1000);
  }
  return latencies;
}

async function main() {
  const clients = config.transports.map((t) => new Observed(t));
  const results = {};
  try {
    await Promise.all(clients.map((c) => c.client.start()));
    for (const c of clients) await c.untilStatus("live", b.goLive);

    results.poke_ms = [];
    for (let n = 0; n < 3; n++) results.poke_ms.push(await changeArrives(clients, "poke", b.pokeLatency));

    await ask("kill_push");
    for (const c of clients) await c.untilStatus("polling_push_unavailable", 2);
    results.push_down_ms = await changeArrives(clients, "poll", b.fallbackBound);
    await ask("start_push");
    for (const c of clients) await c.untilStatus("live", b.reconnect);
    results.push_back_ms = await changeArrives(clients, "poke", b.pokeLatency);

    await api("PUT", "/api/admin/flags", { enabled: false });
    results.off_s = {};
    for (const c of clients) {
      results.off_s[c.name] = await c.untilStatus("polling_push_off", b.flagOffBound);
      if (c.client.controller.inspect().push !== "off") throw new Failure(`${c.name}: push connection kept while off`);
    }
    results.while_off_ms = await changeArrives(clients, "poll", b.fallbackBound);

    await api("PUT", "/api/admin/flags", { enabled: true });
    results.on_s = {};
    for (const c of clients) results.on_s[c.name] = await c.untilStatus("live", b.flagOnBound);
    results.after_on_ms = await changeArrives(clients, "poke", b.pokeLatency);

    results.missed_pokes = Object.fromEntries(clients.map((c) => [c.name, c.missedPokes]));
    results.statuses = Object.fromEntries(clients.map((c) => [c.name, c.statuses.map(([, s]) => s)]));
    return results;
  } finally {
    for (const c of clients) c.client.stop();
  }
}

main().then(
  (results) => {
    process.stdout.write(JSON.stringify({ ok: true, results }) + "\n");
    process.exit(0);
  },
  (err) => {
    const error = err instanceof Failure ? err.message : String((err && err.stack) || err);
    process.stdout.write(JSON.stringify({ ok: false, error }) + "\n");
    process.exit(1);
  },
);

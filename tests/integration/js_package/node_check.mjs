// Copied into a scratch project that installed the tidings-client tarball, and run there:
// the package is imported by its name, as an app would. Run by test_js_package.py:
//   node node_check.mjs missing '<json config>'  socket.io-client absent: start() says so
//   node node_check.mjs poke '<json config>'     Socket.IO (imported by the client): a poke arrives
// Config: appUrl, token (an API token), project, pokeBound (seconds). Last stdout line:
// {"ok": true, ...} or {"ok": false, "error": ...}; exit 0 only when every check passed.

import { TidingsClient } from "tidings-client";
import { SyncController } from "tidings-client/sync-controller";

const [mode, raw] = process.argv.slice(2);
const { appUrl, token, project, pokeBound } = JSON.parse(raw);
const nowS = () => Date.now() / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Failure extends Error {}

async function until(check, seconds, what) {
  const started = nowS();
  while (!check()) {
    if (nowS() - started > seconds) throw new Failure(`timed out after ${seconds} s waiting for ${what}`);
    await sleep(20);
  }
}

async function missing() {
  if (typeof SyncController !== "function") throw new Failure("tidings-client/sync-controller exports no SyncController");
  const client = new TidingsClient({ projects: [project], baseUrl: appUrl, apiToken: token, transport: "socketio" });
  try {
    await client.start();
  } catch (err) {
    client.stop();
    return { error: err.message };
  }
  client.stop();
  throw new Failure("start() succeeded without socket.io-client installed");
}

async function poke() {
  const applied = new Map();
  const samples = [];
  const statuses = [];
  const recording = async (url, init = {}) => {
    if ((init.method || "GET") === "POST" && new URL(url).pathname === "/api/telemetry") samples.push(...JSON.parse(init.body).samples);
    return fetch(url, init);
  };
  const client = new TidingsClient({
    projects: [project],
    baseUrl: appUrl,
    apiToken: token,
    transport: "socketio",
    fetch: recording,
    controller: { telemetry_max_samples: 1 },
  });
  client.addEventListener("status", (e) => statuses.push(e.detail.status));
  client.addEventListener("apply", (e) => {
    for (const event of e.detail.events) applied.set(event.version, nowS());
  });
  try {
    await client.start();
    await until(() => client.status === "live", 15, `live (statuses ${JSON.stringify(statuses)})`);
    // No regular poll due soon: a change applied within the bound came by poke.
    await until(() => (client.controller.nextDeadline() ?? Infinity) > nowS() + pokeBound + 0.5, 8, "a quiet moment");
    const response = await fetch(`${appUrl}/api/projects/${project}/commands`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ command: { type: "create_story", title: "from the npm package, in Node" } }),
      signal: AbortSignal.timeout(10000),
    });
    if (!response.ok) throw new Failure(`command: HTTP ${response.status} ${await response.text()}`);
    const { version, event } = await response.json();
    await until(() => applied.has(version), pokeBound + 1, `version ${version} applied`);
    const latency = applied.get(version) - event.ts;
    await until(() => samples.some((s) => s.project === project), 3, "the telemetry sample");
    const via = samples.find((s) => s.project === project).via;
    if (via !== "poke") throw new Failure(`version ${version} came by ${via}, not by poke`);
    if (latency >= pokeBound) throw new Failure(`applied ${latency.toFixed(3)} s after the commit (bound ${pokeBound})`);
    return { latency_ms: Math.round(latency * 1000), via, statuses };
  } finally {
    client.stop();
  }
}

const run = { missing, poke }[mode];
const watchdog = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, error: `${mode}: over 40 s` }) + "\n");
  process.exit(1);
}, 40000);
run().then(
  (result) => {
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify({ ok: true, ...result }) + "\n");
    process.exit(0);
  },
  (err) => {
    process.stdout.write(JSON.stringify({ ok: false, error: err instanceof Failure ? err.message : String(err && err.stack) }) + "\n");
    process.exit(1);
  },
);

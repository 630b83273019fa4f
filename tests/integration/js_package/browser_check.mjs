// The installed tidings-client package in Chromium, through an import map: a page that
// imports "tidings-client" (and, for the Socket.IO transport, lets the client import
// "socket.io-client", mapped to its ESM build) follows a project over WebSocket and over
// Socket.IO, and a change reaches both by poke. A small server here stands for the app's
// web server: it serves the page and the scratch project's node_modules and passes every
// other request on to the app, so the app's API is same-origin, as on a real site.
// Run by test_js_package.py:
//   node browser_check.mjs <scratch dir> '<json config: appUrl, token, project, pokeBound>'
// Last stdout line: {"ok": true, ...} or {"ok": false, "error": ...}.

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";

import { chromium } from "playwright-core";

const CHROMIUM = process.env.TIDINGS_CHROMIUM || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"];
const PREFIX = "/__package__/";
const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html", ".map": "application/json" };

const [scratch, raw] = process.argv.slice(2);
const { appUrl, token, project, pokeBound } = JSON.parse(raw);

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script type="importmap">
{"imports": {
  "tidings-client": "${PREFIX}node_modules/tidings-client/tidings-client.js",
  "socket.io-client": "${PREFIX}node_modules/socket.io-client/dist/socket.io.esm.min.js"
}}
</script>
<script type="module">
  import { TidingsClient } from "tidings-client";
  const { token, project } = JSON.parse(document.body.dataset.config);
  const t = (window.tidings = { clients: {}, applied: {}, samples: {}, errors: [] });
  for (const transport of ["ws", "socketio"]) {
    t.applied[transport] = {};
    t.samples[transport] = [];
    const recording = async (url, init = {}) => {
      if ((init.method || "GET") === "POST" && new URL(url).pathname === "/api/telemetry") t.samples[transport].push(...JSON.parse(init.body).samples);
      return fetch(url, init);
    };
    const client = new TidingsClient({ projects: [project], apiToken: token, transport, fetch: recording, controller: { telemetry_max_samples: 1 } });
    client.addEventListener("apply", (e) => {
      for (const event of e.detail.events) t.applied[transport][event.version] = Date.now() / 1000;
    });
    t.clients[transport] = client;
    client.start().catch((err) => t.errors.push(transport + ": " + err.message));
  }
</script>
<body data-config='${JSON.stringify({ token, project })}'></body>`;

class Failure extends Error {}

/** The page and the scratch project's files under PREFIX; anything else, the app's answer. */
async function handle(req, res) {
  const url = new URL(req.url, "http://site");
  if (url.pathname.startsWith(PREFIX)) {
    const rest = url.pathname.slice(PREFIX.length);
    if (rest === "index.html") return res.writeHead(200, { "Content-Type": "text/html" }).end(PAGE);
    try {
      const body = await readFile(path.join(scratch, rest));
      return res.writeHead(200, { "Content-Type": TYPES[path.extname(rest)] || "application/octet-stream" }).end(body);
    } catch (err) {
      return res.writeHead(404, { "Content-Type": "text/plain" }).end(`not in the scratch project: ${rest}`);
    }
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const headers = { ...req.headers };
  delete headers.host;
  delete headers.connection;
  const answer = await fetch(appUrl + req.url, {
    method: req.method,
    headers,
    body: chunks.length ? Buffer.concat(chunks) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  const out = {};
  answer.headers.forEach((value, name) => {
    if (!["content-encoding", "content-length", "transfer-encoding", "connection"].includes(name)) out[name] = value;
  });
  res.writeHead(answer.status, out).end(Buffer.from(await answer.arrayBuffer()));
}

function listen() {
  const server = createServer((req, res) => {
    handle(req, res).catch((err) => res.writeHead(502, { "Content-Type": "text/plain" }).end(String(err)));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function main(browser, site) {
  const context = await browser.newContext();
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  const log = [];
  page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  try {
    await page.goto(`${site}${PREFIX}index.html`);
    await page.waitForFunction(
      () => window.tidings && (window.tidings.errors.length > 0 || Object.values(window.tidings.clients).every((c) => c.status === "live")),
      null,
      { timeout: 15000 },
    );
    const errors = await page.evaluate(() => window.tidings.errors);
    if (errors.length) throw new Failure(`start() failed: ${errors.join("; ")}`);
    if (!sockets.some((u) => u.endsWith("/ws"))) throw new Failure(`no /ws socket: ${sockets}`);
    if (!sockets.some((u) => u.includes("/socket.io/"))) throw new Failure(`no Socket.IO socket: ${sockets}`);
    // No regular poll due soon on either client: a change applied within the bound came by poke.
    await page.waitForFunction(
      (needed) => Object.values(window.tidings.clients).every((c) => (c.controller.nextDeadline() ?? Infinity) > Date.now() / 1000 + needed),
      pokeBound + 0.5,
      { timeout: 8000, polling: 20 },
    );
    const response = await fetch(`${appUrl}/api/projects/${project}/commands`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ command: { type: "create_story", title: "from the npm package, in Chromium" } }),
      signal: AbortSignal.timeout(10000),
    });
    if (!response.ok) throw new Failure(`command: HTTP ${response.status} ${await response.text()}`);
    const { version, event } = await response.json();
    await page.waitForFunction(
      (v) => Object.values(window.tidings.applied).every((a) => a[v] !== undefined) && Object.values(window.tidings.samples).every((s) => s.length > 0),
      version,
      { timeout: (pokeBound + 3) * 1000, polling: 20 },
    );
    const seen = await page.evaluate(() => ({ applied: window.tidings.applied, samples: window.tidings.samples }));
    const results = {};
    for (const transport of ["ws", "socketio"]) {
      const latency = seen.applied[transport][version] - event.ts;
      const via = seen.samples[transport][0].via;
      if (via !== "poke") throw new Failure(`${transport}: version ${version} came by ${via}, not by poke`);
      if (latency >= pokeBound) throw new Failure(`${transport}: applied ${latency.toFixed(3)} s after the commit (bound ${pokeBound})`);
      results[transport] = { latency_ms: Math.round(latency * 1000), via };
    }
    return results;
  } catch (err) {
    const state = await page
      .evaluate(() => Object.fromEntries(Object.entries(window.tidings.clients).map(([t, c]) => [t, c.controller && c.controller.inspect()])))
      .catch(() => "unknown");
    const reason = err instanceof Failure ? err.message : String(err && err.stack);
    throw new Failure(`${reason}\nclients: ${JSON.stringify(state)}\nsockets: ${sockets}\npage log:\n${log.join("\n")}`);
  }
}

const watchdog = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, error: "over 50 s" }) + "\n");
  process.exit(1);
}, 50000);
const server = await listen();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30000 });
try {
  const results = await main(browser, `http://127.0.0.1:${server.address().port}`);
  process.stdout.write(JSON.stringify({ ok: true, results }) + "\n");
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, error: err instanceof Failure ? err.message : String(err && err.stack) }) + "\n");
  process.exitCode = 1;
} finally {
  await browser.close().catch(() => {});
  server.close();
  server.closeAllConnections();
  clearTimeout(watchdog);
}

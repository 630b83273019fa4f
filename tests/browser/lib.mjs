// Shared helpers for the browser scenarios: Debian's Chromium through playwright-core,
// signing in, reading the sync indicator, and bounded waits that fail with a reason.

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export const CHROMIUM = process.env.TIDINGS_CHROMIUM || "/usr/bin/chromium";
export const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
export const PASSWORD = "tidings-demo";
export const USERS = { ada: "ada@example.com", grace: "grace@example.com", linus: "linus@example.com" };
export const ARTIFACTS = process.env.TIDINGS_ARTIFACTS || path.resolve("test-artifacts");

const POLL_URL = /\/api\/projects\/\d+\/events\?since=|\/api\/poll\?/;

/**
 * Resolve when `page`'s next regular poll is more than `windowMs` away: its last poll was
 * answered less than `minIntervalMs - windowMs` ago (minIntervalMs: the shortest interval
 * the advice allows, interval * (1 - jitter)). A change seen within windowMs is then push's.
 */
export async function quietFor(page, windowMs, minIntervalMs) {
  const fresh = () => Date.now() - page.tidingsLastPoll < minIntervalMs - windowMs - 100;
  if (fresh()) return;
  await page.waitForResponse((r) => POLL_URL.test(r.url()), { timeout: 10000 });
}

/**
 * Every text the sync indicator's label showed, in window.tidingsLabels: as an init script
 * from a page's first paint on, or evaluated in a loaded page from then on.
 */
export const RECORD_LABELS = () => {
  window.tidingsLabels = [];
  const read = () => {
    const label = document.querySelector('[data-testid="sync-label"]');
    const text = label ? label.textContent : null;
    if (text !== null && window.tidingsLabels[window.tidingsLabels.length - 1] !== text) window.tidingsLabels.push(text);
  };
  new MutationObserver(read).observe(document, { subtree: true, childList: true, characterData: true });
  read();
};

/** The app's URL, from argv. */
export function baseUrl() {
  const url = process.argv[2];
  if (!url) throw new Error("usage: node <scenario>.mjs <app url>");
  return url.replace(/\/$/, "");
}

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30000 });
}

/** socket.io-client's browser bundle (from node_modules), for the Socket.IO transport. */
export function socketIoBundle() {
  const require = createRequire(import.meta.url);
  const main = require.resolve("socket.io-client");
  const dist = path.join(main.slice(0, main.lastIndexOf(`${path.sep}build${path.sep}`)), "dist", "socket.io.min.js");
  return readFileSync(dist, "utf8");
}

/** A new context signed in as `who`, on the board (optionally with ?transport=). */
export async function boardPage(browser, url, who, { transport = null, viewport = { width: 1440, height: 900 }, colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  const log = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") log.push(`[${who} console.${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => log.push(`[${who} pageerror] ${e.message}`));
  page.tidingsLog = log;
  // Which push transport the page really used: WebSocket URLs, and SSE streams opened.
  page.tidingsSockets = [];
  page.tidingsStreams = [];
  page.on("websocket", (ws) => page.tidingsSockets.push(ws.url()));
  page.on("request", (r) => {
    if (r.url().includes("/sse?")) page.tidingsStreams.push(r.url());
  });
  page.tidingsLastPoll = 0;
  page.on("response", (r) => {
    if (POLL_URL.test(r.url())) page.tidingsLastPoll = Date.now();
  });
  if (transport === "socketio") await page.addInitScript({ content: socketIoBundle() });
  await signIn(page, url, who, transport ? `/?transport=${transport}` : "/");
  await page.getByTestId("board").waitFor({ timeout: 15000 });
  return page;
}

export async function signIn(page, url, who, path = "/") {
  await page.goto(url + path, { timeout: 15000 });
  await page.getByTestId("signin-email").fill(USERS[who]);
  await page.getByTestId("signin-password").fill(PASSWORD);
  await page.getByTestId("signin-submit").click();
}

/** Ada on the admin page, in a context of her own; its page errors go to `page.tidingsLog`. */
export async function adminPage(browser, url, { colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, colorScheme });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  page.tidingsLog = [];
  page.on("pageerror", (e) => page.tidingsLog.push(`[admin pageerror] ${e.message}`));
  await signIn(page, url, "ada", "/admin.html");
  return page;
}

/** Wait until the indicator shows `status`; returns the milliseconds it took. */
export async function waitStatus(page, status, timeoutMs, what = "") {
  const started = Date.now();
  try {
    await page.locator(`[data-testid="sync-status"][data-status="${status}"]`).waitFor({ timeout: timeoutMs });
  } catch (err) {
    const now = await page.getByTestId("sync-status").getAttribute("data-status").catch(() => "?");
    throw new Error(`${what || "page"}: sync status stayed "${now}", expected "${status}" within ${timeoutMs} ms`);
  }
  return Date.now() - started;
}

/** Wait until a card with exactly this title is on the board; returns the milliseconds it took. */
export async function waitCard(page, title, timeoutMs, what = "") {
  const started = Date.now();
  try {
    await cardByTitle(page, title).waitFor({ timeout: timeoutMs });
  } catch (err) {
    throw new Error(`${what || "page"}: story "${title}" did not appear within ${timeoutMs} ms`);
  }
  return Date.now() - started;
}

export function cardByTitle(page, title) {
  return page.locator('[data-testid="story-card"]', { has: page.getByTestId("story-title").getByText(title, { exact: true }) });
}

export async function version(page) {
  return Number(await page.getByTestId("project-version").textContent());
}

/** A command straight through the API, from inside a signed-in page (its cookies, its CSRF). */
export async function command(page, projectId, cmd) {
  return page.evaluate(
    async ([p, c]) => {
      const csrf = document.cookie.split("; ").find((x) => x.startsWith("tidings_csrf="))?.split("=")[1];
      const r = await fetch(`/api/projects/${p}/commands`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Tidings-CSRF": decodeURIComponent(csrf || "") },
        body: JSON.stringify({ command: c }),
      });
      return { status: r.status, body: await r.json() };
    },
    [projectId, cmd],
  );
}

export async function setFlags(page, changes) {
  return page.evaluate(async (body) => {
    const csrf = document.cookie.split("; ").find((x) => x.startsWith("tidings_csrf="))?.split("=")[1];
    const r = await fetch("/api/admin/flags", {
      method: "PUT",
      headers: { "Content-Type": "application/json", "X-Tidings-CSRF": decodeURIComponent(csrf || "") },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }, changes);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file });
  return file;
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Run a scenario: a browser for `body`, closed whatever happens; exit 1 with the reason on failure. */
export async function scenario(name, body, { limitMs = 50000 } = {}) {
  const started = Date.now();
  const watchdog = setTimeout(() => {
    console.error(`FAIL ${name}: over ${limitMs} ms`);
    process.exit(1);
  }, limitMs);
  const browser = await launch();
  const pages = [];
  try {
    await body(browser, baseUrl(), pages);
    console.log(`ok ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    console.error(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    for (const page of pages) {
      for (const line of page.tidingsLog || []) console.error(line);
      await screenshot(page, `failure-${name}-${pages.indexOf(page)}.png`).catch(() => {});
    }
    process.exitCode = 1;
  } finally {
    await browser.close().catch(() => {});
    clearTimeout(watchdog);
  }
  // A failed scenario may leave work pending (a load it was writing): end now, with the reason.
  if (process.exitCode) process.exit(process.exitCode);
}

/** Sign in from Node (no browser): {projectId, command(cmd)} for changes made "elsewhere". */
export async function apiSession(url, who) {
  const signIn = await fetch(`${url}/api/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: USERS[who], password: PASSWORD }),
    signal: AbortSignal.timeout(5000),
  });
  check(signIn.ok, `${who} could not sign in: HTTP ${signIn.status}`);
  const { csrf_token: csrf } = await signIn.json();
  const cookie = signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const me = await (await fetch(`${url}/api/me`, { headers: { cookie }, signal: AbortSignal.timeout(5000) })).json();
  return {
    projectId: me.projects[0].id,
    async createProject(name) {
      const r = await fetch(`${url}/api/projects`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Tidings-CSRF": csrf, cookie },
        body: JSON.stringify({ name }),
        signal: AbortSignal.timeout(5000),
      });
      const body = await r.json();
      check(r.status === 201, `project not created: HTTP ${r.status} ${JSON.stringify(body)}`);
      return body.project;
    },
    async command(projectId, cmd) {
      const r = await fetch(`${url}/api/projects/${projectId}/commands`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Tidings-CSRF": csrf, cookie },
        body: JSON.stringify({ command: cmd }),
        signal: AbortSignal.timeout(5000),
      });
      return { status: r.status, body: await r.json() };
    },
  };
}

/**
 * Run a UI gesture that sends one command from `page`; resolves the Node clock (ms) when
 * the request went out and when its answer came back, so bounds exclude the gesture itself.
 */
export async function timedCommand(page, gesture) {
  const isCommand = (r) => r.url().endsWith("/commands") && r.method() === "POST";
  const sent = page.waitForRequest(isCommand, { timeout: 5000 }).then(() => Date.now());
  const answered = page.waitForResponse((r) => isCommand(r.request()), { timeout: 5000 }).then(() => Date.now());
  await gesture();
  return { sent: await sent, answered: await answered };
}

/**
 * Wait for `locator` (state "visible" or "detached") within what is left of `budgetMs` since
 * `since`; when it is late, wait a little longer only to say by how much.
 */
export async function within(locator, since, budgetMs, what, state = "visible") {
  try {
    await locator.waitFor({ state, timeout: left(since, budgetMs) });
  } catch (err) {
    const late = await locator.waitFor({ state, timeout: 3000 }).then(() => `it took ${Date.now() - since} ms`, () => "not even 3 s later");
    throw new Error(`${what}: not ${state} within ${budgetMs} ms; ${late}`);
  }
}

/** What is left of `budgetMs` counted from `since` (at least 1 ms, so a wait still checks once). */
export function left(since, budgetMs) {
  return Math.max(1, budgetMs - (Date.now() - since));
}

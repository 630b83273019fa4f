// The board in Chromium at one project size, for bench/board.py: how long the first screen
// takes, how many DOM nodes it holds, and how long a remote change takes to be painted after
// its poke arrived. Each variant is a directory of static files (index.html, js/, css/) served in place
// of the app's own (null: the app's), so two versions of the page meet the same server, data
// and pokes. Measured in the page, not by the app's marks (an older page has none): a
// MutationObserver sees the cards or the changed title, and the paint is the first task
// after the next animation frame; the same element is marked for Element Timing, whose
// renderTime is when Chromium painted it. The app's own performance marks are read too.
//
// The variants' loads take turns (one of each, then again), so the machine's load swings
// meet them alike.
//
//   node bench/lib/board_probe.mjs <spec.json>   ->  JSON on stdout

import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import path from "node:path";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { url, project, email, password, loads, changes, variants } = spec;
// A page the probe serves (not the app) is not on the local network to Chromium, whose
// Local Network Access checks would then refuse its WebSocket to the local push server.
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-features=LocalNetworkAccessChecks"];
const TYPES = { ".js": "text/javascript", ".css": "text/css", ".html": "text/html" };

/** In the page from its first byte: when the first cards were painted, and every push message's arrival. */
const INSTRUMENT = () => {
  window.benchPokes = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => window.benchPokes.push(performance.now()));
    }
  };
  const painted = (cb) => requestAnimationFrame(() => setTimeout(() => cb(performance.now()), 0));
  // Element Timing: the time Chromium painted an element marked before its first paint
  // (the observers below run before the frame). Exact, and blind to tasks queued after it.
  window.benchRendered = new Map();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.benchRendered.set(e.identifier, e.renderTime || e.loadTime);
  }).observe({ type: "element", buffered: true });
  window.benchElementTime = (id, timeoutMs) =>
    new Promise((resolve) => {
      const until = performance.now() + timeoutMs;
      const look = () => {
        if (window.benchRendered.has(id)) resolve(window.benchRendered.get(id));
        else if (performance.now() > until) resolve(null);
        else setTimeout(look, 20);
      };
      look();
    });
  const seen = new MutationObserver(() => {
    const title = document.querySelector('[data-testid="story-card"] [data-testid="story-title"]');
    if (!title) return;
    seen.disconnect();
    title.setAttribute("elementtiming", "first-card");
    painted((t) => (window.benchFirstScreen = t));
  });
  seen.observe(document, { subtree: true, childList: true });
  /** Resolves with the time `title` was painted on the card of `storyId` (null after `timeoutMs`). */
  window.benchPaintOf = (storyId, title, timeoutMs) =>
    new Promise((resolve) => {
      const shows = () => {
        const el = document.querySelector(`[data-story-id="${storyId}"] [data-testid="story-title"]`);
        return el !== null && el.textContent === title;
      };
      const timer = setTimeout(() => {
        watch.disconnect();
        resolve(null);
      }, timeoutMs);
      const watch = new MutationObserver(() => {
        if (!shows()) return;
        watch.disconnect();
        clearTimeout(timer);
        document.querySelector(`[data-story-id="${storyId}"] [data-testid="story-title"]`).setAttribute("elementtiming", title);
        painted(resolve);
      });
      watch.observe(document.querySelector('[data-testid="board"]'), { subtree: true, childList: true, characterData: true });
    });
};

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
}

async function signedIn(browser) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  context.setDefaultTimeout(60000);
  const r = await context.request.post(`${url}/api/session`, { data: { email, password } });
  if (!r.ok()) throw new Error(`sign-in: HTTP ${r.status()}`);
  const csrf = (await r.json()).csrf_token;
  return { context, csrf };
}

async function serveFrom(context, dir) {
  if (!dir) return;
  // The page itself too: its inline script is part of the version being measured.
  const ours = (u) => /^\/(js|css)\//.test(u.pathname) || u.pathname === "/" || u.pathname === "/index.html";
  await context.route(ours, (route) => {
    const rel = new URL(route.request().url()).pathname.replace(/^\/$/, "/index.html").replace(/^\//, "");
    const file = path.join(dir, rel);
    try {
      route.fulfill({ status: 200, contentType: TYPES[path.extname(file)] || "application/octet-stream", body: readFileSync(file) });
    } catch {
      route.fulfill({ status: 404, body: "" });
    }
  });
}

/** A variant's browser context (signed in, serving its files, instrumented) and its results. */
async function prepare(browser, name, dir) {
  const { context, csrf } = await signedIn(browser);
  await serveFrom(context, dir);
  await context.addInitScript(INSTRUMENT);
  const out = { variant: name, first_screen_ms: [], first_card_painted_ms: [], first_screen_parts: [], dom_nodes: null, rendered_cards: null, paint_after_poke_ms: [], paint_after_send_ms: [], rendered_after_poke_ms: [], missed: 0, app_marks: {} };
  return { context, csrf, out, page: null };
}

/** One load of the board in a fresh tab: its first screen and where the time went. */
async function load(v) {
  const { context, out } = v;
  if (v.page) await v.page.close();
  const page = (v.page = await context.newPage());
  await page.goto(`${url}/#/projects/${project}`);
  await page.waitForFunction(() => window.benchFirstScreen !== undefined, null, { timeout: 120000 });
  out.first_screen_ms.push(await page.evaluate(() => window.benchFirstScreen));
  out.first_card_painted_ms.push(await page.evaluate(() => window.benchElementTime("first-card", 2000)));
  // Where the first screen's time went: the page's script, /api/me, the snapshot, the render.
  out.first_screen_parts.push(
    await page.evaluate((p) => {
      const end = (re) => performance.getEntriesByType("resource").find((e) => re.test(e.name))?.responseEnd ?? null;
      const mark = performance.getEntriesByName("tidings:board-first-render")[0];
      return {
        script_ms: end(/\/js\/board\.js$/),
        me_ms: end(/\/api\/me$/),
        snapshot_ms: end(new RegExp(`/api/projects/${p}$`)),
        snapshot_bytes: performance.getEntriesByType("resource").find((e) => e.name.endsWith(`/api/projects/${p}`))?.encodedBodySize ?? null,
        rendered_ms: mark ? mark.startTime : null,
        painted_ms: window.benchFirstScreen,
      };
    }, project),
  );
}

/** The remote changes on the variant's last loaded page, then its medians. */
async function changesOn(v) {
  const { context, csrf, out, page } = v;
  const name = out.variant;
  await page.locator('[data-testid="sync-status"][data-status="live"]').waitFor({ timeout: 30000 });
  out.dom_nodes = await page.evaluate(() => document.getElementsByTagName("*").length);
  out.rendered_cards = await page.locator('[data-testid="story-card"]').count();
  // Changes made elsewhere (this context's request API, not the page): a new title on a
  // card of the first screen, alternately the first backlog and the first icebox card.
  const snapshot = await (await context.request.get(`${url}/api/projects/${project}`)).json();
  const targets = ["unstarted", "unscheduled"].map((state) => snapshot.stories.find((s) => s.state === state)).filter(Boolean);
  for (let i = 0; i < changes; i += 1) {
    const story = targets[i % targets.length];
    const title = `${name} change ${i} ${Date.now()}`;
    const painted = page.evaluate(([id, t]) => window.benchPaintOf(id, t, 10000), [story.id, title]);
    const sentAt = await page.evaluate(() => performance.now());
    const r = await context.request.post(`${url}/api/projects/${project}/commands`, {
      headers: { "X-Tidings-CSRF": csrf },
      data: { command: { type: "update_story", story_id: story.id, title } },
    });
    if (!r.ok()) throw new Error(`change refused: HTTP ${r.status()} ${await r.text()}`);
    const at = await painted;
    if (at === null) {
      out.missed += 1;
      continue;
    }
    const poke = await page.evaluate(([from, to]) => window.benchPokes.filter((t) => t >= from && t <= to).at(0) ?? null, [sentAt, at]);
    const rendered = await page.evaluate((t) => window.benchElementTime(t, 2000), title);
    out.paint_after_send_ms.push(at - sentAt);
    if (poke !== null) out.paint_after_poke_ms.push(at - poke);
    if (poke !== null && rendered !== null) out.rendered_after_poke_ms.push(rendered - poke);
    // Let the page settle between changes: they are measured one at a time.
    await page.waitForTimeout(150);
  }
  out.app_marks = await page.evaluate(() => {
    const by = {};
    for (const e of performance.getEntriesByType("measure")) if (e.name.startsWith("tidings:")) (by[e.name] ||= []).push(e.duration);
    return Object.fromEntries(Object.entries(by).map(([k, v]) => [k, { count: v.length, median_ms: v.sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)] }]));
  });
  out.first_screen_median_ms = median(out.first_screen_ms);
  out.first_card_painted_median_ms = median(out.first_card_painted_ms.filter((v) => v !== null));
  out.rendered_after_poke_median_ms = median(out.rendered_after_poke_ms);
  out.paint_after_poke_median_ms = median(out.paint_after_poke_ms);
  out.paint_after_send_median_ms = median(out.paint_after_send_ms);
  await context.close();
  return out;
}

const browser = await chromium.launch({ executablePath: process.env.TIDINGS_CHROMIUM || "/usr/bin/chromium", args: ARGS, timeout: 30000 });
try {
  const results = [];
  const prepared = [];
  for (const [name, dir] of Object.entries(variants)) prepared.push(await prepare(browser, name, dir));
  // Loads take turns across the variants, so a swing in the machine's load meets them all.
  for (let i = 0; i < loads; i += 1) for (const v of prepared) await load(v);
  for (const v of prepared) results.push(await changesOn(v));
  process.stdout.write(JSON.stringify(results));
} finally {
  await browser.close();
}

// The converted to-do page (examples/flask-todo, docs/ADOPTING.md step 4) in Chromium:
// it loads the npm package's files from the app, goes live over push, and shows an item
// another user adds within POKE_MS, with no reload.
//
//   node tests/examples/todo_page.mjs APP_URL PAGE_TOKEN LIST_ID OTHER_TOKEN TEXT

import { check, scenario } from "../browser/lib.mjs";

/** Commit to shown, on a busy 2-core machine (the page polls every 60 s while live). */
const POKE_MS = 1500;
const [, , , token, listId, otherToken, text] = process.argv;

await scenario("todo_page", async (browser, url, pages) => {
  const page = await browser.newPage();
  page.tidingsLog = [];
  page.on("pageerror", (e) => page.tidingsLog.push(`[pageerror] ${e.message}`));
  page.on("console", (m) => page.tidingsLog.push(`[console] ${m.text()}`));
  pages.push(page);
  await page.goto(`${url}/?list=${listId}&token=${token}`);
  await page.waitForSelector('body[data-status="live"]', { timeout: 15000 });
  check((await page.locator("#status").textContent()) === "Live", "the status line does not say Live");

  const started = Date.now();
  const answer = await fetch(`${url}/api/lists/${listId}/items`, {
    method: "POST",
    headers: { Authorization: `Bearer ${otherToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
    signal: AbortSignal.timeout(5000),
  });
  check(answer.status === 201, `adding the item answered ${answer.status}`);
  await page.locator("#items li", { hasText: text }).waitFor({ timeout: POKE_MS + 2000 });
  const shownMs = Date.now() - started;
  check(shownMs < POKE_MS, `the item showed ${shownMs} ms after it was added`);
  check((await page.getAttribute("body", "data-status")) === "live", "the page left live");
});

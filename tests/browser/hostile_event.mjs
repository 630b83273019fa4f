// A hostile event reaches the board (the browser never builds HTML from data): ada's
// page polls, and the poll's answer for a story she did not write is rewritten on the way
// in, its type, title, labels and description made of markup with handlers. The card and
// its detail panel must show that markup as text: no script runs, no element is made of it.
//
//   node tests/browser/hostile_event.mjs http://localhost:8000

import { apiSession, boardPage, check, scenario, waitStatus } from "./lib.mjs";

const POLL_URL = /\/api\/projects\/\d+\/events\?since=|\/api\/poll\?/;
const MARK = `Hostile story ${process.pid}`;
// Each handler records which payload ran; `injected-*` ids mark the elements it would make.
const TYPE = 'x"><image id="injected-image" href="data:," onerror="window.__pwned.push(`type-image`)"></image>'
  + '<set id="injected-set" attributeName="opacity" to="1" dur="1s" onbegin="window.__pwned.push(`type-set`)"></set>'
  + '<foreignObject><img id="injected-fo" src="x:" onerror="window.__pwned.push(`type-img`)"></foreignObject><svg class="';
const TEXT = '<img id="injected-text" src="x:" onerror="window.__pwned.push(`text`)"><script>window.__pwned.push(`script`)</script>';

function poison(events) {
  let n = 0;
  for (const event of events || []) {
    if (event.type !== "story_created" || event.data.story.title !== MARK) continue;
    Object.assign(event.data.story, { story_type: TYPE, title: `${MARK} ${TEXT}`, labels: [TEXT], description: TEXT });
    n += 1;
  }
  return n;
}

await scenario("hostile_event", async (browser, url, pages) => {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  await ada.addInitScript(() => { window.__pwned = []; });
  // The page's own inline script (its early requests) is there before any event is.
  await ada.evaluate(() => { window.__pwned = []; window.__ownScripts = new Set(document.querySelectorAll("script")); });
  let poisoned = 0;
  await ada.route(POLL_URL, async (route) => {
    const response = await route.fetch();
    if (response.status() !== 200) return route.fulfill({ response }); // a 304 has no body
    const body = await response.json();
    if (body.events) poisoned += poison(body.events);
    for (const one of Object.values(body.projects || {})) poisoned += poison(one.events);
    await route.fulfill({ response, json: body });
  });
  await waitStatus(ada, "live", 10000, "ada");

  // Someone else writes the story: ada's page learns of it by push, and polls its event.
  const other = await apiSession(url, "grace");
  const r = await other.command(other.projectId, { type: "create_story", title: MARK, state: "unstarted" });
  check(r.status === 200, `create refused: ${JSON.stringify(r)}`);
  const card = ada.locator('[data-testid="story-card"]', { hasText: MARK });
  await card.waitFor({ timeout: 10000 });
  check(poisoned >= 1, "the hostile event never reached the page (nothing was tested)");
  await card.click();
  await ada.getByTestId("story-detail").waitFor();

  // The payload's handlers fire as soon as their element is in the document (a failed
  // load, an animation start): give them a moment to, then look.
  await ada.waitForTimeout(1000);
  const found = await ada.evaluate(() => ({
    ran: window.__pwned,
    made: [...document.querySelectorAll('[id^="injected"], image, set, foreignObject, img, script:not([src])')].filter((e) => !window.__ownScripts.has(e)).map((e) => e.outerHTML.slice(0, 80)),
    title: document.querySelector('[data-testid="story-card"].selected [data-testid="story-title"], [data-testid="story-title"]') && [...document.querySelectorAll('[data-testid="story-title"]')].map((e) => e.textContent).find((t) => t.includes("Hostile story")),
  }));
  check(found.ran.length === 0, `script from the event ran: ${found.ran.join(", ")}`);
  check(found.made.length === 0, `elements made from the event: ${found.made.join(" | ")}`);
  check(found.title && found.title.includes("<img id=\"injected-text\""), `the title is not shown as text: ${found.title}`);
  const label = await card.locator(".label").first().textContent();
  check(label.includes("<script>"), `the label is not shown as text: ${label}`);
});

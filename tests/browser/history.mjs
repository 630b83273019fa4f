// History from the event log: a story's changes in its panel and the project's activity
// feed, newest first, in sentences, updated live as others change things, paged, and
// with user text shown as text. Linus (a viewer) watches; Grace changes things from elsewhere.
// Screenshot for the README: history-view.png, a story's history and the feed side by side.
//
//   node tests/browser/history.mjs http://localhost:8000

import { apiSession, boardPage, cardByTitle, check, scenario, screenshot } from "./lib.mjs";

/** The texts of a history list's entries, newest first, and whether their versions descend. */
async function entries(list) {
  const rows = await list.locator('[data-testid="history-entry"]').evaluateAll((els) => els.map((el) => ({ v: Number(el.dataset.version), text: el.querySelector(".history-text").textContent })));
  const descending = rows.every((r, i) => i === 0 || rows[i - 1].v > r.v);
  return { texts: rows.map((r) => r.text), versions: rows.map((r) => r.v), descending };
}

/** Wait until the list's newest entry reads `text`. */
async function newest(page, testid, text, what) {
  try {
    await page.waitForFunction(
      ([id, t]) => document.querySelector(`[data-testid="${id}"] [data-testid="history-entry"] .history-text`)?.textContent === t,
      [testid, text],
      { timeout: 6000 },
    );
  } catch (err) {
    const now = await page.locator(`[data-testid="${testid}"] [data-testid="history-entry"] .history-text`).first().textContent().catch(() => "(none)");
    throw new Error(`${what}: the newest entry reads "${now}", not "${text}"`);
  }
}

await scenario("history", async (browser, url, pages) => {
  const linus = await boardPage(browser, url, "linus");
  pages.push(linus);
  const grace = await apiSession(url, "grace");
  const projectId = Number(new URL(linus.url()).hash.split("/")[2]);
  const title = `History ${Date.now()}`;
  const made = await grace.command(projectId, { type: "create_story", title, story_type: "bug", state: "unstarted" });
  check(made.status === 200, `create refused: ${JSON.stringify(made)}`);
  const storyId = made.body.event.data.story.id;

  // The story's panel: its creation, then a move made elsewhere arrives while it is open.
  await cardByTitle(linus, title).waitFor({ timeout: 6000 });
  await cardByTitle(linus, title).click();
  await newest(linus, "story-history", "Grace Hopper created this story in Unstarted", "story history");
  const moved = await grace.command(projectId, { type: "move_story", story_id: storyId, before_id: null, state: "started" });
  check(moved.status === 200, `move refused: ${JSON.stringify(moved)}`);
  await newest(linus, "story-history", "Grace Hopper moved this story to Started", "live story history");
  const hostile = `<img src=x onerror="window.__pwned=1"> & <b>bold</b>`;
  await grace.command(projectId, { type: "add_comment", story_id: storyId, text: hostile });
  await newest(linus, "story-history", `Grace Hopper commented on this story: '${hostile}'`, "comment in story history");
  const story = await entries(linus.getByTestId("story-history"));
  check(story.texts.length === 3 && story.descending, `story history: ${JSON.stringify(story)}`);
  check((await linus.locator('[data-testid="story-detail"] img, [data-testid="story-detail"] b').count()) === 0, "user text became markup");

  // The activity feed: the same changes, naming the story, newest first, with times.
  await linus.getByTestId("activity-toggle").click();
  const feed = linus.getByTestId("activity-list");
  await newest(linus, "activity-list", `Grace Hopper commented on '${title}': '${hostile}'`, "feed");
  let shown = await entries(feed);
  check(shown.texts[1] === `Grace Hopper moved '${title}' to Started`, `feed: ${JSON.stringify(shown.texts.slice(0, 3))}`);
  check(shown.descending, `feed out of order: ${shown.versions}`);
  const time = feed.locator("time").first();
  check((await time.textContent()) === "just now", `time: ${await time.textContent()}`);
  check(Math.abs(Date.parse(await time.getAttribute("datetime")) - Date.now()) < 120000, "the absolute time is not now");
  check(Boolean(await time.getAttribute("title")), "no absolute time on hover");

  // Live into the feed, then older pages on request.
  await grace.command(projectId, { type: "update_story", story_id: storyId, estimate: 3, labels: ["history"] });
  await newest(linus, "activity-list", `Grace Hopper changed '${title}': points to 3, labels to history`, "live feed");
  shown = await entries(feed);
  const before = shown.versions.length;
  await linus.getByTestId("history-older").last().click();
  await linus.waitForFunction((n) => document.querySelectorAll('[data-testid="activity-list"] [data-testid="history-entry"]').length > n, before, { timeout: 5000 });
  shown = await entries(feed);
  check(shown.descending, `after "Show older", out of order: ${shown.versions}`);
  check(new Set(shown.versions).size === shown.versions.length, "an event is shown twice");
  check(await linus.evaluate(() => window.__pwned === undefined), "user text ran as code");
  await screenshot(linus, "history.png");

  // Closing the feed returns focus to its button.
  await linus.getByTestId("activity-close").click();
  check(await linus.getByTestId("activity").isHidden(), "the feed did not close");
  check(await linus.getByTestId("activity-toggle").evaluate((el) => el === document.activeElement), "focus did not return to Activity");

  // For the README: one story's life so far, in its panel and at the top of the feed.
  const shot = "Export a sprint report as CSV";
  const report = await grace.command(projectId, { type: "create_story", title: shot, story_type: "feature", state: "unstarted" });
  check(report.status === 200, `create refused: ${JSON.stringify(report)}`);
  const reportId = report.body.event.data.story.id;
  for (const cmd of [
    { type: "update_story", story_id: reportId, estimate: 3, labels: ["reports"], description: "One row per story: title, points, owner, accepted date." },
    { type: "move_story", story_id: reportId, before_id: null, state: "started" },
    { type: "add_task", story_id: reportId, text: "List the columns" },
    { type: "add_comment", story_id: reportId, text: "Drafted the column list; review welcome." },
  ]) {
    const done = await grace.command(projectId, cmd);
    check(done.status === 200, `${cmd.type} refused: ${JSON.stringify(done)}`);
  }
  const reportCard = linus.locator(`[data-testid="story-card"][data-story-id="${reportId}"]`);
  await reportCard.waitFor({ timeout: 6000 });
  await reportCard.click();
  await newest(linus, "story-history", "Grace Hopper commented on this story: 'Drafted the column list; review welcome.'", "README story");
  await linus.getByTestId("activity-toggle").click();
  await newest(linus, "activity-list", `Grace Hopper commented on '${shot}': 'Drafted the column list; review welcome.'`, "README feed");
  await linus.getByTestId("activity-list").evaluate((el) => el.closest(".activity")?.querySelectorAll("*").forEach((n) => n.scrollTop && n.scrollTo({ top: 0 })));
  await screenshot(linus, "history-view.png");
}, { limitMs: 30000 });

// A long board: a remote change patches only the card it changed (every other card keeps
// its DOM node), long sections render a window of cards that grows as they scroll into
// view, Done starts collapsed with its count, and every card stays reachable by scrolling
// and by keyboard.
//
//   node tests/browser/board_scale.mjs http://localhost:8000

import { apiSession, boardPage, check, scenario } from "./lib.mjs";

/** Cards a section renders at first and adds per step (views/board-view.js PAGE). */
const PAGE = 30;
const BACKLOG = 2 * PAGE + 17;
const DONE = PAGE + 12;

const cardsIn = (page, section) => page.getByTestId(`list-${section}`).getByTestId("story-card");

/** Wait (bounded) until `count()` reaches `want`. */
async function countReaches(count, want, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  let now = await count();
  while (now !== want) {
    if (Date.now() > deadline) throw new Error(`${what}: ${now} cards, expected ${want}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    now = await count();
  }
}

await scenario("board_scale", async (browser, url, pages) => {
  // A project of its own, grown through the API: BACKLOG stories to do, DONE accepted.
  const elsewhere = await apiSession(url, "ada");
  const projectId = await elsewhere.createProject(`Long board ${Date.now()}`);
  const made = [];
  for (let i = 0; i < BACKLOG + DONE; i += 1) {
    const accepted = i >= BACKLOG;
    made.push({ type: "create_story", title: `${accepted ? "Done" : "Todo"} ${i}`, story_type: "feature", state: accepted ? "accepted" : "unstarted" });
  }
  for (let i = 0; i < made.length; i += 10) {
    const answers = await Promise.all(made.slice(i, i + 10).map((cmd) => elsewhere.command(projectId, cmd)));
    for (const a of answers) check(a.status === 200, `create refused: ${JSON.stringify(a)}`);
  }

  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  await ada.goto(`${url}/#/projects/${projectId}`);
  await ada.getByTestId("list-backlog").getByText("Todo 0", { exact: true }).waitFor();

  // First screen: one window of the backlog, Done collapsed with its count.
  check((await cardsIn(ada, "backlog").count()) === PAGE, `backlog renders ${await cardsIn(ada, "backlog").count()} cards, not ${PAGE}`);
  check((await cardsIn(ada, "done").count()) === 0, "Done is not collapsed");
  const toggle = ada.getByTestId("toggle-done");
  check((await toggle.getAttribute("aria-expanded")) === "false", "Done's toggle does not say it is collapsed");
  check((await toggle.textContent()).includes(String(DONE)), `Done's toggle does not give its count: ${await toggle.textContent()}`);
  check((await ada.getByTestId("column-done").locator(".column-count").textContent()) === String(DONE), "Done's column count is wrong");

  // A remote change patches one card: every other card keeps its DOM node.
  await ada.evaluate(() => {
    window.tidingsCards = new Map([...document.querySelectorAll('[data-testid="story-card"]')].map((el) => [el.dataset.storyId, el]));
    window.tidingsAdded = 0;
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) if (n.nodeType === 1 && n.matches('[data-testid="story-card"]')) window.tidingsAdded += 1;
    }).observe(document.querySelector('[data-testid="board"]'), { subtree: true, childList: true });
  });
  const snapshot = await ada.evaluate(async (p) => (await fetch(`/api/projects/${p}`)).json(), projectId);
  const target = snapshot.stories.find((s) => s.title === "Todo 7");
  const renamed = await elsewhere.command(projectId, { type: "update_story", story_id: target.id, title: "Todo 7 renamed elsewhere" });
  check(renamed.status === 200, `rename refused: ${JSON.stringify(renamed)}`);
  await ada.getByTestId("list-backlog").getByText("Todo 7 renamed elsewhere", { exact: true }).waitFor({ timeout: 5000 });
  const kept = await ada.evaluate((changed) => {
    const now = [...document.querySelectorAll('[data-testid="story-card"]')];
    const same = now.filter((el) => window.tidingsCards.get(el.dataset.storyId) === el).length;
    const replaced = now.filter((el) => window.tidingsCards.get(el.dataset.storyId) !== el).map((el) => Number(el.dataset.storyId));
    return { total: now.length, same, replaced, added: window.tidingsAdded, changed };
  }, target.id);
  check(kept.total === PAGE, `the board now shows ${kept.total} cards, not ${PAGE}`);
  check(kept.same === PAGE - 1 && kept.replaced.length === 1 && kept.replaced[0] === target.id, `not only the renamed card was rebuilt: ${JSON.stringify(kept)}`);
  check(kept.added === 1, `${kept.added} cards were added to the page for one rename`);

  // Scrolling the backlog renders the rest, in the project's order.
  const backlogTitles = snapshot.stories.filter((s) => s.state === "unstarted").map((s) => (s.id === target.id ? "Todo 7 renamed elsewhere" : s.title));
  const body = ada.getByTestId("column-current").locator(".column-body");
  for (let step = 0; step < 10 && (await cardsIn(ada, "backlog").count()) < BACKLOG; step += 1) {
    const before = await cardsIn(ada, "backlog").count();
    await body.evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await countReaches(() => cardsIn(ada, "backlog").count(), Math.min(BACKLOG, before + PAGE), "scrolled backlog");
  }
  const shown = await ada.getByTestId("list-backlog").getByTestId("story-title").allTextContents();
  check(JSON.stringify(shown) === JSON.stringify(backlogTitles), `scrolled backlog differs from the project: ${shown.length} of ${backlogTitles.length}`);
  check(await ada.getByTestId("more-backlog").isHidden(), "the backlog still offers more after showing everything");

  // Keyboard: open Done, then Enter on "Show earlier" brings the rest and focuses the first new card.
  await toggle.focus();
  await ada.keyboard.press("Enter");
  await countReaches(() => cardsIn(ada, "done").count(), PAGE, "opened Done");
  check((await toggle.getAttribute("aria-expanded")) === "true", "Done's toggle does not say it is open");
  const accepted = snapshot.stories.filter((s) => s.state === "accepted").map((s) => s.title);
  const doneTitles = await ada.getByTestId("list-done").getByTestId("story-title").allTextContents();
  check(JSON.stringify(doneTitles) === JSON.stringify(accepted.slice(-PAGE)), `opened Done does not show its newest ${PAGE}: ${doneTitles.at(0)}…${doneTitles.at(-1)}`);
  await ada.keyboard.press("Tab");
  check(await ada.evaluate(() => document.activeElement.dataset.testid === "more-done"), "Tab from Done's toggle does not reach its Show earlier button");
  await ada.keyboard.press("Enter");
  await countReaches(() => cardsIn(ada, "done").count(), DONE, "Done after Show earlier");
  const focused = await ada.evaluate(() => document.activeElement.closest('[data-testid="story-card"]')?.textContent || null);
  const firstShown = accepted[accepted.length - PAGE - 1];
  check(focused && focused.includes(firstShown), `focus is not on the first card shown (${firstShown}): ${focused}`);
  check(await ada.getByTestId("more-done").isHidden(), "Done still offers earlier stories after showing all");
  const allDone = await ada.getByTestId("list-done").getByTestId("story-title").allTextContents();
  check(JSON.stringify(allDone) === JSON.stringify(accepted), `Done does not hold every accepted story in order: ${allDone.length} of ${DONE}`);
});

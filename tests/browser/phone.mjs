// The board and the admin page on a phone (390 x 844, touch): the page never scrolls
// sideways, the top bar's items all fit, the sync indicator's label is whole, the columns
// scroll inside the board, a story opens over the whole screen and is edited and saved by
// touch, and primary controls are at least 44 px; at a tablet's widths the page fits too.
// The filter bar's controls are all on the screen, whole and apart; the shortcuts help has
// a button; a card's Move menu reorders it and changes its state by touch and by keyboard,
// each move announced. Screenshots: phone.png, phone-dark.png.
//
//   node tests/browser/phone.mjs http://localhost:8000

import { cardByTitle, check, command, scenario, screenshot, signIn, waitStatus } from "./lib.mjs";

const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const TOUCH = 44;

async function phonePage(browser, url, who, path) {
  const context = await browser.newContext(PHONE);
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  page.tidingsLog = [];
  page.on("pageerror", (e) => page.tidingsLog.push(`[${who} pageerror] ${e.message}`));
  await signIn(page, url, who, path);
  return page;
}

/** The page fits the phone: no sideways scroll, and the layout viewport was not widened to fit. */
async function fits(page, what) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  // A mobile browser widens the layout viewport to the content: innerWidth must still be the phone's.
  check(innerWidth === PHONE.viewport.width, `${what}: the layout viewport is ${innerWidth} px wide, not ${PHONE.viewport.width} (content overflowed)`);
  check(scrollWidth <= innerWidth, `${what}: the page is ${scrollWidth} px wide in a ${innerWidth} px window`);
}

/** Each element of `locator` lies within the window's width. */
async function within(locator, what) {
  const outside = await locator.evaluateAll((els) =>
    els
      .filter((el) => el.getClientRects().length > 0)
      .map((el) => [el.outerHTML.slice(0, 60), el.getBoundingClientRect()])
      .filter(([, r]) => r.left < -0.5 || r.right > window.innerWidth + 0.5)
      .map(([html, r]) => `${html} (${Math.round(r.left)}..${Math.round(r.right)})`),
  );
  check(outside.length === 0, `${what} reach past the screen's edge:\n${outside.join("\n")}`);
}

/**
 * The toolbar's controls (filters, Clear all, Activity, help) are on the screen, not cut by
 * a scrolling or clipping parent, not overlapping each other, and each select is wide enough
 * for the choice it shows.
 */
async function toolbarWhole(page, what) {
  const problems = await page.locator(".toolbar").evaluate((bar) => {
    const out = [];
    const controls = [...bar.querySelectorAll("input, select, button")].filter((el) => el.getClientRects().length > 0);
    const boxes = controls.map((el) => [el.dataset.testid, el.getBoundingClientRect()]);
    for (const [el, [id, r]] of controls.map((el, i) => [el, boxes[i]])) {
      if (r.left < -0.5 || r.top < -0.5 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) out.push(`${id} lies outside the window: ${JSON.stringify(r)}`);
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        const style = getComputedStyle(p);
        if (style.overflowX === "visible" && style.overflowY === "visible") continue;
        const c = p.getBoundingClientRect();
        if (r.left < c.left - 0.5 || r.right > c.right + 0.5 || r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5) out.push(`${id} is cut by ${p.className}`);
      }
      if (el.tagName === "SELECT") {
        // Its shown choice at its natural width, measured on a copy that may size itself.
        const copy = el.cloneNode(true);
        copy.value = el.value;
        copy.style.cssText = "position:absolute;visibility:hidden;width:auto;max-width:none;min-width:0";
        document.body.append(copy);
        const natural = copy.getBoundingClientRect().width;
        copy.remove();
        if (natural > r.width + 0.5) out.push(`${id} is ${Math.round(r.width)} px wide, its choice needs ${Math.round(natural)}`);
      }
    }
    for (let i = 0; i < boxes.length; i += 1) {
      for (let j = i + 1; j < boxes.length; j += 1) {
        const [a, ra] = boxes[i];
        const [b, rb] = boxes[j];
        const apart = ra.right <= rb.left + 0.5 || rb.right <= ra.left + 0.5 || ra.bottom <= rb.top + 0.5 || rb.bottom <= ra.top + 0.5;
        if (!apart) out.push(`${a} overlaps ${b}`);
      }
    }
    return { out, ids: boxes.map(([id]) => id) };
  });
  for (const id of ["filter-text", "filter-type", "filter-state", "filter-owner", "filter-label", "activity-toggle", "shortcuts-open"]) {
    check(problems.ids.includes(id), `${what}: ${id} is not shown`);
  }
  check(problems.out.length === 0, `${what}:\n${problems.out.join("\n")}`);
}

/** The ids of a list's cards, in order. */
async function order(page, list) {
  return page.getByTestId(list).getByTestId("story-card").evaluateAll((cards) => cards.map((c) => Number(c.dataset.storyId)));
}

async function announced(page, pattern, what) {
  await page.waitForFunction((source) => new RegExp(source).test(document.querySelector('[data-testid="board-announcer"]').textContent), pattern.source, { timeout: 5000 }).catch(async () => {
    throw new Error(`${what}: the announcer says "${await page.getByTestId("board-announcer").textContent()}", not ${pattern}`);
  });
}

async function touchable(locator, what) {
  const box = await locator.boundingBox();
  check(box !== null, `${what} is not on the screen`);
  check(box.width >= TOUCH && box.height >= TOUCH, `${what} is ${Math.round(box.width)} x ${Math.round(box.height)} px, under ${TOUCH} x ${TOUCH}`);
}

await scenario("phone", async (browser, url, pages) => {
  const page = await phonePage(browser, url, "grace", "/");
  pages.push(page);
  await page.getByTestId("board").waitFor({ timeout: 15000 });
  await waitStatus(page, "live", 10000, "phone");
  await fits(page, "board");
  await within(page.locator(".topbar > *, .topbar-nav > *, .topbar-user > *, #sync-slot > *"), "top bar items");

  // The indicator's label is whole (not cut) and its accessible text is the full status.
  for (const id of ["sync-status", "sync-label"]) {
    const { scroll, client } = await page.getByTestId(id).evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    check(scroll <= client, `${id} is clipped: ${scroll} px of text in ${client} px`);
  }
  const label = await page.getByTestId("sync-label").textContent();
  check(label === "Live (push)", `the indicator says "${label}"`);
  // The longest label it can show fits as well (set in place for the measurement, then put back).
  const longest = await page.getByTestId("sync-label").evaluate((el) => {
    const shown = el.textContent;
    el.textContent = "Polling — push unavailable";
    const bar = document.querySelector(".topbar").getBoundingClientRect();
    const box = el.closest('[data-testid="sync-status"]');
    const out = { clipped: el.scrollWidth > el.clientWidth || box.scrollWidth > box.clientWidth, right: box.getBoundingClientRect().right, bar: bar.height };
    el.textContent = shown;
    return out;
  });
  check(!longest.clipped && longest.right <= 390, `"Polling — push unavailable" does not fit: ${JSON.stringify(longest)}`);
  check(longest.bar <= 120, `the top bar is ${longest.bar} px tall with the longest label`);

  for (const [locator, what] of [
    [page.getByTestId("sign-out"), "Sign out"],
    [page.getByTestId("new-project-open"), "New project"],
    [page.getByTestId("project-picker"), "the project picker"],
    [page.getByTestId("add-story-icebox"), "Add story"],
    [page.getByTestId("list-icebox").getByTestId("story-card").first().locator(".btn-state"), "a card's state button"],
    [page.getByTestId("list-icebox").getByTestId("story-card").first().getByTestId("card-move"), "a card's Move button"],
    [page.getByTestId("shortcuts-open"), "the shortcuts help button"],
    [page.getByTestId("activity-toggle"), "Activity"],
  ]) await touchable(locator, what);

  // Cards keep their titles readable: buttons (44 px each) go under the title, not beside it.
  const narrow = await page.locator('[data-testid="story-title"]').evaluateAll((titles) =>
    titles.filter((t) => t.getClientRects().length > 0 && t.getBoundingClientRect().width < 120).map((t) => `${t.textContent} (${Math.round(t.getBoundingClientRect().width)} px)`),
  );
  check(narrow.length === 0, `card titles squeezed under 120 px:\n${narrow.join("\n")}`);

  // The filter bar: every control whole and apart, unfiltered and with a filter set (Clear all shows).
  await toolbarWhole(page, "the filter bar");
  await page.getByTestId("filter-type").selectOption("feature");
  await page.getByTestId("filter-clear").waitFor();
  await toolbarWhole(page, "the filter bar, filtered");
  await page.getByTestId("filter-clear").tap();
  await page.getByTestId("filter-clear").waitFor({ state: "hidden" });

  // The shortcuts help has a button a finger can press.
  await page.getByTestId("shortcuts-open").tap();
  await page.getByTestId("shortcuts-help").waitFor();
  await within(page.getByTestId("shortcuts-help"), "the shortcuts help");
  await page.getByTestId("shortcuts-close").tap();
  await page.getByTestId("shortcuts-help").waitFor({ state: "hidden" });

  // The columns scroll sideways inside the board, which fits the screen; Done can be reached.
  const board = page.getByTestId("board");
  const widths = await board.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
  check(widths.scroll > widths.client, `the board does not scroll sideways (${widths.scroll} in ${widths.client})`);
  await board.evaluate((el) => el.scrollTo({ left: el.scrollWidth }));
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-testid="column-done"]').getBoundingClientRect();
    return r.left >= 0 && r.right <= window.innerWidth + 0.5;
  }, null, { timeout: 3000 }).catch(() => {
    throw new Error("scrolled to the end, the Done column is still not on the screen");
  });
  await fits(page, "board scrolled to Done");
  await board.evaluate((el) => el.scrollTo({ left: 0 }));

  // A story of its own, opened by a tap: the panel covers the screen; edit and save by touch.
  const project = Number(/#\/projects\/(\d+)/.exec(page.url())[1]);
  const title = `On the phone ${Date.now()}`;
  const made = await command(page, project, { type: "create_story", title, story_type: "feature", state: "unscheduled" });
  check(made.status === 200 || made.status === 201, `story not created: ${JSON.stringify(made)}`);
  await page.waitForFunction(() => document.querySelector('[data-testid="board"]').scrollLeft === 0);
  await cardByTitle(page, title).getByTestId("story-title").tap();
  const detail = page.getByTestId("story-detail");
  await detail.waitFor();
  const panel = await detail.boundingBox();
  check(panel.x <= 0.5 && panel.y <= 0.5 && panel.width >= 389.5 && panel.height >= 843.5, `the story panel covers ${JSON.stringify(panel)}, not the screen`);
  await fits(page, "story panel");
  await touchable(page.getByTestId("detail-close"), "the panel's Close");
  await page.getByTestId("detail-title").fill(`${title} (edited)`);
  await page.getByTestId("detail-estimate").selectOption("3");
  await touchable(page.getByTestId("detail-save"), "Save");
  await page.getByTestId("detail-save").tap();
  await cardByTitle(page, `${title} (edited)`).waitFor();
  await page.getByTestId("detail-close").tap();
  await detail.waitFor({ state: "hidden" });
  const estimate = await cardByTitle(page, `${title} (edited)`).locator(".card-estimate").textContent();
  check(estimate === "3", `the saved story shows estimate "${estimate}"`);

  // Its Move menu, by touch: up one place within the Icebox; the move is announced.
  const edited = cardByTitle(page, `${title} (edited)`);
  const id = Number(await edited.getAttribute("data-story-id"));
  const before = await order(page, "list-icebox");
  check(before.indexOf(id) > 0, `the new story is not below another in the Icebox: ${before}`);
  await edited.getByTestId("card-move").tap();
  const menu = page.getByTestId("move-menu");
  await menu.waitFor();
  await within(menu, "the Move menu");
  await touchable(menu.getByTestId("move-up"), "the Move menu's Move up");
  await menu.getByTestId("move-up").tap();
  await menu.waitFor({ state: "hidden" });
  const want = [...before];
  want.splice(before.indexOf(id), 1);
  want.splice(before.indexOf(id) - 1, 0, id);
  await page.waitForFunction(([w]) => {
    const ids = [...document.querySelectorAll('[data-testid="list-icebox"] [data-testid="story-card"]')].map((c) => Number(c.dataset.storyId));
    return JSON.stringify(ids) === JSON.stringify(w);
  }, [want], { timeout: 5000 }).catch(async () => {
    throw new Error(`Move up: the Icebox is ${await order(page, "list-icebox")}, expected ${want}`);
  });
  await announced(page, new RegExp(`^Moved ".*\\(edited\\)" to Icebox, ${want.indexOf(id) + 1} of ${want.length}\\.$`), "Move up");

  // By keyboard: Enter on the Move button, arrows to "To Started", Enter; focus is back on the card.
  await edited.getByTestId("card-move").focus();
  await page.keyboard.press("Enter");
  await menu.getByTestId("move-up").waitFor();
  check(await menu.getByTestId("move-up").evaluate((el) => el === document.activeElement), "the opened menu's first item has no focus");
  for (let i = 0; i < 3; i += 1) await page.keyboard.press("ArrowDown");
  check(await menu.getByTestId("move-started").evaluate((el) => el === document.activeElement), "three arrows down do not reach To Started");
  await page.keyboard.press("Enter");
  await page.getByTestId("list-current").locator(`[data-story-id="${id}"]`).waitFor();
  await announced(page, /^Moved ".*\(edited\)" to Current, \d+ of \d+, now started\.$/, "To Started");
  await page.waitForFunction((sid) => document.activeElement?.dataset?.storyId === String(sid), id, { timeout: 3000 }).catch(() => {
    throw new Error("after a move from the menu, focus is not on the story's card");
  });
  // "m" on the card opens the menu; Escape closes it, back to the Move button.
  await page.keyboard.press("m");
  await menu.waitFor();
  await page.keyboard.press("Escape");
  await menu.waitFor({ state: "hidden" });
  check(await page.getByTestId("list-current").locator(`[data-story-id="${id}"]`).getByTestId("card-move").evaluate((el) => el === document.activeElement), "Escape does not return focus to the Move button");
  check(await detail.isHidden(), "Escape in the Move menu closed more than the menu");
  // Back to the Icebox by touch, out of the README's picture.
  await page.getByTestId("list-current").locator(`[data-story-id="${id}"]`).getByTestId("card-move").tap();
  await menu.getByTestId("move-unscheduled").tap();
  await page.getByTestId("list-icebox").locator(`[data-story-id="${id}"]`).waitFor();
  await announced(page, /^Moved ".*\(edited\)" to Icebox, \d+ of \d+, now unscheduled\.$/, "To Unscheduled");

  // For the README: the middle column, its neighbours' edges showing, in both schemes.
  await page.locator(".column-body").evaluateAll((bodies) => bodies.forEach((b) => b.scrollTo({ top: 0 })));
  await page.getByTestId("column-current").evaluate((el) => el.scrollIntoView({ inline: "center", block: "nearest" }));
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-testid="column-current"]').getBoundingClientRect();
    return Math.abs(r.left + r.right - window.innerWidth) < 4;
  }, null, { timeout: 3000 });
  await fits(page, "board on its middle column");
  await screenshot(page, "phone.png");
  await page.emulateMedia({ colorScheme: "dark" });
  await fits(page, "dark board");
  await screenshot(page, "phone-dark.png");

  // A tablet's width, upright and sideways: the board still never scrolls sideways.
  for (const [width, height] of [[768, 1024], [1024, 768]]) {
    await page.setViewportSize({ width, height });
    // A mobile browser widens its layout viewport to content that overflows.
    await page.waitForFunction((w) => window.innerWidth === w, width, { timeout: 3000 }).catch(async () => {
      throw new Error(`at ${width} px the layout viewport is ${await page.evaluate(() => window.innerWidth)} px wide: the content overflowed`);
    });
    const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
    check(scrollWidth <= innerWidth, `at ${width} px the page is ${scrollWidth} px wide`);
    await within(page.locator(".topbar > *, .topbar-nav > *, .topbar-user > *, #sync-slot > *"), `at ${width} px, top bar items`);
  }

  // The admin page: fits, its controls are on the screen and big enough to press.
  const admin = await phonePage(browser, url, "ada", "/admin.html");
  pages.push(admin);
  await admin.getByTestId("flags").locator(".flag-row").first().waitFor({ timeout: 15000 });
  await admin.getByTestId("figures").waitFor({ timeout: 10000 });
  await fits(admin, "admin page");
  await within(admin.locator(".topbar > *, .flag-row, .figure, .rollout > *"), "admin items");
  await touchable(admin.getByTestId("flag-enabled"), "the kill switch");
  await touchable(admin.getByTestId("sign-out"), "the admin page's Sign out");
  await touchable(admin.getByTestId("flag-rollout-apply"), "the rollout's Apply");

  for (const p of pages) for (const line of p.tidingsLog) check(!line.includes("pageerror"), line);
}, { limitMs: 30000 });

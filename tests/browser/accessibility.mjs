// axe-core in Chromium on the board, the story panel and the admin page: no serious or
// critical violation. And the keyboard: opening a story moves focus into its panel,
// Escape brings it back to the card; a new story's card gets focus; the indicator announces
// state changes only. With "dark", the same audits in a dark colour scheme (the pages follow
// prefers-color-scheme), the keyboard shortcuts' help included. A card's Move menu is
// audited open in both.
//
//   node tests/browser/accessibility.mjs http://localhost:8000 [light|dark]

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { adminPage, boardPage, cardByTitle, check, scenario, waitStatus } from "./lib.mjs";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const SEVERE = ["serious", "critical"];
const SCHEME = process.argv[3] || "light";

/** axe's serious and critical violations on `page` as it is now, one line each. */
async function audit(page, what) {
  // Through the DevTools protocol: the page's CSP refuses scripts it did not load itself.
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations);
  return violations
    .filter((v) => SEVERE.includes(v.impact))
    .map((v) => `${what}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}${v.nodes.length > 3 ? ` and ${v.nodes.length - 3} more` : ""}`);
}

/** The admin page (opened with `adminPage`), once its figures have a few samples: its audit. */
async function auditAdmin(opening, pages) {
  const admin = await opening;
  pages.push(admin);
  await admin.getByTestId("flags").waitFor({ timeout: 15000 });
  await admin.waitForFunction(() => Number(document.querySelector('[data-testid="stats"]')?.dataset.samples || 0) >= 2, null, { timeout: 8000 }).catch(() => {});
  return audit(admin, `admin (${SCHEME})`);
}

/** The keyboard shortcuts' help, opened with `?`: its audit; Escape closes it. */
async function auditHelp(page) {
  await page.keyboard.press("?");
  await page.getByTestId("shortcuts-help").waitFor();
  const found = await audit(page, `shortcuts help (${SCHEME})`);
  await page.keyboard.press("Escape");
  await page.getByTestId("shortcuts-help").waitFor({ state: "hidden" });
  return found;
}

/** The focused card's Move menu, opened with "m": its audit; Escape closes it. */
async function auditMoveMenu(page) {
  await page.keyboard.press("m");
  await page.getByTestId("move-menu").waitFor();
  const found = await audit(page, `move menu (${SCHEME})`);
  await page.keyboard.press("Escape");
  await page.getByTestId("move-menu").waitFor({ state: "hidden" });
  return found;
}

if (SCHEME === "dark") {
  // Grace, not Ada: the scenarios sign Ada in many times, and sign-ins per account are limited.
  await scenario("accessibility-dark", async (browser, url, pages) => {
    // The admin page opens meanwhile: its figures gather samples while the board is audited.
    const admin = adminPage(browser, url, { colorScheme: "dark" });
    admin.catch(() => {}); // awaited below; a failure there is reported there
    const grace = await boardPage(browser, url, "grace", { colorScheme: "dark" });
    pages.push(grace);
    await waitStatus(grace, "live", 10000, "grace");
    const dark = await grace.evaluate(() => matchMedia("(prefers-color-scheme: dark)").matches && getComputedStyle(document.body).backgroundColor);
    check(dark === "rgb(15, 19, 24)", `the board is not dark: body background ${dark}`);
    const found = await audit(grace, "board (dark)");
    await grace.getByTestId("story-card").first().focus();
    found.push(...(await auditHelp(grace)));
    await grace.getByTestId("story-card").first().focus();
    found.push(...(await auditMoveMenu(grace)));
    await grace.getByTestId("story-card").first().focus();
    await grace.keyboard.press("Enter");
    await grace.getByTestId("story-detail").getByTestId("history-entry").first().waitFor({ timeout: 5000 });
    found.push(...(await audit(grace, "story panel (dark)")));
    await grace.getByTestId("new-project-open").click();
    await grace.getByTestId("new-project-name").waitFor();
    found.push(...(await audit(grace, "new project (dark)")));
    await grace.keyboard.press("Escape");
    await grace.getByTestId("new-project").waitFor({ state: "hidden" });
    await grace.getByTestId("activity-toggle").click();
    await grace.getByTestId("activity-list").getByTestId("history-entry").first().waitFor({ timeout: 5000 });
    await grace.getByTestId("filter-state").selectOption("started");
    found.push(...(await audit(grace, "activity feed and filters (dark)")));
    found.push(...(await auditAdmin(admin, pages)));
    check(found.length === 0, `axe found:\n${found.join("\n")}`);
  });
  process.exit(process.exitCode || 0);
}

await scenario("accessibility", async (browser, url, pages) => {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  await waitStatus(ada, "live", 10000, "ada");
  const found = [];
  found.push(...(await audit(ada, "board")));

  // Open a story from the keyboard: focus goes into the panel; Escape returns it to the card.
  const card = ada.getByTestId("story-card").first();
  const storyId = await card.getAttribute("data-story-id");
  await card.focus();
  found.push(...(await auditHelp(ada)));
  await card.focus();
  found.push(...(await auditMoveMenu(ada)));
  await card.focus();
  await ada.keyboard.press("Enter");
  const detail = ada.getByTestId("story-detail");
  await detail.waitFor();
  await detail.getByTestId("history-entry").first().waitFor({ timeout: 5000 });
  found.push(...(await audit(ada, "story panel")));
  const inPanel = await ada.evaluate(() => document.querySelector('[data-testid="story-detail"]').contains(document.activeElement));
  check(inPanel, `opening a story left focus on ${await ada.evaluate(() => document.activeElement.outerHTML.slice(0, 80))}`);
  await ada.keyboard.press("Escape");
  await detail.waitFor({ state: "hidden" });
  const back = await ada.evaluate(() => document.activeElement?.dataset?.storyId);
  check(back === storyId, `Escape left focus on ${await ada.evaluate(() => document.activeElement.outerHTML.slice(0, 80))}, not story ${storyId}'s card`);

  // The project settings dialog (ada owns the demo project): audited open, Escape closes it.
  await ada.getByTestId("project-settings-open").click();
  const settings = ada.getByTestId("project-settings");
  await settings.getByTestId("member").first().waitFor();
  found.push(...(await audit(ada, "project settings")));
  await ada.keyboard.press("Escape");
  await settings.waitFor({ state: "hidden" });

  // After creating a story, focus is on its card.
  const title = `Focus lands here ${Date.now()}`;
  await ada.getByTestId("add-story-icebox").click();
  await ada.getByTestId("create-form-icebox").getByTestId("new-story-title").fill(title);
  await ada.keyboard.press("Enter");
  await cardByTitle(ada, title).waitFor({ timeout: 3000 });
  const made = await cardByTitle(ada, title).getAttribute("data-story-id");
  await ada.waitForFunction((id) => document.activeElement?.dataset?.storyId === id, made, { timeout: 2000 }).catch(async () => {
    throw new Error(`after creating a story focus is on ${await ada.evaluate(() => document.activeElement.outerHTML.slice(0, 80))}`);
  });

  // The activity feed beside the panel, and a filtered board.
  await ada.getByTestId("activity-toggle").click();
  await ada.getByTestId("activity-list").getByTestId("history-entry").first().waitFor({ timeout: 5000 });
  await ada.getByTestId("filter-type").selectOption("bug");
  await ada.getByTestId("filter-text").fill("a");
  found.push(...(await audit(ada, "activity feed and filters")));
  await ada.getByTestId("filter-clear").click();
  await ada.getByTestId("activity-close").click();

  // The indicator: a live region for its state only; the seconds-ago ticker is outside it.
  const ticking = await ada.evaluate(() => Boolean(document.querySelector('[data-testid="sync-age"]').closest("[aria-live], [role=status]")));
  check(!ticking, "the 'synced N s ago' ticker is inside a live region: screen readers announce it every second");
  check((await ada.locator("h1").count()) >= 1, "the board has no h1");

  found.push(...(await auditAdmin(adminPage(browser, url), pages)));
  check(found.length === 0, `axe found:\n${found.join("\n")}`);
});

// The board without a mouse: Tab to a card, `n` for a new story, Alt+arrows to reorder it
// within its section and move it across sections, `s` for its next state, `o` to open it,
// an edit saved from the keyboard (shortcut keys typed into a field stay text), Escape back
// to the card, `?` for the help; each move is announced in the live region.
//
//   node tests/browser/keyboard.mjs http://localhost:8000

import { boardPage, cardByTitle, check, scenario } from "./lib.mjs";

await scenario("keyboard", async (browser, url, pages) => {
  const page = await boardPage(browser, url, "grace");
  pages.push(page);
  // Nothing here may use the mouse: a click would hide a missing keyboard path.
  page.mouse.click = async () => {
    throw new Error("the keyboard scenario used the mouse");
  };

  const active = () => page.evaluate(() => ({ id: document.activeElement?.dataset?.storyId ?? null, html: document.activeElement?.outerHTML.slice(0, 80) }));
  const order = (section) => page.getByTestId(`list-${section}`).getByTestId("story-card").evaluateAll((cards) => cards.map((c) => c.dataset.storyId));
  const announced = async (pattern, what) => {
    await page.waitForFunction((source) => new RegExp(source).test(document.querySelector('[data-testid="board-announcer"]').textContent), pattern.source, { timeout: 5000 }).catch(async () => {
      throw new Error(`${what}: the live region says "${await page.getByTestId("board-announcer").textContent()}", expected ${pattern}`);
    });
  };
  const focusedOn = async (id, what) => {
    await page.waitForFunction((want) => document.activeElement?.dataset?.storyId === want, id, { timeout: 5000 }).catch(async () => {
      throw new Error(`${what}: focus is on ${(await active()).html}, not story ${id}'s card`);
    });
  };

  // Tab from the top of the page to the first card.
  for (let tabs = 0; tabs < 30 && (await active()).id === null; tabs += 1) await page.keyboard.press("Tab");
  check((await active()).id !== null, `30 Tabs did not reach a card; focus is on ${(await active()).html}`);

  // `n`: a new story in the Icebox, focus in its title; Enter saves; focus on the new card.
  const stamp = Date.now();
  const made = [];
  for (const name of ["first", "second"]) {
    await page.keyboard.press("n");
    const form = page.getByTestId("create-form-icebox");
    await form.waitFor();
    check(await form.getByTestId("new-story-title").evaluate((el) => el === document.activeElement), "`n` did not put focus in the new story's title");
    const title = `Keys ${name} ${stamp}`;
    await page.keyboard.type(title);
    await page.keyboard.press("Enter");
    await cardByTitle(page, title).waitFor();
    const id = await cardByTitle(page, title).getAttribute("data-story-id");
    await focusedOn(id, `after creating "${title}"`);
    made.push(id);
  }
  const [first, second] = made;
  // New stories go first: the Icebox starts second, first.
  let icebox = await order("icebox");
  check(icebox.indexOf(second) === icebox.indexOf(first) - 1, `the Icebox reads ${icebox.slice(0, 4)}, expected ${second} just above ${first}`);

  // Alt+↓ then Alt+↑: within the Icebox, the moved card keeps focus and the move is said.
  await page.keyboard.press("Alt+ArrowDown");
  await page.waitForFunction(([a, b]) => {
    const ids = [...document.querySelectorAll('[data-testid="list-icebox"] [data-testid="story-card"]')].map((c) => c.dataset.storyId);
    return ids.indexOf(b) === ids.indexOf(a) + 1;
  }, [first, second]);
  await focusedOn(second, "after Alt+ArrowDown");
  await announced(/Moved "Keys second \d+" to Icebox, 2 of \d+/, "after Alt+ArrowDown");
  await page.keyboard.press("Alt+ArrowUp");
  await page.waitForFunction(([a, b]) => {
    const ids = [...document.querySelectorAll('[data-testid="list-icebox"] [data-testid="story-card"]')].map((c) => c.dataset.storyId);
    return ids.indexOf(b) === ids.indexOf(a) - 1;
  }, [first, second]);
  await focusedOn(second, "after Alt+ArrowUp");
  await announced(/to Icebox, 1 of \d+/, "after Alt+ArrowUp");

  // Alt+→: into the Backlog (unstarted), last; `s`: Start, into Current; Alt+←: back to the Backlog.
  const card = page.locator(`[data-testid="story-card"][data-story-id="${second}"]`);
  await page.keyboard.press("Alt+ArrowRight");
  await page.getByTestId("list-backlog").locator(`[data-story-id="${second}"][data-state="unstarted"]`).waitFor();
  const backlog = await order("backlog");
  check(backlog[backlog.length - 1] === second, `Alt+ArrowRight put the story at ${backlog.indexOf(second) + 1} of ${backlog.length} in the Backlog, not last`);
  await focusedOn(second, "after Alt+ArrowRight");
  await announced(/to Backlog, \d+ of \d+, now unstarted/, "after Alt+ArrowRight");
  check(page.url().includes("#/projects/"), `Alt+ArrowRight navigated the page to ${page.url()}`);
  await page.keyboard.press("s");
  await page.getByTestId("list-current").locator(`[data-story-id="${second}"][data-state="started"]`).waitFor();
  await focusedOn(second, "after s");
  await announced(/to Current, \d+ of \d+, now started/, "after s");
  await page.keyboard.press("Alt+ArrowLeft");
  await page.getByTestId("list-backlog").locator(`[data-story-id="${second}"][data-state="unstarted"]`).waitFor();
  await focusedOn(second, "after Alt+ArrowLeft");

  // `o` opens it, focus in the title; keys typed there are text, not shortcuts; Enter saves.
  await page.keyboard.press("o");
  const detail = page.getByTestId("story-detail");
  await detail.waitFor();
  const title = detail.getByTestId("detail-title");
  check(await title.evaluate((el) => el === document.activeElement), "`o` did not move focus into the panel's title");
  await page.keyboard.press("End");
  await page.keyboard.type(" sno");
  check((await title.inputValue()).endsWith(" sno"), `typing " sno" in the title gave "${await title.inputValue()}"`);
  check((await card.getAttribute("data-state")) === "unstarted", "typing `s` in the title moved the story");
  check(await page.getByTestId("create-form-icebox").isHidden(), "typing `n` in the title opened the new-story form");
  await page.keyboard.press("Enter");
  await cardByTitle(page, `Keys second ${stamp} sno`).waitFor();
  await page.keyboard.press("Escape");
  await detail.waitFor({ state: "hidden" });
  await focusedOn(second, "after Escape");

  // `?`: the help lists the shortcuts; Escape closes it and nothing else; focus comes back.
  await page.keyboard.press("?");
  const help = page.getByTestId("shortcuts-help");
  await help.waitFor();
  const text = await help.textContent();
  for (const needed of ["Alt + ↑", "Alt + ←", "Enter or o", "Escape", "next state", "New story"]) check(text.includes(needed), `the help does not mention "${needed}"`);
  await page.keyboard.press("Escape");
  await help.waitFor({ state: "hidden" });
  await focusedOn(second, "after closing the help");

  // Plain arrows walk between cards.
  await page.keyboard.press("ArrowUp");
  const above = (await active()).id;
  check(above !== null && above !== second, `ArrowUp left focus on ${(await active()).html}`);
  await page.keyboard.press("ArrowDown");
  await focusedOn(second, "after ArrowUp, ArrowDown");

  for (const line of page.tidingsLog) check(!line.includes("pageerror"), line);
}, { limitMs: 30000 });

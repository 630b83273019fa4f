// Search and filter: by text, label, owner, type and state, combined; kept in the address
// through a reload; following others' changes live; windows of cards and keyed cards still
// working under a filter; Clear all. Grace filters; the changes come through the API.
//
//   node tests/browser/filters.mjs http://localhost:8000

import { boardPage, cardByTitle, check, command, scenario } from "./lib.mjs";

const PAGE = 30; // views/board-view.js PAGE

async function titles(page) {
  return page.locator('[data-testid="story-card"] [data-testid="story-title"]').allTextContents();
}

/** Wait until the board's cards are exactly `expected` (any order). */
async function shows(page, expected, what) {
  const want = [...expected].sort();
  try {
    await page.waitForFunction(
      (w) => JSON.stringify([...document.querySelectorAll('[data-testid="story-card"] [data-testid="story-title"]')].map((e) => e.textContent).sort()) === w,
      JSON.stringify(want),
      { timeout: 6000 },
    );
  } catch (err) {
    throw new Error(`${what}: the board shows ${JSON.stringify((await titles(page)).sort())}, not ${JSON.stringify(want)}`);
  }
}

await scenario("filters", async (browser, url, pages) => {
  const grace = await boardPage(browser, url, "grace");
  pages.push(grace);
  const projectId = Number(new URL(grace.url()).hash.split("/")[2]);
  const me = await grace.evaluate(async () => (await (await fetch("/api/me")).json()).user.id);
  const stamp = Date.now().toString(36);
  const label = `l${stamp}`;
  const alpha = `Alpha ${stamp}`;
  const beta = `Beta ${stamp}`;
  for (const cmd of [
    { type: "create_story", title: alpha, description: `the needle${stamp} is here`, story_type: "bug", state: "unstarted", owner_id: me, labels: [label] },
    { type: "create_story", title: beta, story_type: "feature", state: "started", labels: [label] },
  ]) check((await command(grace, projectId, cmd)).status === 200, `create refused: ${JSON.stringify(cmd)}`);
  await cardByTitle(grace, beta).waitFor({ timeout: 6000 });
  const total = await grace.getByTestId("story-card").count();

  // Text (in the description), then type on top: combined with "and".
  await grace.getByTestId("filter-text").fill(`NEEDLE${stamp}`);
  await shows(grace, [alpha], "text filter");
  check((await grace.getByTestId("filter-count").textContent()).startsWith("1 of "), `count: ${await grace.getByTestId("filter-count").textContent()}`);
  // Cards stay keyed: one still shown under a narrower filter keeps its node.
  await cardByTitle(grace, alpha).evaluate((el) => (el.dataset.kept = "1"));
  await grace.getByTestId("filter-type").selectOption("bug");
  await shows(grace, [alpha], "text and type");
  check((await cardByTitle(grace, alpha).getAttribute("data-kept")) === "1", "the card was rebuilt though it did not change (not keyed)");
  await grace.getByTestId("filter-type").selectOption("feature");
  await shows(grace, [], "text and another type");
  check(await grace.getByText("No matching stories").first().isVisible(), "no hint that nothing matches");
  await grace.getByTestId("filter-type").selectOption("");
  await shows(grace, [alpha], "type cleared");

  // Label, owner and state, each narrowing.
  await grace.getByTestId("filter-text").fill("");
  await grace.getByTestId("filter-label").selectOption(label);
  await shows(grace, [alpha, beta], "label");
  await grace.getByTestId("filter-owner").selectOption(String(me));
  await shows(grace, [alpha], "label and owner");
  await grace.getByTestId("filter-owner").selectOption("none");
  await shows(grace, [beta], "label and nobody");
  await grace.getByTestId("filter-state").selectOption("started");
  await shows(grace, [beta], "label, nobody and started");
  check(grace.url().includes(`label=${label}`) && grace.url().includes("owner=none") && grace.url().includes("state=started"), `address: ${grace.url()}`);

  // A reload keeps it: the address carries the filter.
  await grace.reload();
  await grace.getByTestId("board").waitFor({ timeout: 15000 });
  await shows(grace, [beta], "after reload");
  check((await grace.getByTestId("filter-label").inputValue()) === label && (await grace.getByTestId("filter-state").inputValue()) === "started", "the controls lost the filter on reload");

  // Others' changes follow the filter live: a story starts matching, another stops.
  await grace.getByTestId("filter-owner").selectOption("");
  await grace.getByTestId("filter-state").selectOption("");
  await shows(grace, [alpha, beta], "label only");
  const gamma = `Gamma ${stamp}`;
  check((await command(grace, projectId, { type: "create_story", title: gamma, state: "unscheduled", labels: [label] })).status === 200, "gamma refused");
  await shows(grace, [alpha, beta, gamma], "a new matching story");
  const betaId = Number(await cardByTitle(grace, beta).getAttribute("data-story-id"));
  check((await command(grace, projectId, { type: "update_story", story_id: betaId, labels: [] })).status === 200, "beta's update refused");
  await shows(grace, [alpha, gamma], "a story that stopped matching");

  // Long results keep their windows: PAGE cards, then "Show more" brings the rest.
  const many = `Many ${stamp}`;
  await grace.evaluate(
    async ([p, t, n]) => {
      const csrf = decodeURIComponent(document.cookie.split("; ").find((x) => x.startsWith("tidings_csrf=")).split("=")[1]);
      for (let i = 0; i < n; i += 1) {
        const r = await fetch(`/api/projects/${p}/commands`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Tidings-CSRF": csrf },
          body: JSON.stringify({ command: { type: "create_story", title: `${t} ${i}`, state: "unstarted" } }),
        });
        if (r.status !== 200) throw new Error(`create ${i}: HTTP ${r.status}`);
      }
    },
    [projectId, many, PAGE + 5],
  );
  await grace.getByTestId("filter-clear").click();
  await grace.getByTestId("filter-text").fill(many);
  const backlog = grace.getByTestId("list-backlog").getByTestId("story-card");
  await grace.waitForFunction((n) => document.querySelectorAll('[data-testid="list-backlog"] [data-testid="story-card"]').length === n, PAGE, { timeout: 6000 });
  // The last of the stories made above may reach the page a poll after the others.
  await grace
    .waitForFunction(() => (document.querySelector('[data-testid="more-backlog"]')?.textContent ?? "").includes("5 not shown"), null, { timeout: 6000 })
    .catch(async () => check(false, `more: ${await grace.getByTestId("more-backlog").textContent()}`));
  // Clicked in the page: scrolled into view, the button may grow the window itself first.
  await grace.getByTestId("more-backlog").evaluate((el) => el.click());
  await grace.waitForFunction((n) => document.querySelectorAll('[data-testid="list-backlog"] [data-testid="story-card"]').length === n, PAGE + 5, { timeout: 6000 });
  check(await grace.getByTestId("more-backlog").isHidden(), "more offered after everything matching is shown");
  check((await backlog.allTextContents()).every((t) => t.includes(many)), "a story that does not match is shown");

  // Clear all: every control empty, the address back to the project, every story back.
  await grace.getByTestId("filter-clear").click();
  check(new URL(grace.url()).hash === `#/projects/${projectId}`, `address after Clear all: ${grace.url()}`);
  check((await grace.getByTestId("filter-text").inputValue()) === "", "the search box kept its text");
  check(await grace.getByTestId("filter-clear").isHidden(), "Clear all is offered with nothing to clear");
  await grace.waitForFunction((n) => document.querySelectorAll('[data-testid="story-card"]').length >= n, Math.min(total, PAGE), { timeout: 6000 });
  check((await grace.getByTestId("filter-count").textContent()) === "", "a count shown with no filter");
}, { limitMs: 30000 });

// What the board shows around the stories: where Accept puts a story, an address naming
// no project of the user's, and the sync indicator's first words. One case per run.
//
//   node tests/browser/board_states.mjs http://localhost:8000 accept|not_found|indicator

import { RECORD_LABELS, boardPage, cardByTitle, check, command, scenario, waitStatus } from "./lib.mjs";

const CASE = process.argv[3];

function projectOf(page) {
  return Number(new URL(page.url()).hash.split("/").pop());
}

async function accept(browser, url, pages) {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  const projectId = projectOf(ada);
  const snapshot = await ada.evaluate(async (p) => (await fetch(`/api/projects/${p}`)).json(), projectId);
  check(snapshot.stories.some((s) => s.state === "accepted"), "the demo project has nothing in Done to go after");
  // First in the project's list: Accept keeping its place would put it first in Done.
  const title = `Accept me ${Date.now()}`;
  const made = await command(ada, projectId, { type: "create_story", title, story_type: "feature", state: "delivered", before_id: snapshot.stories[0].id });
  check(made.status === 200, `create refused: ${JSON.stringify(made)}`);
  const card = cardByTitle(ada, title);
  await ada.getByTestId("toggle-done").click();
  await card.getByTestId("state-accept").click();
  await ada.getByTestId("list-done").getByText(title).waitFor({ timeout: 3000 });
  const done = await ada.getByTestId("list-done").getByTestId("story-title").allTextContents();
  check(done[done.length - 1] === title, `accepted story is at ${done.indexOf(title) + 1} of ${done.length} in Done, not last`);
  const after = await ada.evaluate(async (p) => (await fetch(`/api/projects/${p}`)).json(), projectId);
  const accepted = after.stories.filter((s) => s.state === "accepted").map((s) => s.title);
  check(accepted[accepted.length - 1] === title, "the app does not hold it last in Done");

  // Finish within Current keeps its place.
  const second = `Finish me ${Date.now()}`;
  const before = snapshot.stories.find((s) => ["started", "finished", "delivered", "rejected"].includes(s.state));
  check(before, "nothing in Current to place before");
  check((await command(ada, projectId, { type: "create_story", title: second, story_type: "chore", state: "started", before_id: before.id })).status === 200, "create refused");
  const current = () => ada.getByTestId("list-current").getByTestId("story-title").allTextContents();
  await cardByTitle(ada, second).waitFor();
  const was = (await current()).indexOf(second);
  await cardByTitle(ada, second).getByTestId("state-finish").click();
  await ada.locator(`[data-testid="story-card"][data-state="finished"]`, { hasText: second }).waitFor({ timeout: 3000 });
  check((await current()).indexOf(second) === was, "Finish moved the story within Current");
}

async function notFound(browser, url, pages) {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  const projectId = projectOf(ada);
  await ada.evaluate(() => (location.hash = "#/projects/999"));
  await ada.getByTestId("project-not-found").waitFor({ timeout: 3000 });
  check((await ada.getByTestId("board").count()) === 0, "the previous board is still shown under #/projects/999");
  check((await ada.getByTestId("sync-status").count()) === 0, "the previous board's indicator is still shown");
  // Loaded directly at that address: the same, not the first project.
  await ada.goto(`${url}/#/projects/999`);
  await ada.getByTestId("project-not-found").waitFor({ timeout: 5000 });
  check((await ada.getByTestId("board").count()) === 0, "a board is shown for #/projects/999 on load");
  await ada.getByTestId("first-project").click();
  await ada.getByTestId("board").waitFor({ timeout: 5000 });
  check(projectOf(ada) === projectId, `the way back opened project ${projectOf(ada)}`);
}

async function indicator(browser, url, pages) {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  await ada.addInitScript(RECORD_LABELS);
  for (let load = 1; load <= 3; load += 1) {
    await ada.reload();
    await waitStatus(ada, "live", 10000, `load ${load}`);
    // Up to the first "Live": a later drop would be a real verdict, not the passing state.
    const seen = await ada.evaluate(() => window.tidingsLabels);
    const before = seen.slice(0, seen.indexOf("Live (push)") + 1 || seen.length);
    check(!before.some((t) => /unavailable/.test(t)), `load ${load}: the indicator said ${JSON.stringify(seen)} on the way to live`);
    check(seen[0] === "Connecting…", `load ${load}: the indicator started with ${JSON.stringify(seen[0])}`);
  }
}

const CASES = { accept, not_found: notFound, indicator };
check(CASE in CASES, `unknown case "${CASE}": one of ${Object.keys(CASES).join(", ")}`);
await scenario(`board_states_${CASE}`, CASES[CASE], { limitMs: 40000 });

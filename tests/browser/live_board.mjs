// Two people on one board (ada and grace, WebSocket push): every change one makes shows
// at once on their own page and, without a reload, on the other's: within 1 s by push for
// a create and a move timed while the other page's next regular poll is seconds away, within
// SYNC_MS for the rest. Also: drag and drop, the detail panel, edits crossing (an untouched
// field follows, a touched one gives a 409 and a hint), and a command that meets a network
// failure ("Offline, retrying", then saved once).
//
//   node tests/browser/live_board.mjs http://localhost:8000

import { boardPage, cardByTitle, check, command, quietFor, scenario, screenshot, timedCommand, version, waitCard, waitStatus, within } from "./lib.mjs";

/** From the command leaving one page to the change showing on the other, by push. */
const PUSH_MS = 1000;
/** The same for the remaining steps, which do not first wait for a quiet poll schedule. */
const SYNC_MS = 2500;
/** From the command's answer to the change showing on the page that sent it (tens of ms
 * when the machine is idle; generous, as CI machines are shared). */
const LOCAL_MS = 1000;

/** The shortest poll interval while push is live: TIDINGS_POLL_INTERVAL_PUSH * (1 - jitter). */
const LIVE_POLL_MIN_MS = Number(process.env.TIDINGS_POLL_INTERVAL_PUSH || 3) * 0.8 * 1000;
const afterPoll = (page) => quietFor(page, PUSH_MS, LIVE_POLL_MIN_MS);

await scenario("live_board", async (browser, url, pages) => {
  const [ada, grace] = await Promise.all([boardPage(browser, url, "ada"), boardPage(browser, url, "grace")]);
  pages.push(ada, grace);
  await waitStatus(ada, "live", 10000, "ada");
  await waitStatus(grace, "live", 10000, "grace");
  check(ada.tidingsSockets.some((u) => u.endsWith("/ws")), `ada's page opened no /ws socket: ${ada.tidingsSockets}`);
  check((await ada.getByTestId("sync-status").getAttribute("data-transport")) === "ws", "transport is not ws");
  check((await ada.getByTestId("sync-status").textContent()).includes("Live (push)"), "indicator text is not Live (push)");

  // Create: shown at once for ada, within 1 s for grace.
  // Fixed titles: the demo database is fresh for each run, and the story is deleted at the end.
  const title = "Share a read-only board link";
  await ada.getByTestId("add-story-backlog").click();
  await ada.getByTestId("create-form-backlog").getByTestId("new-story-title").fill(title);
  await afterPoll(grace);
  // Ada's polls are held back meanwhile: only the command's own answer can show her the story.
  const polls = "**/api/projects/*/events?*";
  const held = [];
  let holding = true;
  await ada.route(polls, (route) => (holding ? held.push(route) : route.continue()));
  let t = await timedCommand(ada, () => ada.getByTestId("create-form-backlog").getByTestId("new-story-save").click());
  await within(cardByTitle(ada, title), t.answered, LOCAL_MS, "ada's new story on her board");
  holding = false;
  for (const route of held) await route.continue();
  await ada.unroute(polls);
  await within(cardByTitle(grace, title), t.sent, PUSH_MS, "ada's new story on grace's board (push)");
  console.log(`  create: on grace's board ${Date.now() - t.sent} ms after ada's command went out`);
  check((await cardByTitle(ada, title).getAttribute("data-state")) === "unstarted", "new backlog story is not unstarted");

  // Move with the card button (grace), seen by ada.
  await afterPoll(ada);
  t = await timedCommand(grace, () => cardByTitle(grace, title).getByTestId("state-start").click());
  await within(cardByTitle(grace, title).and(grace.locator('[data-state="started"]')), t.answered, LOCAL_MS, "grace's started story on her board");
  await within(cardByTitle(ada, title).and(ada.locator('[data-state="started"]')), t.sent, PUSH_MS, "grace's started story on ada's board");
  check((await ada.getByTestId("list-current").getByText(title).count()) === 1, "started story is not under Current");

  // Edit in the detail panel (ada): title, points, labels; grace sees the new title.
  const edited = "Share a read-only board link with clients";
  await cardByTitle(ada, title).click();
  const detail = ada.getByTestId("story-detail");
  await detail.waitFor({ timeout: 2000 });
  await detail.getByTestId("detail-title").fill(edited);
  await detail.getByTestId("detail-estimate").selectOption("3");
  await detail.getByTestId("detail-labels").fill("ui, push");
  await detail.getByTestId("detail-owner").selectOption({ label: "Ada Lovelace" });
  await detail.getByTestId("detail-description").fill("A link that shows the board, live, to people without an account.");
  t = await timedCommand(ada, () => detail.getByTestId("detail-save").click());
  await within(cardByTitle(ada, edited), t.answered, LOCAL_MS, "ada's edit on her board");
  await within(cardByTitle(grace, edited), t.sent, SYNC_MS, "ada's edit on grace's board");
  check((await cardByTitle(grace, edited).locator(".label").allTextContents()).join(",") === "ui,push", "labels not shown on grace's card");

  // Comment (grace, through the API) and a task (ada): ada's open panel follows.
  const storyId = Number(await cardByTitle(ada, edited).getAttribute("data-story-id"));
  const projectId = Number(new URL(ada.url()).hash.split("/").pop());
  const said = await command(grace, projectId, { type: "add_comment", story_id: storyId, text: "Clients asked for this twice last week." });
  check(said.status === 200, `comment refused: ${JSON.stringify(said)}`);
  await detail.getByTestId("comment").getByText("Clients asked for this twice last week.").waitFor({ timeout: SYNC_MS });
  await detail.getByTestId("task-input").fill("Write the release note");
  t = await timedCommand(ada, () => detail.getByTestId("task-add").click());
  await within(detail.getByTestId("task").getByText("Write the release note"), t.answered, LOCAL_MS, "ada's new task in her panel");
  t = await timedCommand(ada, () => detail.getByTestId("task-checkbox").last().check());
  await within(cardByTitle(grace, edited).getByText("1/1"), t.sent, SYNC_MS, "ada's ticked task on grace's board");
  await detail.getByTestId("comment-input").fill("Starting on it: link tokens first.");
  t = await timedCommand(ada, () => detail.getByTestId("comment-post").click());
  await within(detail.getByTestId("comment").getByText("Starting on it: link tokens first."), t.answered, LOCAL_MS, "ada's comment in her panel");
  await screenshot(ada, "board.png");

  // Others' edits while ada has unsaved ones: an untouched field follows at once; a change
  // to the field ada is editing is a conflict, shown with both values; she keeps hers and saves.
  await detail.getByTestId("detail-description").fill("Owners can share a link that shows the board, live, without signing in.");
  const renamed = "Share read-only board links";
  let r = await command(grace, projectId, { type: "update_story", story_id: storyId, title: renamed });
  check(r.status === 200, `grace's rename refused: ${JSON.stringify(r)}`);
  await ada.waitForFunction((t) => document.querySelector('[data-testid="detail-title"]').value === t, renamed, { timeout: SYNC_MS });
  check((await detail.getByTestId("conflict").count()) === 0, "a change to an untouched field was taken for a conflict");
  r = await command(grace, projectId, { type: "update_story", story_id: storyId, description: "Grace's description" });
  check(r.status === 200, `grace's edit refused: ${JSON.stringify(r)}`);
  const clash = detail.locator('[data-testid="conflict"][data-field="description"]');
  await clash.waitFor({ timeout: SYNC_MS });
  check((await clash.getByTestId("conflict-theirs").textContent()) === "Grace's description", "grace's description is not shown");
  check(await detail.getByTestId("detail-save").isDisabled(), "Save is usable over an unresolved conflict");
  check((await detail.getByTestId("detail-description").inputValue()).startsWith("Owners can share"), "ada's unsaved edit was lost");
  await clash.getByTestId("conflict-keep-mine").click();
  const [answer] = await Promise.all([
    ada.waitForResponse((resp) => resp.url().endsWith("/commands") && resp.request().method() === "POST", { timeout: 3000 }),
    detail.getByTestId("detail-save").click(),
  ]);
  check(answer.status() === 200, `the second save got HTTP ${answer.status()}`);
  const saved = await grace.evaluate(async ([p, id]) => (await (await fetch(`/api/projects/${p}`)).json()).stories.find((s) => s.id === id), [projectId, storyId]);
  check(saved.description.startsWith("Owners can share") && saved.title === renamed, `not both edits kept: ${JSON.stringify(saved)}`);
  await ada.getByTestId("detail-close").click();

  // Drag the card to Done (ada): accepted, on both pages (Done opened: it starts collapsed).
  for (const page of [ada, grace]) await page.getByTestId("toggle-done").click();
  t = await timedCommand(ada, () => cardByTitle(ada, renamed).dragTo(ada.getByTestId("list-done")));
  await within(ada.getByTestId("list-done").getByText(renamed), t.answered, LOCAL_MS, "the dragged story in ada's Done");
  await within(grace.getByTestId("list-done").getByText(renamed), t.sent, SYNC_MS, "the dragged story in grace's Done");

  // A command that meets a network failure: "Offline, retrying", then saved once.
  await ada.route("**/api/projects/*/commands", (route) => route.abort("internetdisconnected"));
  const iceTitle = "Embed the board in a wiki page";
  await ada.getByTestId("add-story-icebox").click();
  await ada.getByTestId("create-form-icebox").getByTestId("new-story-title").fill(iceTitle);
  await ada.getByTestId("create-form-icebox").getByTestId("new-story-save").click();
  await ada.getByTestId("notice-offline").getByText("Offline, retrying").waitFor({ timeout: 3000 });
  await ada.unroute("**/api/projects/*/commands");
  await waitCard(ada, iceTitle, 6000, "ada after the network came back");
  await ada.getByTestId("notice-offline").waitFor({ state: "detached", timeout: 1000 });
  await waitCard(grace, iceTitle, 2000, "grace");
  check((await grace.getByTestId("list-icebox").getByText(iceTitle).count()) === 1, "the retried create was applied more than once or not in the Icebox");

  // Delete (ada, with confirmation): gone on both pages; both show the same version.
  await cardByTitle(ada, renamed).click();
  await detail.getByTestId("detail-delete").click();
  t = await timedCommand(ada, () => detail.getByTestId("detail-delete-confirm").click());
  await within(cardByTitle(ada, renamed), t.answered, LOCAL_MS, "the deleted story on ada's board", "detached");
  await within(cardByTitle(grace, renamed), t.sent, SYNC_MS, "the deleted story on grace's board", "detached");
  await ada.waitForFunction(() => document.querySelector('[data-testid="story-detail"]').hidden, null, { timeout: 1000 });
  const iceId = Number(await cardByTitle(ada, iceTitle).getAttribute("data-story-id"));
  const last = await command(grace, projectId, { type: "delete_story", story_id: iceId });
  check(last.status === 200, `cleanup refused: ${JSON.stringify(last)}`);
  for (const page of [ada, grace]) {
    await within(cardByTitle(page, iceTitle), Date.now(), SYNC_MS, "the last deleted story", "detached");
    await page.waitForFunction((v) => document.querySelector('[data-testid="project-version"]').textContent === String(v), last.body.version, { timeout: SYNC_MS });
  }
  check((await version(ada)) === (await version(grace)), "the pages show different versions");
  for (const page of pages) check(page.tidingsLog.filter((l) => l.includes("pageerror")).length === 0, page.tidingsLog.join("\n"));
});

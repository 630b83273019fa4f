// A story's comments and tasks changed in place, live on a second page: grace (a member)
// edits her comment and the tasks, ada (an owner) sees each change without a reload and may
// delete grace's comment; grace gets no controls on ada's comment. Unsaved edits are guarded,
// an empty edit is refused in words, and user text never runs as HTML.
//
//   node tests/browser/story_items.mjs http://localhost:8000

import { boardPage, cardByTitle, check, command, scenario } from "./lib.mjs";

const WAIT = 3000;

/** The texts of the panel's items (comments or tasks), in order. */
async function texts(detail, testid) {
  return detail.getByTestId(testid).allTextContents();
}

/** Wait until `read()` deep-equals `want`; fail saying what was seen instead. */
async function until(read, want, what) {
  const deadline = Date.now() + WAIT;
  let seen;
  while (Date.now() < deadline) {
    seen = await read();
    if (JSON.stringify(seen) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: expected ${JSON.stringify(want)}, saw ${JSON.stringify(seen)} after ${WAIT} ms`);
}

async function open(page, title) {
  await cardByTitle(page, title).click();
  const detail = page.getByTestId("story-detail");
  await detail.getByTestId("detail-title").waitFor();
  return detail;
}

await scenario(
  "story_items",
  async (browser, url, pages) => {
    const [grace, ada] = await Promise.all([boardPage(browser, url, "grace"), boardPage(browser, url, "ada")]);
    pages.push(grace, ada);
    const stamp = Date.now();
    const title = `Items ${stamp}`;
    const projectId = Number(new URL(grace.url()).hash.split("/").pop());
    const made = await command(grace, projectId, { type: "create_story", title, state: "unstarted" });
    check(made.status === 200, `create refused: ${JSON.stringify(made)}`);
    const storyId = made.body.event.data.story.id;
    for (const [text] of [["one"], ["two"], ["three"]]) {
      const r = await command(grace, projectId, { type: "add_task", story_id: storyId, text });
      check(r.status === 200, `add_task refused: ${JSON.stringify(r)}`);
    }
    const mine = await command(grace, projectId, { type: "add_comment", story_id: storyId, text: "Grace's note" });
    const theirs = await command(ada, projectId, { type: "add_comment", story_id: storyId, text: "Ada's note" });
    check(mine.status === 200 && theirs.status === 200, "comments refused");
    const [g, a] = await Promise.all([open(grace, title), open(ada, title)]);
    await until(() => texts(a, "comment-text"), ["Grace's note", "Ada's note"], "ada's comments");

    // Controls follow the rule: grace may change her own comment only; ada (owner) both.
    const graceMine = g.locator('[data-testid="comment"]', { hasText: "Grace's note" });
    const graceTheirs = g.locator('[data-testid="comment"]', { hasText: "Ada's note" });
    await graceMine.getByTestId("comment-edit").waitFor();
    check((await graceTheirs.getByTestId("comment-edit").count()) === 0, "grace may edit ada's comment");
    check((await graceTheirs.getByTestId("comment-delete").count()) === 0, "grace may delete ada's comment");
    check((await a.getByTestId("comment-delete").count()) === 2, "ada, an owner, cannot delete every comment");

    // An empty edit is refused in words, before anything is sent.
    await graceMine.getByTestId("comment-edit").click();
    const input = g.getByTestId("comment-edit-input");
    await input.fill("   ");
    await g.getByTestId("comment-save").click();
    const error = await g.getByTestId("comment-error").textContent({ timeout: WAIT });
    check(/cannot be empty/.test(error), `empty comment: "${error}"`);

    // Unsaved: closing the panel asks first; staying keeps the draft.
    const hostile = `<img src=x onerror="window.pwned=1"> <b>revised</b> ${stamp}`;
    await input.fill(hostile);
    const asked = [];
    grace.on("dialog", (d) => {
      asked.push(d.message());
      d.dismiss();
    });
    await g.getByTestId("detail-close").click();
    check(asked.length === 1 && (await g.isVisible()), `closing with an unsaved comment edit did not ask (${asked.join(" | ")})`);
    check((await input.inputValue()) === hostile, "the draft is gone after staying");

    // Saved: ada sees the new text, as text, marked edited.
    await g.getByTestId("comment-save").click();
    await until(() => texts(a, "comment-text"), [hostile, "Ada's note"], "ada sees grace's edit");
    await a.getByTestId("comment-edited").waitFor({ timeout: WAIT });
    check((await ada.locator('[data-testid="comment-text"] b, [data-testid="comment-text"] img').count()) === 0, "comment text ran as HTML");
    check(!(await ada.evaluate(() => window.pwned)), "comment text ran a script");

    // Tasks: edit, move up, tick, delete; ada's page follows each.
    const task = (page, text) => page.locator('[data-testid="task"]', { hasText: text });
    await task(g, "two").getByTestId("task-edit").click();
    await g.getByTestId("task-edit-input").fill("two, reworded");
    await g.getByTestId("task-edit-input").press("Enter");
    await until(() => texts(a, "task-text"), ["one", "two, reworded", "three"], "ada sees the task edited");
    await task(g, "three").getByTestId("task-up").click();
    await until(() => texts(a, "task-text"), ["one", "three", "two, reworded"], "ada sees the task moved");
    const focusedUp = await grace.evaluate(() => document.activeElement?.closest("[data-task-id]")?.textContent || "");
    check(focusedUp.includes("three"), `after moving, focus is not on the moved task: "${focusedUp}"`);
    await task(g, "one").getByTestId("task-checkbox").check();
    await a.locator('[data-testid="task"].done', { hasText: "one" }).waitFor({ timeout: WAIT });
    await task(g, "one").getByTestId("task-delete").click();
    await until(() => texts(a, "task-text"), ["three", "two, reworded"], "ada sees the task deleted");

    // Ada, an owner, deletes grace's comment; grace's page follows.
    await a.locator('[data-testid="comment"]', { hasText: "revised" }).getByTestId("comment-delete").click();
    await a.getByTestId("comment-delete-confirm").click();
    await until(() => texts(g, "comment-text"), ["Ada's note"], "grace sees her comment deleted by ada");
    check(asked.length === 1, `unexpected dialogs: ${asked.join(" | ")}`);
  },
  { limitMs: 30000 },
);

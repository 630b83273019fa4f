// A viewer (linus) sees the live board read-only: no add, state or delete buttons, no
// dragging, a read-only detail panel; the API refuses his commands anyway; the admin page
// tells him plainly it is for admins. He still gets others' changes live.
//
//   node tests/browser/viewer.mjs http://localhost:8000

import { apiSession, boardPage, cardByTitle, check, command, scenario, waitCard, waitStatus } from "./lib.mjs";

await scenario("viewer", async (browser, url, pages) => {
  const linus = await boardPage(browser, url, "linus");
  pages.push(linus);
  await waitStatus(linus, "live", 10000, "linus");
  await linus.getByTestId("view-only").waitFor();
  check((await linus.getByTestId("workspace").getAttribute("data-role")) === "viewer", "role is not viewer");
  for (const testid of ["add-story-icebox", "add-story-backlog", "state-start", "state-finish", "state-deliver", "state-accept"]) {
    check((await linus.getByTestId(testid).count()) === 0, `viewer sees ${testid}`);
  }
  check((await linus.locator('[data-testid="story-card"][draggable="true"]').count()) === 0, "viewer's cards are draggable");
  check((await linus.getByTestId("admin-link").count()) === 0, "viewer sees the admin link");
  check((await linus.getByTestId("project-settings-open").count()) === 0, "viewer sees the project settings button");

  await linus.getByTestId("story-card").first().click();
  const detail = linus.getByTestId("story-detail");
  await detail.getByTestId("read-only").waitFor();
  check(await detail.getByTestId("detail-title").isDisabled(), "title is editable");
  check(await detail.getByTestId("detail-description").isDisabled(), "description is editable");
  for (const testid of ["detail-save", "detail-delete", "comment-input", "task-input"]) {
    check((await detail.getByTestId(testid).count()) === 0, `viewer's panel has ${testid}`);
  }
  const boxes = detail.getByTestId("task-checkbox");
  for (let i = 0; i < (await boxes.count()); i += 1) check(await boxes.nth(i).isDisabled(), "a task checkbox is enabled");

  const projectId = Number(new URL(linus.url()).hash.split("/").pop());
  const refused = await command(linus, projectId, { type: "create_story", title: "Viewer's story" });
  check(refused.status === 403, `the API let a viewer write: ${JSON.stringify(refused)}`);

  // Read-only, still live: a story ada creates shows up.
  const ada = await apiSession(url, "ada");
  const title = "Show who is viewing the board";
  const r = await ada.command(projectId, { type: "create_story", title, state: "unscheduled" });
  check(r.status === 200, `ada's create refused: ${JSON.stringify(r)}`);
  await waitCard(linus, title, 2000, "linus");
  check((await cardByTitle(linus, title).getByRole("button").count()) === 0, "the new card has buttons for a viewer");

  await linus.goto(`${url}/admin.html`);
  await linus.getByTestId("admin-denied").waitFor();
  check((await linus.getByTestId("flags").count()) === 0, "viewer sees the flags");
});

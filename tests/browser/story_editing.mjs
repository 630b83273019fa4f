// Editing a story without losing anyone's work: conflicts shown field by field, unsaved
// edits guarded, refusals in plain words with Save usable again, a blank title refused.
// One case per run, named on the command line.
//
//   node tests/browser/story_editing.mjs http://localhost:8000 conflict|discard|refusals

import { apiSession, boardPage, cardByTitle, check, command, scenario, screenshot } from "./lib.mjs";

const CASE = process.argv[3];
const SAVE = (r) => r.url().endsWith("/commands") && r.request().method() === "POST";

/** A fresh story (so runs do not meet each other's edits), opened in `page`'s panel. */
async function openFresh(page, title, extra = {}) {
  const projectId = Number(new URL(page.url()).hash.split("/").pop());
  const made = await command(page, projectId, { type: "create_story", title, story_type: "feature", state: "unstarted", ...extra });
  check(made.status === 200, `create refused: ${JSON.stringify(made)}`);
  await cardByTitle(page, title).click();
  const detail = page.getByTestId("story-detail");
  await detail.getByTestId("detail-title").waitFor();
  return { projectId, storyId: made.body.event.data.story.id, detail };
}

async function story(page, projectId, storyId) {
  return page.evaluate(async ([p, id]) => (await (await fetch(`/api/projects/${p}`)).json()).stories.find((s) => s.id === id), [projectId, storyId]);
}

/** Let the page's next save reach the app only after `meanwhile` ran (someone else's change). */
async function beforeNextSave(page, meanwhile) {
  let done = false;
  await page.route("**/api/projects/*/commands", async (route) => {
    if (!done) {
      done = true;
      await meanwhile();
    }
    await route.continue();
  });
}

async function conflict(browser, url, pages) {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  const grace = await apiSession(url, "grace");
  const stamp = Date.now();
  const { projectId, storyId, detail } = await openFresh(ada, `Conflict ${stamp}`);

  // Both change the title, ada also the description; grace's change lands first: 409.
  await detail.getByTestId("detail-title").fill(`Ada's title ${stamp}`);
  await detail.getByTestId("detail-description").fill("Ada's description");
  await beforeNextSave(ada, async () => {
    const r = await grace.command(projectId, { type: "update_story", story_id: storyId, title: `Grace's title ${stamp}` });
    check(r.status === 200, `grace's edit refused: ${JSON.stringify(r)}`);
  });
  const [first] = await Promise.all([ada.waitForResponse(SAVE), detail.getByTestId("detail-save").click()]);
  check(first.status() === 409, `the save over grace's edit got HTTP ${first.status()}, not 409`);
  const clash = detail.locator('[data-testid="conflict"][data-field="title"]');
  await clash.waitFor({ timeout: 3000 });
  check((await clash.getByTestId("conflict-theirs").textContent()) === `Grace's title ${stamp}`, "their title is not shown");
  check((await clash.getByTestId("conflict-mine").textContent()) === `Ada's title ${stamp}`, "ada's title is not shown");
  check((await detail.getByTestId("conflict").count()) === 1, "a field only ada changed was shown as a conflict");
  check(await detail.getByTestId("detail-save").isDisabled(), "Save is usable before the conflict is resolved: it would overwrite grace's title");
  await screenshot(ada, "conflict.png");
  await ada.unroute("**/api/projects/*/commands");

  // Ada takes grace's title and keeps her description: saved against the new version.
  await clash.getByTestId("conflict-take-theirs").click();
  check((await detail.getByTestId("detail-title").inputValue()) === `Grace's title ${stamp}`, "taking theirs did not fill the title");
  const [second] = await Promise.all([ada.waitForResponse(SAVE), detail.getByTestId("detail-save").click()]);
  check(second.status() === 200, `the resolved save got HTTP ${second.status()}`);
  let saved = await story(ada, projectId, storyId);
  check(saved.title === `Grace's title ${stamp}` && saved.description === "Ada's description", `not the chosen values: ${JSON.stringify(saved)}`);

  // Changes that do not overlap: ada's description, grace's points. Merged with no question.
  await detail.getByTestId("detail-description").fill("Ada's second description");
  await beforeNextSave(ada, async () => {
    const r = await grace.command(projectId, { type: "update_story", story_id: storyId, estimate: 5 });
    check(r.status === 200, `grace's estimate refused: ${JSON.stringify(r)}`);
  });
  const answers = [];
  ada.on("response", (r) => SAVE(r) && answers.push(r.status()));
  const merged = ada.waitForResponse((r) => SAVE(r) && r.status() === 200, { timeout: 3000 });
  await detail.getByTestId("detail-save").click();
  await merged;
  check(answers[0] === 409, `expected a 409 first, got ${answers.join(", ")}`);
  saved = await story(ada, projectId, storyId);
  check(saved.description === "Ada's second description" && saved.estimate === 5, `non-overlapping changes not both kept: ${JSON.stringify(saved)}`);
  check((await detail.getByTestId("conflict").count()) === 0, "a non-overlapping change was shown as a conflict");
  check((await detail.getByTestId("detail-estimate").inputValue()) === "5", "grace's points are not in the form");
}

async function discard(browser, url, pages) {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  const stamp = Date.now();
  const other = `Other card ${stamp}`;
  const projectId = Number(new URL(ada.url()).hash.split("/").pop());
  check((await command(ada, projectId, { type: "create_story", title: other, story_type: "chore", state: "unstarted" })).status === 200, "create refused");
  const { detail } = await openFresh(ada, `Guarded ${stamp}`);
  await detail.getByTestId("detail-description").fill("Half-written thoughts");
  const asked = [];
  let answer = "dismiss";
  ada.on("dialog", (d) => {
    asked.push(d.type());
    return answer === "accept" ? d.accept() : d.dismiss();
  });

  await ada.keyboard.press("Escape");
  check(asked.length === 1 && asked[0] === "confirm", `Escape dropped unsaved edits without asking (dialogs: ${asked.join(",")})`);
  check(await detail.isVisible(), "the panel closed although the user chose to stay");
  await cardByTitle(ada, other).click();
  check(asked.length === 2, "opening another card did not ask first");
  check((await detail.getByTestId("detail-description").inputValue()) === "Half-written thoughts", "the unsaved edit is gone after staying");
  await detail.getByTestId("detail-close").click();
  check(asked.length === 3 && (await detail.isVisible()), "the close button did not ask first");

  answer = "accept";
  await ada.reload({ timeout: 5000 });
  check(asked.includes("beforeunload"), `a reload dropped unsaved edits without asking (dialogs: ${asked.join(",")})`);
  await ada.getByTestId("board").waitFor({ timeout: 10000 });

  // Nothing unsaved: no question at all.
  const count = asked.length;
  await cardByTitle(ada, other).click();
  await ada.keyboard.press("Escape");
  await detail.waitFor({ state: "hidden", timeout: 2000 });
  check(asked.length === count, "asked although nothing was unsaved");
}

async function refusals(browser, url, pages) {
  const ada = await boardPage(browser, url, "ada");
  pages.push(ada);
  const { projectId, storyId, detail } = await openFresh(ada, `Refusals ${Date.now()}`);
  const save = detail.getByTestId("detail-save");
  const error = detail.getByTestId("detail-error");

  // The limits are on the fields.
  check((await detail.getByTestId("detail-title").getAttribute("maxlength")) === "200", "no limit on the title");
  check((await detail.getByTestId("detail-description").getAttribute("maxlength")) === "20000", "no limit on the description");
  await detail.getByTestId("detail-description").fill("abc");
  check((await detail.getByTestId("detail-description-count").textContent()) === "3 / 20,000", "no character count on the description");

  // A blank title: refused on the page, with a message, nothing sent.
  let sent = 0;
  ada.on("request", (r) => r.url().endsWith("/commands") && sent++);
  await detail.getByTestId("detail-title").fill("   ");
  await save.click();
  await error.waitFor({ timeout: 2000 });
  check((await error.textContent()).includes("needs a title"), `blank title message: "${await error.textContent()}"`);
  check(sent === 0, "a blank title was sent");
  check((await detail.getByTestId("detail-title").getAttribute("aria-invalid")) === "true", "the title is not marked invalid");
  await detail.getByTestId("detail-title").fill("A title again");

  // Past the app's limits (a page without the field's maxlength): 422 then 413, in words.
  await detail.getByTestId("detail-description").evaluate((el) => el.removeAttribute("maxlength"));
  await detail.getByTestId("detail-description").fill("x".repeat(20001));
  let [r] = await Promise.all([ada.waitForResponse(SAVE), save.click()]);
  check(r.status() === 422, `over-long description got HTTP ${r.status()}`);
  await ada.waitForFunction(() => !document.querySelector('[data-testid="detail-error"]').hidden, null, { timeout: 2000 });
  let text = await error.textContent();
  check(text === "The description is too long: at most 20,000 characters.", `422 message: "${text}"`);
  check(await save.isEnabled(), "Save stays disabled after a 422");
  await detail.getByTestId("detail-description").fill("y".repeat(70000));
  [r] = await Promise.all([ada.waitForResponse(SAVE), save.click()]);
  check(r.status() === 413, `a 70,000-byte change got HTTP ${r.status()}`);
  await ada.waitForFunction(() => document.querySelector('[data-testid="detail-error"]').textContent.startsWith("Too large"), null, { timeout: 2000 });
  text = await error.textContent();
  check(!/HTTP|command\\./.test(text), `413 message: "${text}"`);
  check(await save.isEnabled(), "Save stays disabled after a 413");

  // Back within limits: saved, and the title change with it.
  await detail.getByTestId("detail-description").fill("Short again");
  [r] = await Promise.all([ada.waitForResponse(SAVE), save.click()]);
  check(r.status() === 200, `the fixed save got HTTP ${r.status()}`);
  const saved = await story(ada, projectId, storyId);
  check(saved.title === "A title again" && saved.description === "Short again", `not saved: ${JSON.stringify(saved)}`);
}

const CASES = { conflict, discard, refusals };
check(CASE in CASES, `unknown case "${CASE}": one of ${Object.keys(CASES).join(", ")}`);
await scenario(`story_editing_${CASE}`, CASES[CASE], { limitMs: 40000 });

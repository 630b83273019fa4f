// A project's life from its owner's settings, seen live by a member on another page: grace
// (a member of the demo project, so no settings button there) creates a project from the
// board, adds linus by email (an unknown email is refused in words), renames it, makes
// linus a viewer (his board turns read-only), then removes him. Linus's picker gets the
// project and each new name without a reload (by /api/me every projects_refresh seconds
// while it is not open, by the project's own events while it is). Unsaved typing in the
// settings is not dropped without asking. Grace and linus, not ada: the scenarios sign ada
// in many times, and sign-ins per account are limited.
//
//   node tests/browser/project_admin.mjs http://localhost:8000

import { USERS, boardPage, check, scenario } from "./lib.mjs";

/** Bounds: the browser tests run with TIDINGS_PROJECTS_REFRESH=1 (test_browser.py). */
const REFRESH_WAIT = 5000;
const EVENT_WAIT = 3000;

/** Wait until the picker of `page` offers `name` (for project `id`); fail saying what it offers. */
async function offers(page, id, name, timeout, what) {
  try {
    await page.waitForFunction(
      ([pid, text]) => document.querySelector(`[data-testid="project-picker"] option[value="${pid}"]`)?.textContent === text,
      [String(id), name],
      { timeout },
    );
  } catch (err) {
    const seen = await page.getByTestId("project-picker").locator("option").allTextContents();
    throw new Error(`${what}: the picker does not offer "${name}" within ${timeout} ms; it offers ${JSON.stringify(seen)}`);
  }
}

await scenario(
  "project_admin",
  async (browser, url, pages) => {
    const [grace, linus] = await Promise.all([boardPage(browser, url, "grace"), boardPage(browser, url, "linus")]);
    pages.push(grace, linus);
    const stamp = Date.now();
    await grace.getByTestId("new-project-open").waitFor();
    check((await grace.getByTestId("project-settings-open").count()) === 0, "grace, a member, has the settings button");
    check((await linus.getByTestId("project-settings-open").count()) === 0, "linus, a viewer, has the settings button");
    const home = Number(new URL(linus.url()).hash.split("/").pop());

    // Grace creates a project from the board; it opens, hers to run.
    const name = `Launch ${stamp}`;
    await grace.getByTestId("new-project-open").click();
    await grace.getByTestId("new-project-name").fill(name);
    await grace.getByTestId("new-project-create").click();
    await grace.waitForFunction((n) => document.title.startsWith(n), name, { timeout: EVENT_WAIT });
    const id = Number(new URL(grace.url()).hash.split("/").pop());
    check(id !== home, "the new project did not open");
    await offers(grace, id, name, EVENT_WAIT, "grace");
    check((await grace.getByTestId("workspace").getAttribute("data-role")) === "owner", "grace does not own her new project");

    // Members: an unknown email is refused in words; linus is added by his.
    await grace.getByTestId("project-settings-open").click();
    const settings = grace.getByTestId("project-settings");
    await settings.getByTestId("member-email").fill(`nobody-${stamp}@example.com`);
    await settings.getByTestId("member-add").click();
    await settings.getByTestId("member-add-error").waitFor({ timeout: EVENT_WAIT });
    const refused = await settings.getByTestId("member-add-error").textContent();
    check(/no user with that email/i.test(refused), `unknown email: "${refused}"`);
    await settings.getByTestId("member-email").fill(USERS.linus);
    await settings.getByTestId("member-add").click();
    await settings.locator('[data-testid="member"]', { hasText: "Linus" }).waitFor({ timeout: EVENT_WAIT });

    // Linus's picker gets it while he stays on his own board; then its new name.
    await offers(linus, id, name, REFRESH_WAIT, "linus, after being added");
    check((await linus.getByTestId("project-picker").inputValue()) === String(home), "linus's board changed under him");
    const renamed = `Launch renamed ${stamp}`;
    await settings.getByTestId("settings-name").fill(renamed);
    await settings.getByTestId("settings-rename").click();
    await offers(grace, id, renamed, EVENT_WAIT, "grace, after renaming");
    await offers(linus, id, renamed, REFRESH_WAIT, "linus, after the rename");

    // Linus opens it; the next rename reaches him by the project's own events.
    await linus.getByTestId("project-picker").selectOption(String(id));
    await linus.waitForFunction((n) => document.title.startsWith(n), renamed, { timeout: EVENT_WAIT });
    await linus.getByTestId("board").waitFor();
    const final = `<b>Launch</b> ${stamp}`;
    await settings.getByTestId("settings-name").fill(final);
    await settings.getByTestId("settings-name").press("Enter");
    await offers(linus, id, final, EVENT_WAIT, "linus, on the project, after a rename");
    await linus.waitForFunction((n) => document.title.startsWith(n), final, { timeout: EVENT_WAIT });
    check((await linus.locator("nav b, h1 b").count()) === 0, "a project name ran as HTML");

    // Grace makes linus a viewer: linus's page says so, live.
    const linusRow = settings.locator('[data-testid="member"]', { hasText: "Linus" });
    await linusRow.getByTestId("member-role").selectOption("viewer");
    await linus.getByTestId("view-only").waitFor({ timeout: EVENT_WAIT });
    await linus.locator('[data-testid="workspace"][data-role="viewer"]').waitFor({ timeout: EVENT_WAIT });
    check((await linus.getByTestId("add-story-icebox").count()) === 0, "linus, now a viewer, can still add stories");

    // Typing left unsaved: Escape asks before closing, and staying keeps it.
    const asked = [];
    grace.on("dialog", (d) => {
      asked.push(d.type());
      d.dismiss();
    });
    await settings.getByTestId("settings-name").fill("Half a new name");
    await grace.keyboard.press("Escape");
    check(asked.length === 1 && (await settings.isVisible()), `Escape dropped unsaved settings without asking (${asked.join(",")})`);
    check((await settings.getByTestId("settings-name").inputValue()) === "Half a new name", "the typed name is gone after staying");
    await settings.getByTestId("settings-name").fill(final);

    // Grace removes linus: linus is told, grace's list keeps only her.
    await linusRow.getByTestId("member-remove").click();
    await settings.getByTestId("member-remove-confirm").click();
    await linus.getByTestId("notice-membership").waitFor({ timeout: REFRESH_WAIT });
    const left = await settings.getByTestId("member-name").allTextContents();
    check(left.length === 1 && left[0].endsWith("(you)"), `grace's list is not just grace: ${JSON.stringify(left)}`);
    await settings.getByTestId("project-settings-close").click();
    await settings.waitFor({ state: "hidden" });
    check(asked.length === 1, `closing with nothing unsaved asked (${asked.join(",")})`);
  },
  { limitMs: 40000 },
);

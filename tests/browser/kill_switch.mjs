// The kill switch, flipped on the admin page: both board pages drop to "Polling — push off"
// within one live poll interval (plus the app's flag cache), changes still reach the other
// page by polling, and flipping it back brings both to "Live (push)" again. On the way,
// the admin page's override and rollout controls write the flags, and its figures show
// either charts or a plain "stats unavailable".
//
//   node tests/browser/kill_switch.mjs http://localhost:8000

import { RECORD_LABELS, adminPage, boardPage, check, command, left, scenario, screenshot, waitCard, waitStatus } from "./lib.mjs";

/** App's flag cache (2 s) + the longest live poll interval (TIDINGS_POLL_INTERVAL_PUSH * 1.2) + slack. */
const LIVE_INTERVAL_S = Number(process.env.TIDINGS_POLL_INTERVAL_PUSH || 3);
const FALLBACK_S = Number(process.env.TIDINGS_POLL_INTERVAL || 1);
const FLAG_CACHE_MS = 2000;
const PUSH_OFF_MS = FLAG_CACHE_MS + LIVE_INTERVAL_S * 1200 + 1500;
const BACK_LIVE_MS = FLAG_CACHE_MS + FALLBACK_S * 1200 + 3000;
const POLL_MS = FALLBACK_S * 1200 + 800;

/** Do a gesture on the admin page that writes the flags; fail unless the app accepts it. */
async function flagWrite(page, gesture) {
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/admin/flags") && r.request().method() === "PUT", { timeout: 5000 }),
    gesture(),
  ]);
  check(answer.status() === 200, `PUT /api/admin/flags answered ${answer.status()}`);
}

async function flags(page) {
  return page.evaluate(async () => (await fetch("/api/admin/flags")).json());
}

await scenario("kill_switch", async (browser, url, pages) => {
  const [ada, grace, admin] = await Promise.all([boardPage(browser, url, "ada"), boardPage(browser, url, "grace"), adminPage(browser, url)]);
  pages.push(ada, grace, admin);
  await waitStatus(ada, "live", 10000, "ada");
  await waitStatus(grace, "live", 10000, "grace");
  const kill = admin.getByTestId("flag-enabled");
  await kill.waitFor();
  check(await kill.isChecked(), "push is not on at the start");

  // Off.
  let started = Date.now();
  await flagWrite(admin, () => kill.uncheck());
  await admin.getByTestId("kill-banner").waitFor();
  check((await flags(admin)).enabled === false, "the flag did not change");
  await Promise.all([
    waitStatus(ada, "polling_push_off", left(started, PUSH_OFF_MS), "ada"),
    waitStatus(grace, "polling_push_off", left(started, PUSH_OFF_MS), "grace"),
  ]);
  console.log(`  push off on both pages ${Date.now() - started} ms after the switch (bound ${PUSH_OFF_MS} ms)`);
  check((await grace.getByTestId("sync-status").textContent()).includes("Polling — push off"), "indicator text is not 'Polling — push off'");

  // Still in sync by polling.
  const projectId = Number(new URL(ada.url()).hash.split("/").pop());
  const title = "Archive finished iterations";
  started = Date.now();
  const r = await command(ada, projectId, { type: "create_story", title, state: "unscheduled" });
  check(r.status === 200, `create refused: ${JSON.stringify(r)}`);
  await waitCard(grace, title, left(started, POLL_MS), "grace (polling)");
  console.log(`  polled change: ${Date.now() - started} ms (bound ${POLL_MS} ms)`);

  // The other controls write the flags (the kill switch wins over both meanwhile).
  const override = admin.getByTestId(`flag-project-${projectId}`);
  await flagWrite(admin, () => override.selectOption("off"));
  check((await flags(admin)).projects[String(projectId)] === false, "project override not stored");
  await flagWrite(admin, () => admin.getByTestId(`flag-project-${projectId}`).selectOption("follow"));
  check(!(String(projectId) in (await flags(admin)).projects), "project override not cleared");
  await admin.getByTestId("flag-rollout").fill("40");
  await flagWrite(admin, () => admin.getByTestId("flag-rollout-apply").click());
  check((await flags(admin)).rollout_percent === 40, "rollout not stored");
  await admin.getByTestId("flag-rollout").fill("100");
  await flagWrite(admin, () => admin.getByTestId("flag-rollout-apply").click());
  check((await flags(admin)).rollout_percent === 100, "rollout not restored");

  // On again: "Connecting…" while push comes back, never "push unavailable".
  await Promise.all([ada.evaluate(RECORD_LABELS), grace.evaluate(RECORD_LABELS)]);
  started = Date.now();
  await flagWrite(admin, () => kill.check());
  await admin.getByTestId("kill-banner").waitFor({ state: "detached" });
  await Promise.all([
    waitStatus(ada, "live", left(started, BACK_LIVE_MS), "ada"),
    waitStatus(grace, "live", left(started, BACK_LIVE_MS), "grace"),
  ]);
  console.log(`  live again on both pages ${Date.now() - started} ms after the switch (bound ${BACK_LIVE_MS} ms)`);
  for (const [who, page] of [["ada", ada], ["grace", grace]]) {
    // Up to the first "Live": a later drop is a real verdict (a busy machine's push server
    // may report itself degraded for a moment), not the passing state this is about.
    const seen = await page.evaluate(() => window.tidingsLabels);
    const before = seen.slice(0, seen.indexOf("Live (push)") + 1 || seen.length);
    check(!before.some((t) => /unavailable/.test(t)), `${who}: the indicator said ${JSON.stringify(seen)} on the way back to live`);
  }

  // The figures: charts when the app serves /api/admin/stats, otherwise a plain notice.
  const stats = await admin.evaluate(async () => (await fetch("/api/admin/stats")).status);
  if (stats === 404) {
    await admin.getByTestId("stats-unavailable").waitFor();
  } else {
    // Three samples: rates need two, the charts look like charts with three.
    await admin.waitForFunction(() => Number(document.querySelector('[data-testid="stats"]')?.dataset.samples || 0) >= 3, null, { timeout: 8000 });
    await admin.getByTestId("push-server").first().waitFor();
  }
  const toast = admin.getByTestId("notice-flags").getByRole("button", { name: "Dismiss" });
  if (await toast.count()) await toast.click();
  await screenshot(admin, "admin.png");
  await screenshot(grace, "board-grace.png");
});

// The push server stops: both pages say "Polling — push unavailable" at once, a change
// still reaches the other page within the short (fallback) poll interval; the push server
// comes back: both pages are "Live (push)" again. Then the app stops answering polls:
// "Offline, retrying", and "Live (push)" once it answers again. Needs the demo's process id
// (TIDINGS_DEMO_PID): SIGUSR1 stops its push server, SIGUSR2 starts it again.
//
//   TIDINGS_DEMO_PID=1234 node tests/browser/push_outage.mjs http://localhost:8000

import { boardPage, check, command, left, scenario, version, waitCard, waitStatus } from "./lib.mjs";

const FALLBACK_S = Number(process.env.TIDINGS_POLL_INTERVAL || 1);
/** A closed connection is noticed at once; allow a little for the close to travel. */
const NOTICE_MS = 2000;
const POLL_MS = FALLBACK_S * 1200 + 800;
/** Reconnect backoff after a few failed attempts (full jitter, base 2 s: up to 8 s) + connect. */
const BACK_LIVE_MS = 12000;
/** The longest live poll interval (TIDINGS_POLL_INTERVAL_PUSH * 1.2). */
const LIVE_POLL_MAX_MS = Number(process.env.TIDINGS_POLL_INTERVAL_PUSH || 3) * 1200;
/** First retry after a failed poll: full jitter, base 2 s (floor 1 s) + the request. */
const RETRY_MAX_MS = 3500;

const pid = Number(process.env.TIDINGS_DEMO_PID);

await scenario("push_outage", async (browser, url, pages) => {
  check(pid > 0, "TIDINGS_DEMO_PID is not set");
  const [ada, grace] = await Promise.all([boardPage(browser, url, "ada"), boardPage(browser, url, "grace", { transport: "sse" })]);
  pages.push(ada, grace);
  await waitStatus(ada, "live", 10000, "ada");
  await waitStatus(grace, "live", 10000, "grace");

  let started = Date.now();
  process.kill(pid, "SIGUSR1");
  try {
    await Promise.all([
      waitStatus(ada, "polling_push_unavailable", left(started, NOTICE_MS), "ada (WebSocket)"),
      waitStatus(grace, "polling_push_unavailable", left(started, NOTICE_MS), "grace (SSE)"),
    ]);
    console.log(`  push unavailable on both pages ${Date.now() - started} ms after the stop`);
    check((await ada.getByTestId("sync-status").textContent()).includes("Polling — push unavailable"), "indicator text is not 'Polling — push unavailable'");

    const projectId = Number(new URL(ada.url()).hash.split("/").pop());
    const title = "Print-friendly board view";
    started = Date.now();
    const r = await command(ada, projectId, { type: "create_story", title, state: "unstarted" });
    check(r.status === 200, `create refused: ${JSON.stringify(r)}`);
    await waitCard(grace, title, left(started, POLL_MS), "grace (polling)");
    console.log(`  polled change: ${Date.now() - started} ms (bound ${POLL_MS} ms)`);
    await waitCard(ada, title, left(started, POLL_MS), "ada (polling)");
  } finally {
    started = Date.now();
    process.kill(pid, "SIGUSR2");
  }
  await Promise.all([
    waitStatus(ada, "live", left(started, BACK_LIVE_MS), "ada"),
    waitStatus(grace, "live", left(started, BACK_LIVE_MS), "grace"),
  ]);
  console.log(`  live again on both pages ${Date.now() - started} ms after the restart`);
  check((await version(ada)) === (await version(grace)), "the pages show different versions");

  // Polls fail (push still up): the controller reports offline; then live once polls work.
  const polls = "**/api/projects/*/events?*";
  started = Date.now();
  await ada.route(polls, (route) => route.abort("connectionrefused"));
  await waitStatus(ada, "offline", left(started, LIVE_POLL_MAX_MS + 1500), "ada (polls failing)");
  const off = Date.now() - started;
  check((await ada.getByTestId("sync-status").textContent()).includes("Offline, retrying"), "indicator text is not 'Offline, retrying'");
  started = Date.now();
  await ada.unroute(polls);
  await waitStatus(ada, "live", left(started, RETRY_MAX_MS), "ada (polls answered again)");
  const on = Date.now() - started;
  console.log(`  offline after ${off} ms of failing polls, live ${on} ms after they worked again`);
});

// One push transport (WebSocket is live_board's; this one is for SSE and Socket.IO):
// grace's page follows pushes over the transport asked for (?transport=, passed on to the
// client library), and a change ada makes reaches it within 1 s, before its next regular poll.
//
//   node tests/browser/transports.mjs http://localhost:8000 sse
//   node tests/browser/transports.mjs http://localhost:8000 socketio

import { apiSession, boardPage, check, left, quietFor, scenario, waitCard, waitStatus } from "./lib.mjs";

const PUSH_MS = 1000;
const LIVE_POLL_MIN_MS = Number(process.env.TIDINGS_POLL_INTERVAL_PUSH || 3) * 0.8 * 1000;

const transports = (process.argv[3] || "sse,socketio").split(",");

await scenario(`transport_${transports.join("_")}`, async (browser, url, pages) => {
  const ada = await apiSession(url, "ada");
  const projectId = ada.projectId;
  for (const transport of transports) {
    const grace = await boardPage(browser, url, "grace", { transport });
    pages.push(grace);
    await waitStatus(grace, "live", 10000, `grace over ${transport}`);
    check((await grace.getByTestId("sync-status").getAttribute("data-transport")) === transport, `${transport}: the page fell back to another transport`);
    if (transport === "sse") {
      check(grace.tidingsStreams.length > 0, "no /sse stream was opened");
      check(grace.tidingsSockets.length === 0, `SSE page opened WebSockets: ${grace.tidingsSockets}`);
    } else {
      check(grace.tidingsSockets.some((u) => u.includes("/socket.io/")), `no Socket.IO socket: ${grace.tidingsSockets}`);
      check(!grace.tidingsSockets.some((u) => u.endsWith("/ws")), "Socket.IO page used /ws");
    }
    const title = { sse: "Weekly digest email", socketio: "Calendar feed of releases" }[transport] || `Pushed over ${transport}`;
    await quietFor(grace, PUSH_MS, LIVE_POLL_MIN_MS);
    const started = Date.now();
    const r = await ada.command(projectId, { type: "create_story", title, state: "unstarted" });
    check(r.status === 200, `create refused: ${JSON.stringify(r)}`);
    await waitCard(grace, title, left(started, PUSH_MS), `grace over ${transport}`);
    console.log(`  ${transport}: ${Date.now() - started} ms from command to grace's board`);
    await grace.context().close();
    pages.pop();
  }
});

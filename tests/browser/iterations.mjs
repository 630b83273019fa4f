// Iterations and velocity on the board: the line above Current names this iteration and
// its velocity, the Backlog has a heading where each upcoming iteration starts (each
// holding at most a velocity's worth of points), and when another user accepts a story
// both follow live. Linus (a viewer) watches; Grace accepts from elsewhere.
//
//   node tests/browser/iterations.mjs http://localhost:8000

import { apiSession, boardPage, check, scenario, waitStatus } from "./lib.mjs";

/** The summary's figures and the Backlog's iterations as the page shows them. */
async function read(page) {
  return page.evaluate(() => {
    const summary = document.querySelector('[data-testid="iteration-summary"]');
    const iterations = [];
    for (const el of document.querySelector('[data-testid="list-backlog"]').children) {
      if (el.dataset.testid === "iteration-header") iterations.push({ number: Number(el.dataset.iteration), points: Number(el.dataset.points), text: el.textContent, estimates: [] });
      else if (el.dataset.testid === "story-card") {
        const text = el.querySelector(".card-estimate").textContent;
        iterations.at(-1)?.estimates.push(text === "" ? 0 : Number(text));
      }
    }
    return {
      text: summary.textContent,
      number: Number(summary.dataset.iteration),
      accepted: Number(summary.dataset.accepted),
      velocity: Number(summary.dataset.velocity),
      source: summary.dataset.source,
      firstCard: document.querySelector('[data-testid="list-backlog"]').firstElementChild?.dataset.testid,
      allShown: document.querySelector('[data-testid="more-backlog"]').hidden,
      iterations,
    };
  });
}

/** The Backlog's headings agree with the cards under them and with the velocity. */
function checkSplit(seen, what) {
  check(seen.iterations.length > 0, `${what}: no iteration headings in the Backlog`);
  check(seen.firstCard === "iteration-header", `${what}: the Backlog does not start with a heading`);
  seen.iterations.forEach((it, i) => {
    check(it.number === seen.number + 1 + i, `${what}: heading ${i} is iteration ${it.number}, not ${seen.number + 1 + i}`);
    check(it.text.startsWith(`Iteration ${it.number} · from `) && it.text.endsWith(` of ${seen.velocity}`), `${what}: heading reads "${it.text}"`);
    if (seen.allShown) {
      const sum = it.estimates.reduce((a, b) => a + b, 0);
      check(sum === it.points, `${what}: iteration ${it.number} says ${it.points} pts, its cards hold ${sum}`);
    }
    const estimated = it.estimates.filter((e) => e > 0).length;
    check(it.points <= seen.velocity || estimated === 1, `${what}: iteration ${it.number} holds ${it.points} pts over velocity ${seen.velocity}`);
  });
}

await scenario("iterations", async (browser, url, pages) => {
  const linus = await boardPage(browser, url, "linus");
  pages.push(linus);
  await waitStatus(linus, "live", 10000, "linus");
  await linus.getByTestId("iteration-summary").waitFor();
  const before = await read(linus);
  check(/^Iteration \d+ · \d+ \w+ – \d+ \w+ · \d+ pts? accepted · velocity \d+$/.test(before.text), `the summary reads "${before.text}"`);
  check(before.velocity >= 1, `velocity ${before.velocity}`);
  checkSplit(before, "at first");

  // Grace accepts a 3-point story: this iteration's accepted points and (from them, or
  // from finished iterations) the velocity follow, and the Backlog is split again.
  const grace = await apiSession(url, "grace");
  const projectId = Number(new URL(linus.url()).hash.split("/")[2]);
  const made = await grace.command(projectId, { type: "create_story", title: `Velocity ${Date.now()}`, story_type: "feature", state: "delivered", estimate: 3 });
  check(made.status === 200, `create refused: ${JSON.stringify(made)}`);
  const accepted = await grace.command(projectId, { type: "move_story", story_id: made.body.event.data.story.id, before_id: null, state: "accepted" });
  check(accepted.status === 200, `accept refused: ${JSON.stringify(accepted)}`);
  const want = before.accepted + 3;
  await linus.waitForFunction((n) => document.querySelector('[data-testid="iteration-summary"]').dataset.accepted === String(n), want, { timeout: 6000 }).catch(async () => {
    throw new Error(`after an accept the summary still reads "${(await read(linus)).text}", not ${want} pts accepted`);
  });
  const after = await read(linus);
  const velocity = before.source === "finished" ? before.velocity : want;
  check(after.velocity === velocity, `velocity ${after.velocity} after the accept (${before.source}), expected ${velocity}`);
  check(after.text.includes(`${want} pts accepted · velocity ${velocity}`), `the summary reads "${after.text}"`);
  checkSplit(after, "after the accept");
  for (const line of linus.tidingsLog) check(!line.includes("pageerror"), line);
}, { limitMs: 30000 });

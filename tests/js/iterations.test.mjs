// Iterations, velocity and the Backlog's split (js/iterations.js), on fake dates.
import { test } from "node:test";
import assert from "node:assert/strict";

import { DEFAULT_VELOCITY, ITERATION_MS, iterationStart, plan, split } from "../../src/tidings/app/static/js/iterations.js";

const DAY = 24 * 3600 * 1000;
/** Monday 2 December 2024, 00:00 UTC, and times from it (ms). */
const MON = Date.UTC(2024, 11, 2);
const secs = (ms) => ms / 1000;
let nextId = 1;
function story(state, estimate, { created = MON - 21 * DAY, accepted = null } = {}) {
  return { id: nextId++, state, estimate, created_at: secs(created), accepted_at: accepted === null ? null : secs(accepted) };
}

test("iterations start on Mondays at 00:00 UTC and last a week", () => {
  assert.equal(iterationStart(MON), MON);
  assert.equal(iterationStart(MON + 6 * DAY + 23 * 3600 * 1000), MON);
  assert.equal(iterationStart(MON - 1), MON - ITERATION_MS);
  assert.equal(new Date(iterationStart(Date.UTC(2024, 11, 8, 12))).getUTCDay(), 1);
});

test("they are numbered from the week of the first story", () => {
  const stories = [story("unstarted", 1, { created: MON - 14 * DAY + 3 * DAY })];
  assert.equal(plan(stories, MON + DAY).number, 3);
  assert.equal(plan(stories, MON - 14 * DAY + 4 * DAY).number, 1);
  assert.equal(plan([], MON).number, 1);
});

test("velocity is the mean of the last three finished iterations' accepted points", () => {
  const stories = [
    story("accepted", 8, { accepted: MON - 4 * 7 * DAY + DAY }), // four weeks back: not counted
    story("accepted", 3, { accepted: MON - 3 * 7 * DAY + DAY }),
    story("accepted", 5, { accepted: MON - 2 * 7 * DAY + 2 * DAY }),
    story("accepted", 2, { accepted: MON - 7 * DAY + 5 * DAY }),
    story("accepted", 2, { accepted: MON - 1000 }),
    story("accepted", 5, { accepted: MON + DAY }), // this week: accepted, not velocity
    story("accepted", 1), // accepted before accepted_at was kept: counts nowhere
    story("delivered", 8),
  ];
  stories[0].created_at = secs(MON - 10 * 7 * DAY);
  const p = plan(stories, MON + 2 * DAY);
  assert.equal(p.source, "finished");
  assert.equal(p.finished, 3);
  assert.equal(p.velocity, 4); // (3 + 5 + 4) / 3
  assert.equal(p.accepted, 5);
  assert.equal(p.start, MON);
  assert.equal(p.end, MON + ITERATION_MS);
});

test("with fewer finished iterations it averages those, and is at least 1", () => {
  const created = MON - 7 * DAY;
  const one = [story("accepted", 5, { created, accepted: MON - DAY }), story("accepted", 3, { created, accepted: MON + DAY })];
  assert.deepEqual([plan(one, MON + 3 * DAY).velocity, plan(one, MON + 3 * DAY).finished], [5, 1]);
  const idle = [story("unstarted", 3, { created })];
  assert.equal(plan(idle, MON).velocity, 1);
});

test("in the first iteration velocity is what it accepted so far, else the default", () => {
  const created = MON + DAY;
  const stories = [story("unstarted", 2, { created }), story("accepted", 3, { created, accepted: MON + 2 * DAY })];
  const p = plan(stories, MON + 3 * DAY);
  assert.deepEqual([p.number, p.source, p.velocity, p.accepted], [1, "current", 3, 3]);
  const none = plan([story("unstarted", 2, { created })], MON + 3 * DAY);
  assert.deepEqual([none.source, none.velocity], ["default", DEFAULT_VELOCITY]);
});

test("accepting a story moves velocity and this iteration's points at once", () => {
  const created = MON + DAY;
  const stories = [story("accepted", 2, { created, accepted: MON + DAY }), story("delivered", 3, { created })];
  const before = plan(stories, MON + 2 * DAY);
  stories[1].state = "accepted";
  stories[1].accepted_at = secs(MON + 2 * DAY);
  const after = plan(stories, MON + 2 * DAY);
  assert.deepEqual([before.accepted, before.velocity, after.accepted, after.velocity], [2, 2, 5, 5]);
});

test("the Backlog is split in board order into iterations of at most velocity points", () => {
  const b = [3, 2, 0, 4, 1, 8, null, 2].map((e) => story("unstarted", e));
  const { upcoming, iterationOf } = split(b, 5, 4, MON + ITERATION_MS);
  assert.deepEqual(upcoming.map((i) => [i.number, i.points, i.ids.length]), [[4, 5, 3], [5, 5, 2], [6, 8, 2], [7, 2, 1]]);
  assert.deepEqual(upcoming.map((i) => i.start), [1, 2, 3, 4].map((k) => MON + k * ITERATION_MS));
  assert.equal(iterationOf.get(b[5].id), 6);
  assert.equal(iterationOf.get(b[6].id), 6); // unestimated: no points, stays with the one before
  assert.deepEqual(split([], 5, 2, MON).upcoming, []);
});

test("plan splits only Backlog stories, from the next iteration on", () => {
  const created = MON - 14 * DAY;
  const stories = [story("started", 5, { created }), story("unstarted", 8, { created }), story("unstarted", 1, { created }), story("unscheduled", 3, { created })];
  const p = plan(stories, MON + DAY);
  assert.equal(p.number, 3);
  assert.deepEqual([...p.iterationOf.entries()], [[stories[1].id, 4], [stories[2].id, 5]]);
});

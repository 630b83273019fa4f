// Iterations and velocity, Tracker style, from the board's snapshot. An iteration is a
// week (ITERATION_DAYS, from Monday 00:00 UTC), numbered from the week of the project's
// first story. Velocity is the mean of the points accepted in the last finished
// iterations (stories' `accepted_at` and `estimate`); the Backlog is split, in board
// order, into upcoming iterations of about that many points. No DOM, and `now` is an
// argument, so tests/js/iterations.test.mjs runs it on fake dates.

/** Fixed length of an iteration; documented in docs/ARCHITECTURE.md. */
export const ITERATION_DAYS = 7;
export const ITERATION_MS = ITERATION_DAYS * 24 * 3600 * 1000;
/** Velocity averages at most this many finished iterations (Tracker's default). */
export const VELOCITY_ITERATIONS = 3;
/** The velocity planned with before any story has been accepted. */
export const DEFAULT_VELOCITY = 10;
/** 1970-01-05 was a Monday: iterations start on Mondays, 00:00 UTC. */
const MONDAY = Date.UTC(1970, 0, 5);

/** The start (ms) of the iteration containing `ms`. */
export function iterationStart(ms) {
  return MONDAY + Math.floor((ms - MONDAY) / ITERATION_MS) * ITERATION_MS;
}

/** A story's points: its estimate, 0 when unestimated. */
export function points(story) {
  return typeof story.estimate === "number" ? story.estimate : 0;
}

/**
 * The project's iterations at `nowMs`: {number, start, end, accepted (points accepted in
 * this iteration so far), velocity, source, upcoming: [{number, start, points, ids}],
 * iterationOf: Map(story id -> iteration number) for Backlog stories}.
 *
 * source says where the velocity came from: "finished" (the mean of up to
 * VELOCITY_ITERATIONS finished iterations, at least 1), "current" (in the first
 * iteration: the points accepted so far) or "default" (nothing accepted yet).
 */
export function plan(stories, nowMs) {
  const start = iterationStart(nowMs);
  let first = start;
  for (const s of stories) if (typeof s.created_at === "number") first = Math.min(first, iterationStart(s.created_at * 1000));
  const number = Math.round((start - first) / ITERATION_MS) + 1;
  const finished = Math.min(VELOCITY_ITERATIONS, number - 1);
  let accepted = 0;
  let recent = 0;
  for (const s of stories) {
    if (s.state !== "accepted" || typeof s.accepted_at !== "number") continue;
    const at = iterationStart(s.accepted_at * 1000);
    if (at === start) accepted += points(s);
    else if (at < start && at >= start - finished * ITERATION_MS) recent += points(s);
  }
  let velocity;
  let source;
  if (finished > 0) {
    velocity = Math.max(1, Math.round(recent / finished));
    source = "finished";
  } else if (accepted > 0) {
    velocity = accepted;
    source = "current";
  } else {
    velocity = DEFAULT_VELOCITY;
    source = "default";
  }
  const { upcoming, iterationOf } = split(stories.filter((s) => s.state === "unstarted"), velocity, number + 1, start + ITERATION_MS);
  return { number, start, end: start + ITERATION_MS, accepted, velocity, source, finished, upcoming, iterationOf };
}

/**
 * Backlog stories, in order, into iterations from `number` on: the next story starts a new
 * iteration when it would take this one's points past `velocity`, unless this one has no
 * points yet (so a story bigger than `velocity` still gets an iteration); a story without
 * points stays in the iteration before it.
 */
export function split(backlog, velocity, number, startMs) {
  const upcoming = [];
  const iterationOf = new Map();
  let current = null;
  for (const s of backlog) {
    const p = points(s);
    if (!current || (p > 0 && current.points > 0 && current.points + p > velocity)) {
      const n = current ? current.number + 1 : number;
      current = { number: n, start: startMs + (n - number) * ITERATION_MS, points: 0, ids: [] };
      upcoming.push(current);
    }
    current.points += p;
    current.ids.push(s.id);
    iterationOf.set(s.id, current.number);
  }
  return { upcoming, iterationOf };
}

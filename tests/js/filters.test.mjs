// The board's filter (filters.js): each key alone, combined, and through the address.
import { test } from "node:test";
import assert from "node:assert/strict";

import { NO_FILTER, filterFromHash, filterQuery, hashFor, isActive, labelsIn, matcher, parseFilter } from "../../src/tidings/app/static/js/filters.js";

const story = (over) => ({ id: 1, title: "Fix login", description: "", story_type: "bug", state: "started", owner_id: 2, labels: ["ui"], ...over });
const STORIES = [
  story({ id: 1 }),
  story({ id: 2, title: "Sign-up form", description: "Needs a LOGIN link", story_type: "feature", state: "unstarted", owner_id: null, labels: ["ui", "api"] }),
  story({ id: 3, title: "Release 1.0", story_type: "release", state: "accepted", owner_id: 3, labels: [] }),
];
const ids = (f) => STORIES.filter(matcher({ ...NO_FILTER, ...f }) || (() => true)).map((s) => s.id);

test("no filter: no predicate, every story", () => {
  assert.equal(matcher(NO_FILTER), null);
  assert.equal(isActive(NO_FILTER), false);
  assert.deepEqual(ids({}), [1, 2, 3]);
});

test("text matches title or description, any case, every word", () => {
  assert.deepEqual(ids({ q: "login" }), [1, 2]);
  assert.deepEqual(ids({ q: "LOGIN fix" }), [1]);
  assert.deepEqual(ids({ q: "nothing" }), []);
});

test("each key alone", () => {
  assert.deepEqual(ids({ type: "feature" }), [2]);
  assert.deepEqual(ids({ state: "accepted" }), [3]);
  assert.deepEqual(ids({ owner: "2" }), [1]);
  assert.deepEqual(ids({ owner: "none" }), [2]);
  assert.deepEqual(ids({ label: "api" }), [2]);
});

test("keys combine with and", () => {
  assert.deepEqual(ids({ q: "login", label: "ui" }), [1, 2]);
  assert.deepEqual(ids({ q: "login", label: "ui", type: "bug" }), [1]);
  assert.deepEqual(ids({ q: "login", owner: "3" }), []);
});

test("the address round-trips a filter and refuses what is not one", () => {
  const f = { ...NO_FILTER, q: "fix & log?in", type: "bug", owner: "none", label: "ui/ux" };
  assert.deepEqual(filterFromHash(hashFor(7, f)), f);
  assert.equal(hashFor(7, NO_FILTER), "#/projects/7");
  assert.equal(filterQuery({ ...NO_FILTER, state: "started" }), "state=started");
  assert.deepEqual(filterFromHash("#/projects/7"), NO_FILTER);
  assert.equal(parseFilter("owner=abc").owner, "");
  assert.equal(parseFilter("owner=0").owner, "");
  assert.equal(parseFilter(`q=${"x".repeat(500)}`).q.length, 200);
});

test("labels in use, sorted, once each", () => {
  assert.deepEqual(labelsIn(STORIES), ["api", "ui"]);
});

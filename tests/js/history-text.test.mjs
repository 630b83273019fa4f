// Events told as sentences (history-text.js): every event type, names from the context,
// "this story" under its own panel, user text quoted and cut, relative times.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

import { QUOTE_MAX, quote, relativeTime, sentence, storyOf } from "../../src/tidings/app/static/js/history-text.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const fixture = JSON.parse(readFileSync(join(HERE, "..", "vectors", "project_events.json"), "utf8"));

const people = { 1: "Ada", 2: "Grace" };
const titles = { 5: "Fix login" };
const ctx = (here = null) => ({
  here,
  person: (id) => people[id] || `User ${id}`,
  story: (id) => titles[id] ?? null,
  task: (sid, tid) => (sid === 5 && tid === 9 ? "Write tests" : null),
});
const ev = (type, data, actor = 1) => ({ version: 2, type, data, actor, ts: 0 });

test("a move says who moved which story where", () => {
  assert.equal(sentence(ev("story_moved", { story_id: 5, before_id: null, state: "started" }), ctx()), "Ada moved 'Fix login' to Started");
  assert.equal(sentence(ev("story_moved", { story_id: 5, before_id: 3, state: null }), ctx()), "Ada reprioritized 'Fix login'");
  assert.equal(sentence(ev("story_updated", { story_id: 5, changes: { state: "accepted" } }, 2), ctx()), "Grace moved 'Fix login' to Accepted");
});

test("under its own story, the story is 'this story'", () => {
  assert.equal(sentence(ev("story_moved", { story_id: 5, before_id: null, state: "finished" }), ctx(5)), "Ada moved this story to Finished");
});

test("an update lists each changed field in words", () => {
  const text = sentence(ev("story_updated", { story_id: 5, changes: { estimate: 3, owner_id: 2, labels: ["ui", "api"], description: "x" } }), ctx());
  assert.equal(text, "Ada changed 'Fix login': points to 3, owner to Grace, labels to ui, api, the description");
  assert.equal(sentence(ev("story_updated", { story_id: 5, changes: { owner_id: null, estimate: null } }), ctx()), "Ada changed 'Fix login': owner cleared, points cleared");
  assert.equal(sentence(ev("story_updated", { story_id: 5, changes: { title: "Fix sign-in" } }), ctx()), "Ada renamed 'Fix login' to 'Fix sign-in'");
});

test("a story no longer on the board is named from the event, else by id", () => {
  const created = ev("story_created", { story: { id: 8, title: "New one", state: "unstarted" }, before_id: null });
  assert.equal(sentence(created, ctx()), "Ada created 'New one' in Unstarted");
  assert.equal(sentence(ev("story_deleted", { story_id: 77 }), ctx()), "Ada deleted story #77");
});

test("comments and tasks quote the user's text, cut and on one line", () => {
  const long = "word ".repeat(40);
  const text = sentence(ev("comment_added", { story_id: 5, comment: { id: 3, author_id: 1, text: `line one\nline two ${long}` } }), ctx());
  assert.ok(text.startsWith("Ada commented on 'Fix login': 'line one line two word"), text);
  assert.ok(text.endsWith("…'"), text);
  assert.equal(quote("x".repeat(500)).length, QUOTE_MAX + 2);
  assert.equal(sentence(ev("task_completed", { story_id: 5, task_id: 9, done: true }), ctx()), "Ada completed the task 'Write tests' on 'Fix login'");
  assert.equal(sentence(ev("task_completed", { story_id: 5, task_id: 4, done: false }), ctx()), "Ada reopened a task on 'Fix login'");
  assert.equal(sentence(ev("task_edited", { story_id: 5, task_id: 9, text: "Write more tests" }), ctx()), "Ada changed a task on 'Fix login' to 'Write more tests'");
});

test("markup in user text stays text (the view puts it in a text node)", () => {
  const text = sentence(ev("comment_added", { story_id: 5, comment: { id: 3, author_id: 1, text: "<img src=x onerror=alert(1)>" } }), ctx());
  assert.equal(text, "Ada commented on 'Fix login': '<img src=x onerror=alert(1)>'");
});

test("every event type of a real history reads as a sentence naming its actor", () => {
  const names = new Map();
  for (const event of fixture.events) {
    if (event.type === "member_added") names.set(event.data.user_id, event.data.name);
    if (event.type === "project_created") names.set(event.data.owner.user_id, event.data.owner.name);
    const text = sentence(event, { here: null, person: (id) => names.get(id) || `User ${id}`, story: () => null });
    assert.ok(text.startsWith(names.get(event.actor) || `User ${event.actor}`), text);
    assert.ok(!text.includes("undefined") && !text.includes("changed the project ("), `${event.type}: ${text}`);
  }
});

test("storyOf reads both shapes and project events have none", () => {
  assert.equal(storyOf(ev("story_created", { story: { id: 4 } })), 4);
  assert.equal(storyOf(ev("task_added", { story_id: 6, task: {} })), 6);
  assert.equal(storyOf(ev("member_removed", { user_id: 2 })), null);
});

test("relative times, then dates", () => {
  const now = 1_750_000_000;
  assert.equal(relativeTime(now - 10, now), "just now");
  assert.equal(relativeTime(now - 300, now), "5 min ago");
  assert.equal(relativeTime(now - 7200, now), "2 h ago");
  assert.equal(relativeTime(now - 3 * 86400, now), "3 d ago");
  assert.equal(relativeTime(now - 30 * 86400, now), new Date((now - 30 * 86400) * 1000).toISOString().slice(0, 10));
  assert.equal(relativeTime(now + 5, now), "just now");
});

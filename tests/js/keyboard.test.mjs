// Which key press asks for which board action (js/keyboard.js), without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";

import { actionFor, isTyping, sectionAlong, LIFECYCLE } from "../../src/tidings/app/static/js/keyboard.js";

const key = (k, mods = {}) => ({ key: k, ...mods });

test("Alt with the arrows moves the focused card; plain arrows move focus", () => {
  assert.deepEqual(actionFor(key("ArrowUp", { altKey: true }), true), { name: "move-within", delta: -1 });
  assert.deepEqual(actionFor(key("ArrowDown", { altKey: true }), true), { name: "move-within", delta: 1 });
  assert.deepEqual(actionFor(key("ArrowLeft", { altKey: true }), true), { name: "move-across", delta: -1 });
  assert.deepEqual(actionFor(key("ArrowRight", { altKey: true }), true), { name: "move-across", delta: 1 });
  assert.deepEqual(actionFor(key("ArrowDown"), true), { name: "focus-within", delta: 1 });
  assert.deepEqual(actionFor(key("ArrowLeft"), true), { name: "focus-across", delta: -1 });
});

test("arrows away from a card are the page's (scrolling, a select's options)", () => {
  assert.equal(actionFor(key("ArrowDown"), false), null);
  assert.equal(actionFor(key("ArrowUp", { altKey: true }), false), null);
});

test("letters act only without modifiers, so the browser keeps Ctrl+S and Cmd+N", () => {
  assert.deepEqual(actionFor(key("n"), false), { name: "new" });
  assert.deepEqual(actionFor(key("s"), true), { name: "next-state" });
  assert.deepEqual(actionFor(key("o"), true), { name: "open" });
  assert.equal(actionFor(key("o"), false), null);
  for (const mods of [{ ctrlKey: true }, { metaKey: true }, { altKey: true }]) {
    assert.equal(actionFor(key("n", mods), false), null);
    assert.equal(actionFor(key("s", mods), true), null);
  }
  assert.equal(actionFor(key("N", { shiftKey: true }), false), null);
  assert.equal(actionFor(key("x"), true), null);
});

test("? opens the help, however the layout makes it (Shift or not)", () => {
  assert.deepEqual(actionFor(key("?", { shiftKey: true }), false), { name: "help" });
  assert.deepEqual(actionFor(key("?"), true), { name: "help" });
});

test("sections follow a story's life, and stop at either end", () => {
  assert.deepEqual(LIFECYCLE, ["icebox", "backlog", "current", "done"]);
  assert.equal(sectionAlong("icebox", 1), "backlog");
  assert.equal(sectionAlong("backlog", 1), "current");
  assert.equal(sectionAlong("current", 1), "done");
  assert.equal(sectionAlong("done", 1), null);
  assert.equal(sectionAlong("icebox", -1), null);
  assert.equal(sectionAlong("current", -1), "backlog");
  assert.equal(sectionAlong("nowhere", 1), null);
});

test("typing in a text field is not a shortcut; a checkbox takes no text", () => {
  const element = (tag, type = "") => ({ tagName: tag, type, isContentEditable: false, closest: (sel) => (sel.split(", ").includes(tag.toLowerCase()) ? element(tag, type) : null) });
  assert.equal(isTyping(element("INPUT", "text")), true);
  assert.equal(isTyping(element("TEXTAREA")), true);
  assert.equal(isTyping(element("SELECT")), true);
  assert.equal(isTyping(element("INPUT", "checkbox")), false);
  assert.equal(isTyping(element("ARTICLE")), false);
  assert.equal(isTyping({ isContentEditable: true, closest: () => null }), true);
  assert.equal(isTyping(null), false);
});

test("m opens the focused card's Move menu, and only on a card", () => {
  assert.deepEqual(actionFor(key("m"), true), { name: "menu" });
  assert.equal(actionFor(key("m"), false), null);
  assert.equal(actionFor(key("m", { altKey: true }), true), null);
});

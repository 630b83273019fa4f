// What a card's Move menu offers (js/views/move-menu.js), without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";

import { moveChoices } from "../../src/tidings/app/static/js/views/move-menu.js";
import { STATES } from "../../src/tidings/app/static/js/board-model.js";

test("the menu offers up, down, then every other state with the section it lands in", () => {
  const choices = moveChoices("started");
  assert.deepEqual(choices.slice(0, 2), [
    ["up", "Move up", { delta: -1 }],
    ["down", "Move down", { delta: 1 }],
  ]);
  const states = choices.slice(2).map(([, , c]) => c.state);
  assert.deepEqual(states, STATES.filter((s) => s !== "started"));
  const labels = Object.fromEntries(choices.map(([key, label]) => [key, label]));
  assert.equal(labels.unscheduled, "To Unscheduled (Icebox)");
  assert.equal(labels.unstarted, "To Unstarted (Backlog)");
  assert.equal(labels.delivered, "To Delivered (Current)");
  assert.equal(labels.accepted, "To Accepted (Done)");
});

test("a story is never offered the state it is in", () => {
  for (const state of STATES) assert.ok(!moveChoices(state).some(([key]) => key === state), state);
});

// The admin charts' axis scale and labels (js/views/charts.js): every tick a chart
// draws reads as its value, however small the scale.
import { test } from "node:test";
import assert from "node:assert/strict";

import { niceTop, tickText } from "../../src/tidings/app/static/js/views/charts.js";

test("a scale's top is 1, 2 or 5 times a power of ten at or above the largest value", () => {
  assert.equal(niceTop(0), 1);
  assert.equal(niceTop(0.004), 0.005);
  assert.equal(niceTop(0.01), 0.01);
  assert.equal(niceTop(37), 50);
  assert.equal(niceTop(101), 200);
});

test("each tick of a scale reads as its own value, small scales included", () => {
  for (const largest of [0.0007, 0.004, 0.01, 0.03, 0.4, 1.7, 3, 37, 430, 12000]) {
    const top = niceTop(largest);
    const ticks = [0, top / 2, top].map(tickText);
    assert.deepEqual(ticks.map(Number), [0, top / 2, top], `scale to ${top}: ${ticks}`);
    assert.equal(new Set(ticks).size, 3, `scale to ${top}: ${ticks}`);
  }
});

test("tick labels stay short", () => {
  assert.equal(tickText(0), "0");
  assert.equal(tickText(0.025), "0.025");
  assert.equal(tickText(2.5), "2.5");
  assert.equal(tickText(12.4), "12");
  assert.equal(tickText(250), "250");
});

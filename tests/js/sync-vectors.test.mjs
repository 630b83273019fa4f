// Every shared vector in tests/vectors/sync/ against the JS controller; the Python
// suite (tests/client/test_sync_vectors.py) runs the same files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

import { SyncController, fromPushMessage, fullJitter, jittered } from "../../src/tidings/app/static/js/tidings-client/sync-controller.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const VECTORS = join(HERE, "..", "vectors", "sync");
const DEFAULT_DRAW = 0.5;
const TOLERANCE = 1e-9;

function draws(values) {
  const queue = [...values];
  return () => (queue.length ? queue.shift() : DEFAULT_DRAW);
}

function same(want, got) {
  if (typeof want === "number" && typeof got === "number") return Math.abs(want - got) <= TOLERANCE;
  if (Array.isArray(want)) {
    return Array.isArray(got) && want.length === got.length && want.every((w, i) => same(w, got[i]));
  }
  if (want !== null && typeof want === "object") {
    if (got === null || typeof got !== "object" || Array.isArray(got)) return false;
    const wk = Object.keys(want).sort();
    const gk = Object.keys(got).sort();
    return wk.length === gk.length && wk.every((k, i) => k === gk[i] && same(want[k], got[k]));
  }
  return want === got;
}

const files = readdirSync(VECTORS).filter((f) => f.endsWith(".json")).sort();

test("there are vectors to run", () => {
  assert.ok(files.length >= 14, `only ${files.length} vector files`);
});

for (const file of files) {
  const doc = JSON.parse(readFileSync(join(VECTORS, file), "utf8"));
  for (const scenario of doc.scenarios) {
    test(`${file.replace(/\.json$/, "")}: ${scenario.name}`, () => {
      const controller = new SyncController(scenario.config, draws(scenario.random || []));
      scenario.steps.forEach((step, index) => {
        const where = `step ${index} (at ${step.at}, ${step.input.type})`;
        // Round-trip through JSON: the same view the Python runner has.
        const actions = JSON.parse(JSON.stringify(controller.feed(step.at, step.input)));
        assert.ok(
          same(step.actions, actions),
          `${where}\nwant ${JSON.stringify(step.actions)}\ngot  ${JSON.stringify(actions)}`,
        );
        const state = controller.inspect();
        for (const [key, want] of Object.entries(step.state || {})) {
          assert.ok(same(want, state[key]), `${where}: state ${key} want ${JSON.stringify(want)} got ${JSON.stringify(state[key])}`);
        }
      });
    });
  }
}

test("backoff arithmetic stays finite for very long outages", () => {
  assert.equal(fullJitter(5000, 2, 120, 1, 0.5), 60.5);
  assert.equal(jittered(60, 0.2, 0), 48);
});

test("full jitter is uniform over [floor, ceiling]; a ceiling below the floor waits the floor", () => {
  assert.equal(fullJitter(1, 2, 120, 1, 0), 1);
  assert.equal(fullJitter(1, 2, 120, 1, 0.2), 1.2);
  assert.equal(fullJitter(1, 0.5, 120, 1, 0.9), 1);
});

test("push messages map to inputs; malformed ones are dropped", () => {
  assert.deepEqual(fromPushMessage(3, { type: "poke", project: 7, version: 9, ts: 1.5 }), {
    type: "poke", conn: 3, project: 7, version: 9, ts: 1.5,
  });
  assert.deepEqual(fromPushMessage(3, { type: "drain", reconnect_after: 4 }), {
    type: "push_drain", conn: 3, reconnect_after: 4,
  });
  assert.equal(fromPushMessage(3, { type: "poke", project: "7" }), null);
  assert.equal(fromPushMessage(3, { type: "error", error: "bad_token" }), null);
  assert.equal(fromPushMessage(3, "nope"), null);
});

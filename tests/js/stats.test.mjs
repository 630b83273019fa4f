// The admin page's figures (src/tidings/app/static/js/stats.js): rates over a window of
// samples, each push server's counter dated by its report, so a steady load reads steady.

import { test } from "node:test";
import assert from "node:assert/strict";
import { History, figures, windowRate } from "../../src/tidings/app/static/js/stats.js";

/** The stats the page reads every 2 s while one push server reports every 5 s, 10 pokes/s. */
function samplesAtSteadyLoad(reads) {
  const out = [];
  for (let i = 0; i < reads; i += 1) {
    const ts = 1000 + 2 * i;
    const reportAt = 1000 + 5 * Math.floor((ts - 1000) / 5);
    out.push({
      ts,
      app: { counters: { polls: { up_to_date: 3 * (ts - 1000), events: 0 } } },
      push_servers: [{ id: "a", age: ts - reportAt, counters: { pokes_sent: 10 * (reportAt - 1000) } }],
    });
  }
  return out;
}

test("pokes sent reads the load's rate at every read, not 0 and 25 by turns", () => {
  const history = new History(60);
  const seen = samplesAtSteadyLoad(40).map((s) => history.push(s).pokesPerSecond);
  const settled = seen.slice(3);
  assert.ok(settled.every((v) => v !== null && Math.abs(v - 10) < 1e-9), JSON.stringify(seen));
  // Before a second report there is no rate to give, rather than a made-up 0.
  assert.equal(seen[0], null);
});

test("app counters are rates over the window; a restart starts the count again", () => {
  const samples = samplesAtSteadyLoad(20);
  assert.equal(figures(samples, 30).pollsUpToDate, 3);
  assert.equal(windowRate([{ t: 0, v: 100 }, { t: 10, v: 150 }, { t: 12, v: 4 }, { t: 20, v: 44 }]), 5);
  assert.equal(windowRate([{ t: 0, v: 5 }]), null);
});

test("staleness comes from the app's window, with its count", () => {
  const sample = {
    ts: 1,
    app: { staleness_window: { window_s: 60, count: 40, p50: 0.059, p99: 3, by_via: { poke: { count: 39, p50: 0.059, p99: 0.078 } } } },
  };
  const f = figures([sample]);
  assert.equal(f.stalenessCount, 40);
  assert.equal(f.stalenessP99, 3000);
  assert.equal(Math.round(f.stalenessP50), 59);
  assert.equal(f.stalenessByVia.poke.count, 39);
});

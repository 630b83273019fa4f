// The iteration on the board: a line above Current (this iteration's number and dates,
// the points accepted in it, the velocity) and a heading in the Backlog where each
// upcoming iteration starts. iterations.js plans; this only draws, each time the board
// renders, so an accepted story updates both at once. Headings are kept by iteration
// number and rewritten only when their text changes.

import { h } from "../dom.js";
import { plan } from "../iterations.js";

const DAY_MONTH = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
const date = (ms) => DAY_MONTH.format(new Date(ms));
const pts = (n) => `${n} ${n === 1 ? "pt" : "pts"}`;

const WHY = {
  finished: (p) => `the mean of the points accepted in the last ${p.finished} finished ${p.finished === 1 ? "iteration" : "iterations"}`,
  current: () => "the points accepted so far in this first iteration",
  default: () => "assumed: no points accepted yet",
};

export class IterationView {
  /** now(): the time (ms), a parameter so the page and tests agree on it. */
  constructor(model, { now = () => Date.now() } = {}) {
    this.model = model;
    this.now = now;
    this.summary = h("p", { class: "iteration-summary", "data-testid": "iteration-summary" });
    this.headers = new Map();
    this.plan = null;
  }

  /** Draw on `board`: the summary above Current's cards, headings through its section hook. */
  attach(board) {
    board.el.querySelector('[data-testid="list-current"]').before(this.summary);
    board.decorate = (section, shownIds, nodes) => this.decorate(section, shownIds, nodes);
  }

  /** BoardView's hook for one section's nodes: the summary above Current, headings in the Backlog. */
  decorate(section, shownIds, nodes) {
    if (section.id === "current") {
      this.plan = plan(this.model.state.stories, this.now());
      this.drawSummary(this.plan);
      return nodes;
    }
    if (section.id !== "backlog") return nodes;
    const p = this.plan || plan(this.model.state.stories, this.now());
    const out = [];
    let last = null;
    const used = new Set();
    shownIds.forEach((id, i) => {
      const n = p.iterationOf.get(id);
      if (n !== undefined && n !== last) {
        out.push(this.header(p.upcoming.find((it) => it.number === n), p.velocity));
        used.add(n);
        last = n;
      }
      out.push(nodes[i]);
    });
    for (const n of this.headers.keys()) if (!used.has(n)) this.headers.delete(n);
    return out;
  }

  drawSummary(p) {
    const text = `Iteration ${p.number} · ${date(p.start)} – ${date(p.end - 1)} · ${pts(p.accepted)} accepted · velocity ${p.velocity}`;
    if (this.summary.textContent !== text) this.summary.textContent = text;
    this.summary.title = `Velocity ${p.velocity}: ${WHY[p.source](p)}. Iterations are weeks from Monday (UTC).`;
    Object.assign(this.summary.dataset, { iteration: String(p.number), accepted: String(p.accepted), velocity: String(p.velocity), source: p.source });
  }

  header(iteration, velocity) {
    let el = this.headers.get(iteration.number);
    if (!el) {
      el = h("h4", { class: "iteration-header", "data-testid": "iteration-header" });
      this.headers.set(iteration.number, el);
    }
    const text = `Iteration ${iteration.number} · from ${date(iteration.start)} · ${pts(iteration.points)} of ${velocity}`;
    if (el.textContent !== text) el.textContent = text;
    el.dataset.iteration = String(iteration.number);
    el.dataset.points = String(iteration.points);
    return el;
  }
}

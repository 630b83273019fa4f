// The state the board shows, and how three sources fold into it: the client library's
// applied events (others' changes, by poll or push), the events our own commands return
// (shown at once, before any poke), and whole snapshots (start, 409, reload).
// No DOM. Events are applied with project.js, the projector the client library uses.

import { applyInPlace } from "./project.js";

/** Board columns and the story states each one holds, in board order. */
export const COLUMNS = [
  { id: "icebox", title: "Icebox", sections: [{ id: "icebox", states: ["unscheduled"], drop: "unscheduled" }] },
  {
    id: "current",
    title: "Current / Backlog",
    sections: [
      { id: "current", title: "Current", states: ["started", "finished", "delivered", "rejected"], drop: "started" },
      { id: "backlog", title: "Backlog", states: ["unstarted"], drop: "unstarted" },
    ],
  },
  { id: "done", title: "Done", sections: [{ id: "done", states: ["accepted"], drop: "accepted" }] },
];

export const STATES = ["unscheduled", "unstarted", "started", "finished", "delivered", "accepted", "rejected"];
export const TYPES = ["feature", "bug", "chore", "release"];
export const ESTIMATES = [null, 0, 1, 2, 3, 5, 8];

/** The next steps a card's buttons offer, Tracker style: [label, target state]. */
export function nextSteps(state) {
  switch (state) {
    case "unscheduled":
      return [["Schedule", "unstarted"]];
    case "unstarted":
      return [["Start", "started"]];
    case "started":
      return [["Finish", "finished"]];
    case "finished":
      return [["Deliver", "delivered"]];
    case "delivered":
      return [
        ["Accept", "accepted"],
        ["Reject", "rejected"],
      ];
    case "rejected":
      return [["Restart", "started"]];
    default:
      return [];
  }
}

export class BoardModel {
  /** `owned`: the caller hands the snapshot over (a fresh parse), so it is not copied. */
  constructor(snapshot, { owned = false } = {}) {
    this.state = owned ? snapshot : structuredClone(snapshot);
  }

  get version() {
    return this.state.version;
  }

  story(id) {
    return this.state.stories.find((s) => s.id === id) || null;
  }

  member(userId) {
    return this.state.members.find((m) => m.user_id === userId) || null;
  }

  /** Stories of one section, in board order. */
  storiesIn(section) {
    return this.state.stories.filter((s) => section.states.includes(s.state));
  }

  /**
   * Events the client library applied (contiguous, in order); `held` is its snapshot after
   * them. Our own commands' events may already be here: those are skipped. Returns whether
   * the board changed.
   */
  applyRemote(events, held) {
    let changed = false;
    for (const event of events) {
      if (event.version <= this.state.version) continue;
      if (event.version === this.state.version + 1) {
        applyInPlace(this.state, event);
        changed = true;
      } else if (held && held.version >= event.version) {
        // A gap on our side (we skipped ahead with a snapshot of our own): adopt theirs.
        this.state = structuredClone(held);
        return true;
      }
    }
    return changed;
  }

  /**
   * The event our own command returned: "applied" (shown now), "already" (a poke or poll
   * brought it first) or "gap" (someone else's change came before it and has not arrived yet).
   */
  applyLocal(event) {
    if (event.version <= this.state.version) return "already";
    if (event.version !== this.state.version + 1) return "gap";
    applyInPlace(this.state, event);
    return "applied";
  }

  /** A whole snapshot: taken when it is at least as new, or when `force` (the server said reload). */
  replace(snapshot, force = false) {
    if (!force && snapshot.version < this.state.version) return false;
    this.state = structuredClone(snapshot);
    return true;
  }
}

// History from the event log, newest first: the project's activity feed (a side panel) and
// one story's changes (a section of the story panel). Pages come from
// GET /api/projects/{id}/history (docs/PROTOCOL.md §1.3a); new events are added as the board
// receives them, keyed by version so a page and a live event never show one change twice.
// Text goes in as text nodes (dom.js), never as HTML.

import { h, replace } from "../dom.js";
import { request } from "../api.js";
import { sentence, storyOf, relativeTime } from "../history-text.js";
import { icon } from "./icons.js";

/** Events one page asks for. */
export const HISTORY_PAGE = 30;
/**
 * Entries one list holds at most (a page more while paging back): live events past it push
 * the oldest out, and "Show older" stops there, saying so.
 */
export const HISTORY_KEPT = 1000;
/** Requests one "Show older" makes at most while a story's pages come back empty. */
const EMPTY_PAGES = 4;
/** How often the relative times are brought up to date. */
const TICK_MS = 30000;

/** The context history-text.js's sentences read names and titles from: the board's model. */
export function contextOf(model, here = null) {
  const names = new Map();
  return {
    here,
    person: (id) => model.member(id)?.name || names.get(id) || `User ${id}`,
    story: (id) => model.story(id)?.title ?? null,
    task: (sid, tid) => model.story(sid)?.tasks.find((t) => t.id === tid)?.text ?? null,
    /** Names of members since removed, learned from the events that added them. */
    learn(event) {
      if (event.type === "member_added") names.set(event.data.user_id, event.data.name);
      if (event.type === "project_created") names.set(event.data.owner.user_id, event.data.owner.name);
    },
  };
}

/** A bounded, live list of a project's (or one story's) events, newest first. */
export class HistoryList {
  constructor({ projectId, model, story = null, label }) {
    this.projectId = projectId;
    this.story = story;
    this.ctx = contextOf(model, story);
    /** version -> {event, el}: what is on the page. */
    this.entries = new Map();
    this.nextBefore = null;
    this.loaded = false;
    this.loading = false;
    /** Events heard before the first page came. */
    this.pending = [];
    this.list = h("ol", { class: "history-list", "aria-label": label, "data-testid": story === null ? "activity-list" : "story-history" });
    this.status = h("p", { class: "history-status muted", "data-testid": "history-status" }, "Loading history…");
    this.older = h("button", { type: "button", class: "btn btn-ghost btn-more", hidden: true, "data-testid": "history-older", onclick: () => this.loadOlder() }, "Show older");
    this.el = h("div", { class: "history" }, this.list, this.status, this.older);
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.timer);
    this.el.remove();
  }

  async loadFirst() {
    await this.fetchPages(null);
  }

  /** Events may have been skipped (the board took a whole snapshot): read the newest page again. */
  refresh() {
    if (this.loaded && !this.loading) this.fetchPage(null);
  }

  loadOlder() {
    if (this.nextBefore === null) return;
    if (this.entries.size >= HISTORY_KEPT) {
      this.full = true;
      this.renderStatus();
      return;
    }
    this.fetchPages(this.nextBefore);
  }

  /** Pages from `before` down, more than one only while a story's pages come back empty. */
  async fetchPages(before) {
    if (this.loading) return;
    this.loading = true;
    this.older.disabled = true;
    try {
      for (let i = 0; i < EMPTY_PAGES; i += 1) {
        const page = await this.fetchPage(before);
        if (page === null) return;
        before = page.next_before;
        if (page.events.length > 0 || before === null) break;
      }
    } finally {
      this.loading = false;
      this.older.disabled = false;
    }
  }

  async fetchPage(before) {
    const q = new URLSearchParams({ limit: String(HISTORY_PAGE) });
    if (before !== null) q.set("before", String(before));
    if (this.story !== null) q.set("story", String(this.story));
    let page;
    try {
      page = await request("GET", `/api/projects/${this.projectId}/history?${q}`);
    } catch (err) {
      this.status.hidden = false;
      this.status.textContent = "The history could not be loaded.";
      return null;
    }
    if (this.destroyed) return null;
    for (const event of [...page.events].reverse()) this.ctx.learn(event);
    for (const event of page.events) this.add(event, false);
    // A newest page read again (after a reload) fills in; it does not move where "older" starts.
    if (before !== null || !this.loaded) this.nextBefore = page.next_before;
    this.loaded = true;
    this.pruned = page.pruned_through;
    const pending = this.pending.splice(0);
    if (pending.length) this.receive(pending);
    this.renderStatus();
    return page;
  }

  /** Events the board just received (any order, possibly already shown). */
  receive(events) {
    if (!this.loaded) {
      // The first page is on its way: these are added once it is in (bounded like the list).
      this.pending.push(...events);
      if (this.pending.length > HISTORY_KEPT) this.pending.splice(0, this.pending.length - HISTORY_KEPT);
      return;
    }
    let added = false;
    for (const event of events) {
      this.ctx.learn(event);
      if (this.story !== null && storyOf(event) !== this.story) continue;
      added = this.add(event, true) || added;
    }
    if (added) {
      this.trim();
      this.renderStatus();
    }
  }

  add(event, fresh) {
    if (this.entries.has(event.version)) return false;
    const el = this.entry(event, fresh);
    // Newest first: before the first entry with a lower version.
    let after = null;
    for (const [version, entry] of this.entries) {
      if (version < event.version && (after === null || version > after.version)) after = { version, el: entry.el };
    }
    this.list.insertBefore(el, after ? after.el : null);
    this.entries.set(event.version, { event, el });
    return true;
  }

  /** Live events past HISTORY_KEPT entries: the oldest go, and "Show older" starts below what is kept. */
  trim() {
    if (this.entries.size <= HISTORY_KEPT) return;
    const versions = [...this.entries.keys()].sort((a, b) => b - a);
    for (const version of versions.slice(HISTORY_KEPT)) {
      this.entries.get(version).el.remove();
      this.entries.delete(version);
    }
    this.nextBefore = versions[HISTORY_KEPT - 1];
  }

  entry(event, fresh) {
    const stamp = new Date(event.ts * 1000);
    return h(
      "li",
      { class: `history-entry${fresh ? " fresh" : ""}`, "data-testid": "history-entry", "data-version": event.version, "data-type": event.type },
      h("span", { class: "history-text" }, sentence(event, this.ctx)),
      h("time", { class: "history-time", datetime: stamp.toISOString(), title: stamp.toLocaleString() }, relativeTime(event.ts, Date.now() / 1000)),
    );
  }

  tick() {
    const now = Date.now() / 1000;
    for (const { event, el } of this.entries.values()) el.querySelector("time").textContent = relativeTime(event.ts, now);
  }

  renderStatus() {
    this.older.hidden = this.nextBefore === null || Boolean(this.full);
    let text = null;
    if (this.full && this.nextBefore !== null) text = `Showing the newest ${HISTORY_KEPT.toLocaleString("en-US")} changes; older ones are not loaded here.`;
    else if (this.nextBefore === null && this.pruned > 0) text = `History before version ${this.pruned + 1} was pruned.`;
    else if (this.nextBefore === null && this.story === null) text = "The start of the project.";
    else if (this.entries.size === 0 && this.nextBefore !== null) text = "No changes found in the latest events.";
    else if (this.entries.size === 0) text = "No changes yet.";
    this.status.hidden = text === null;
    this.status.textContent = text || "";
  }
}

/** The activity feed: a side panel holding the project's HistoryList, opened from the toolbar. */
export class ActivityPanel {
  constructor(root, { projectId, model, onClose }) {
    this.projectId = projectId;
    this.model = model;
    this.list = null;
    this.el = h("aside", { class: "activity", id: "activity-panel", hidden: true, "aria-labelledby": "activity-title", "data-testid": "activity" });
    this.closeButton = h("button", { class: "btn btn-icon", "aria-label": "Close activity", "data-testid": "activity-close", onclick: () => onClose() }, icon("close"));
    root.append(this.el);
  }

  get open() {
    return !this.el.hidden;
  }

  show() {
    this.el.hidden = false;
    if (this.list) this.list.destroy();
    this.list = new HistoryList({ projectId: this.projectId, model: this.model, label: "Recent changes, newest first" });
    replace(
      this.el,
      h("header", { class: "detail-header" }, h("h2", { class: "activity-title", id: "activity-title" }, "Activity"), h("span", { class: "spacer" }), this.closeButton),
      h("div", { class: "detail-scroll" }, this.list.el),
    );
    this.list.loadFirst();
    this.closeButton.focus();
  }

  hide() {
    this.el.hidden = true;
    if (this.list) this.list.destroy();
    this.list = null;
  }

  receive(events) {
    if (this.list) this.list.receive(events);
  }

  /** The board replaced its snapshot (events may have been skipped): read the newest page again. */
  refresh() {
    if (this.list) this.list.refresh();
  }
}

/** A story's history, for the story panel: a heading and its HistoryList. */
export function storyHistory(projectId, model, storyId) {
  const list = new HistoryList({ projectId, model, story: storyId, label: "Changes to this story, newest first" });
  list.loadFirst();
  const el = h("section", { class: "story-history", "aria-labelledby": "story-history-h" }, h("h3", { class: "detail-h", id: "story-history-h" }, "History"), list.el);
  return { el, list };
}

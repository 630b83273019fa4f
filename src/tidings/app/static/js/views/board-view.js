// The board: columns of story cards by state, Tracker style. Renders the BoardModel;
// user intentions go out through the `actions` callbacks (open, move, create), never
// straight to the API. Drag and drop and the per-card state buttons both end in `move`.
//
// Built for 10,000 stories: cards are keyed by story id and rebuilt only when what they
// show changed, so a remote change patches one card (and its column's counts), never the
// board. Each section renders a window of PAGE cards and grows by PAGE when its "Show more"
// button scrolls into view or is pressed; Done starts collapsed, with its count.
// A filter (filters.js's predicate) narrows every section to its matching stories; the
// windows, keys and counts then apply to those.

import { h } from "../dom.js";
import { COLUMNS, nextSteps } from "../board-model.js";
import { icon } from "./icons.js";

const TYPE_NAMES = { feature: "Feature", bug: "Bug", chore: "Chore", release: "Release" };
/** Cards a section renders at first, and adds each time it grows: a few screens' worth. */
export const PAGE = 30;
/** Sections that start collapsed (a count only) and show their newest stories first when opened. */
const COLLAPSED = new Set(["done"]);

/** What a card shows, as one string: the card is rebuilt only when this changes. */
function cardKey(story, owner) {
  const tasksDone = story.tasks.filter((t) => t.done).length;
  return JSON.stringify([story.title, story.estimate, story.state, story.story_type, story.labels, tasksDone, story.tasks.length, story.comments.length, owner ? owner.name : null]);
}

/** Make `list`'s children exactly `nodes`, in order, moving only the nodes out of place. */
function reconcile(list, nodes) {
  const wanted = new Set(nodes);
  for (const child of [...list.children]) if (!wanted.has(child)) child.remove();
  let cursor = list.firstChild;
  for (const node of nodes) {
    if (node === cursor) cursor = cursor.nextSibling;
    else list.insertBefore(node, cursor);
  }
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

export class BoardView {
  /** actions: {open(id), move(id, state|undefined, beforeId|null), create(section, title, type), menu(id, button)} */
  constructor(root, { model, writable, actions }) {
    this.model = model;
    this.writable = writable;
    this.actions = actions;
    this.selected = null;
    this.dragging = null;
    /** story -> bool, or null: every story shows. */
    this.filter = null;
    /** (section, shown ids, their cards) -> the list's nodes: cards with headings between (views/iterations.js), or null. */
    this.decorate = null;
    this.sections = new Map();
    /** story id -> {el, key}: the cards on the page, reused while what they show is unchanged. */
    this.cards = new Map();
    this.grower = typeof IntersectionObserver === "function"
      ? new IntersectionObserver((entries) => {
          for (const entry of entries) if (entry.isIntersecting) this.grow(entry.target.dataset.section, false);
        }, { rootMargin: "200px" })
      : null;
    this.el = h("div", { class: "board", "data-testid": "board" });
    for (const column of COLUMNS) this.el.append(this.buildColumn(column));
    root.append(this.el);
  }

  buildColumn(column) {
    const count = h("span", { class: "column-count" });
    const points = h("span", { class: "column-points" });
    const body = h("div", { class: "column-body" });
    const el = h(
      "section",
      { class: `column column-${column.id}`, "data-testid": `column-${column.id}`, "aria-label": column.title },
      h("header", { class: "column-header" }, h("h2", {}, column.title), count, points),
      body,
    );
    const stats = { count, points, sections: [] };
    for (const section of column.sections) {
      const list = h("div", { class: "story-list", "data-section": section.id, "data-testid": `list-${section.id}` });
      const empty = h("div", { class: "empty-hint" }, this.writable ? "Drop stories here" : "No stories");
      const form = this.buildCreateForm(section);
      const canAdd = this.writable && (section.id === "icebox" || section.id === "backlog");
      const collapsible = COLLAPSED.has(section.id);
      const toggle = collapsible ? this.toggleButton(section) : null;
      const sectionHeader = section.title
        ? h("div", { class: "section-header" }, h("h3", {}, section.title), canAdd ? this.addButton(section, form) : null, toggle)
        : canAdd || toggle
          ? h("div", { class: "section-header section-header-bare" }, canAdd ? this.addButton(section, form) : null, toggle)
          : null;
      // Collapsible sections show their newest (last) stories, so "more" reveals earlier ones above.
      const more = this.moreButton(section);
      body.append(h("div", { class: `section section-${section.id}` }, sectionHeader, form, collapsible ? more : null, list, collapsible ? null : more, empty));
      if (this.writable) this.bindDrop(list, section);
      this.sections.set(section.id, {
        section, list, empty, form, more, toggle, column: stats,
        limit: PAGE, newestLast: collapsible, collapsed: collapsible, shown: [], total: 0,
      });
      stats.sections.push(section);
    }
    return el;
  }

  toggleButton(section) {
    return h(
      "button",
      {
        class: "btn btn-ghost btn-toggle",
        "data-testid": `toggle-${section.id}`,
        "aria-expanded": "false",
        onclick: () => {
          const entry = this.sections.get(section.id);
          entry.collapsed = !entry.collapsed;
          entry.limit = PAGE;
          this.renderSection(entry, new Set());
        },
      },
      "Show",
    );
  }

  moreButton(section) {
    const button = h("button", {
      class: "btn btn-ghost btn-more",
      "data-testid": `more-${section.id}`,
      "data-section": section.id,
      hidden: true,
      onclick: () => this.grow(section.id, true),
    });
    // Growing upward (newest last) is by request only: its button sits at the top, in view.
    if (this.grower && !COLLAPSED.has(section.id)) this.grower.observe(button);
    return button;
  }

  /** Render PAGE more cards of a section; from a key press or click, focus the first new one. */
  grow(sectionId, focus) {
    const entry = this.sections.get(sectionId);
    if (!entry || entry.collapsed || entry.shown.length >= entry.total) return;
    const before = new Set(entry.shown);
    entry.limit += PAGE;
    this.renderSection(entry, new Set());
    if (focus) {
      const first = entry.newestLast ? [...entry.shown].reverse().find((id) => !before.has(id)) : entry.shown.find((id) => !before.has(id));
      const card = first === undefined ? null : this.cards.get(first);
      if (card) card.el.focus();
    }
  }

  addButton(section, form) {
    return h(
      "button",
      {
        class: "btn btn-ghost btn-add",
        "data-testid": `add-story-${section.id}`,
        onclick: () => {
          form.hidden = false;
          form.querySelector("input").focus();
        },
      },
      icon("plus", { size: 12 }),
      "Add story",
    );
  }

  buildCreateForm(section) {
    const title = h("input", { name: "title", placeholder: "Story title", required: true, maxlength: 200, "data-testid": "new-story-title" });
    const type = h(
      "select",
      { name: "story_type", "aria-label": "Story type", "data-testid": "new-story-type" },
      Object.entries(TYPE_NAMES).map(([value, text]) => h("option", { value }, text)),
    );
    const form = h(
      "form",
      { class: "create-form", hidden: true, "data-testid": `create-form-${section.id}` },
      title,
      h(
        "div",
        { class: "create-form-row" },
        type,
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "btn btn-ghost", onclick: () => close() }, "Cancel"),
        h("button", { type: "submit", class: "btn btn-primary", "data-testid": "new-story-save" }, "Save"),
      ),
    );
    const close = () => {
      form.hidden = true;
      form.reset();
    };
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = title.value.trim();
      if (!text) return;
      this.actions.create(section, text, type.value);
      close();
    });
    return form;
  }

  /**
   * Bring every list up to the model; `flash` holds the ids that changed under someone
   * else's hand. Cards whose content is unchanged keep their DOM nodes; only what changed
   * is rebuilt or moved.
   */
  render(flash = new Set()) {
    const started = performance.now();
    const used = new Set();
    this.matched = 0;
    this.all = 0;
    for (const entry of this.sections.values()) {
      this.renderSection(entry, flash, used);
      this.matched += entry.total;
      this.all += entry.all;
    }
    for (const id of this.cards.keys()) if (!used.has(id)) this.cards.delete(id);
    const seen = new Set();
    for (const { column } of this.sections.values()) {
      if (seen.has(column)) continue;
      seen.add(column);
      let count = 0;
      let pts = 0;
      for (const section of column.sections) {
        const entry = this.sections.get(section.id);
        count += entry.total;
        pts += entry.points;
      }
      column.count.textContent = `${count}`;
      column.points.textContent = `${pts} pts`;
    }
    performance.measure("tidings:board-render", { start: started, detail: { cards: used.size } });
  }

  /** One section: its window of cards (keyed), its "more" button and its hints. */
  renderSection(entry, flash, used = null) {
    const { section, list, empty, more, toggle } = entry;
    const all = this.model.storiesIn(section);
    const stories = this.filter ? all.filter(this.filter) : all;
    entry.all = all.length;
    entry.total = stories.length;
    entry.points = stories.reduce((sum, s) => sum + (typeof s.estimate === "number" ? s.estimate : 0), 0);
    let shown = [];
    if (!entry.collapsed) shown = entry.newestLast ? stories.slice(Math.max(0, stories.length - entry.limit)) : stories.slice(0, entry.limit);
    entry.shown = shown.map((s) => s.id);
    const cards = shown.map((s) => this.keyedCard(s, flash.has(s.id)));
    reconcile(list, this.decorate ? this.decorate(section, entry.shown, cards) : cards);
    if (used) for (const id of entry.shown) used.add(id);
    const hidden = stories.length - shown.length;
    more.hidden = entry.collapsed || hidden === 0;
    more.textContent = entry.newestLast ? `Show ${Math.min(PAGE, hidden)} earlier (${hidden} not shown)` : `Show ${Math.min(PAGE, hidden)} more (${hidden} not shown)`;
    if (toggle) {
      toggle.textContent = entry.collapsed ? `Show ${stories.length}` : "Hide";
      toggle.setAttribute("aria-expanded", String(!entry.collapsed));
      toggle.setAttribute("aria-label", `${entry.collapsed ? "Show" : "Hide"} ${stories.length} ${section.id} stories`);
    }
    empty.hidden = stories.length > 0 && !entry.collapsed;
    empty.textContent = entry.collapsed && stories.length > 0
      ? (this.writable ? `${stories.length} stories hidden; drop here to accept` : `${stories.length} stories hidden`)
      : this.filter && entry.all > 0
        ? "No matching stories"
        : (this.writable ? "Drop stories here" : "No stories");
  }

  /** Show only the stories `predicate` accepts (null: all of them); sections start again at one window. */
  setFilter(predicate) {
    this.filter = predicate;
    for (const entry of this.sections.values()) entry.limit = PAGE;
    this.render();
  }

  /** A section's stories as shown: in board order, those the filter accepts. */
  visible(section) {
    const stories = this.model.storiesIn(section);
    return this.filter ? stories.filter(this.filter) : stories;
  }

  /** The card for `story`: the one on the page while what it shows is unchanged, else a new one. */
  keyedCard(story, flash) {
    const owner = story.owner_id ? this.model.member(story.owner_id) : null;
    const key = cardKey(story, owner);
    const had = this.cards.get(story.id);
    if (had && had.key === key && !flash) return had.el;
    const el = this.card(story, flash, owner);
    // A rebuilt card that had focus keeps it (its buttons were re-created).
    if (had && had.el.contains(document.activeElement)) queueMicrotask(() => el.focus());
    this.cards.set(story.id, { el, key });
    return el;
  }

  /** Put keyboard focus on a story's card, when it is rendered. */
  focusCard(storyId) {
    const card = this.cards.get(storyId);
    if (card) card.el.focus();
  }

  /** Render a story's card if its section hides it (collapsed, or past the window). */
  reveal(storyId) {
    for (const entry of this.sections.values()) {
      const stories = this.visible(entry.section);
      const at = stories.findIndex((s) => s.id === storyId);
      if (at < 0) continue;
      if (entry.shown.includes(storyId)) return;
      entry.collapsed = false;
      entry.limit = Math.max(entry.limit, entry.newestLast ? stories.length - at : at + 1);
      this.renderSection(entry, new Set());
      return;
    }
  }

  select(storyId) {
    this.selected = storyId;
    for (const { el } of this.cards.values()) el.classList.toggle("selected", Number(el.dataset.storyId) === storyId);
  }

  card(story, flash, owner) {
    const tasksDone = story.tasks.filter((t) => t.done).length;
    const buttons = this.writable
      ? nextSteps(story.state).map(([label, state]) =>
          h(
            "button",
            {
              class: `btn-state btn-${label.toLowerCase()}`,
              "data-testid": `state-${label.toLowerCase()}`,
              onclick: (e) => {
                e.stopPropagation();
                // The card may outlive this story object (it is reused while it looks the same).
                const now = this.model.story(story.id) || story;
                this.actions.move(story.id, state, this.placeFor(now, state));
              },
            },
            label,
          ),
        )
      : [];
    const el = h(
      "article",
      {
        class: `card state-${story.state} type-${story.story_type}${flash ? " flash" : ""}${this.selected === story.id ? " selected" : ""}`,
        "data-testid": "story-card",
        "data-story-id": story.id,
        "data-state": story.state,
        draggable: this.writable ? "true" : null,
        tabindex: "0",
        onclick: () => this.actions.open(story.id),
        onkeydown: (e) => {
          if (e.key === "Enter") this.actions.open(story.id);
        },
      },
      h("span", { class: "card-type" }, icon(story.story_type, { size: 14, title: TYPE_NAMES[story.story_type] })),
      h(
        "span",
        { class: `card-estimate${story.estimate === null || story.estimate === undefined ? " none" : ""}`, title: story.estimate === null || story.estimate === undefined ? "Unestimated" : `${story.estimate} points` },
        story.estimate === null || story.estimate === undefined ? "" : String(story.estimate),
      ),
      h(
        "div",
        { class: "card-body" },
        h("span", { class: "card-title", "data-testid": "story-title" }, story.title),
        story.labels.length || story.tasks.length || story.comments.length
          ? h(
              "div",
              { class: "card-meta" },
              story.labels.map((label) => h("span", { class: "label" }, label)),
              story.tasks.length ? h("span", { class: "meta", title: "Tasks done" }, icon("tasks", { size: 11 }), `${tasksDone}/${story.tasks.length}`) : null,
              story.comments.length ? h("span", { class: "meta", title: "Comments" }, icon("comment", { size: 11 }), String(story.comments.length)) : null,
            )
          : null,
      ),
      h(
        "div",
        { class: "card-side" },
        owner ? h("span", { class: "avatar", title: owner.name }, initials(owner.name)) : null,
        buttons,
        this.writable ? this.moveButton(story) : null,
      ),
    );
    if (this.writable) {
      el.addEventListener("dragstart", (e) => {
        this.dragging = story.id;
        e.dataTransfer.effectAllowed = "move";
        e.dataTransfer.setData("text/plain", String(story.id));
        el.classList.add("dragging");
      });
      el.addEventListener("dragend", () => {
        this.dragging = null;
        el.classList.remove("dragging");
        this.clearMarkers();
      });
    }
    return el;
  }

  /** The card's Move button: its menu (views/move-menu.js) reorders by touch or keyboard. */
  moveButton(story) {
    return h(
      "button",
      {
        type: "button",
        class: "btn-move",
        "aria-label": `Move "${story.title}"`,
        "aria-haspopup": "menu",
        "aria-expanded": "false",
        title: "Move",
        "data-testid": "card-move",
        onclick: (e) => {
          e.stopPropagation();
          this.actions.menu(story.id, e.currentTarget);
        },
        // Enter and Space are the button's, not the card's (which would open the story).
        onkeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") e.stopPropagation();
        },
      },
      icon("move", { size: 14 }),
    );
  }

  /**
   * Where a state button puts a story: within its section it keeps its place; into another
   * section (Accept into Done, Start into Current, Schedule into the Backlog) it goes last,
   * as the newest there: before_id null is the end of the project's list, so of every section.
   */
  placeFor(story, state) {
    const sectionOf = (s) => [...this.sections.values()].find(({ section }) => section.states.includes(s))?.section.id;
    return sectionOf(state) === sectionOf(story.state) ? this.nextInBoard(story.id) : null;
  }

  /** The id following `storyId` in board order: moving "before" it keeps the place. */
  nextInBoard(storyId) {
    const stories = this.model.state.stories;
    const index = stories.findIndex((s) => s.id === storyId);
    return index >= 0 && index + 1 < stories.length ? stories[index + 1].id : null;
  }

  clearMarkers() {
    for (const m of this.el.querySelectorAll(".drop-marker")) m.remove();
    for (const l of this.el.querySelectorAll(".drop-target")) l.classList.remove("drop-target");
  }

  /** The card the dragged one would land before (null: the end of the list). */
  cardAfter(list, y) {
    for (const card of list.querySelectorAll(".card:not(.dragging)")) {
      const box = card.getBoundingClientRect();
      if (y < box.top + box.height / 2) return card;
    }
    return null;
  }

  bindDrop(list, section) {
    list.addEventListener("dragover", (e) => {
      if (this.dragging === null) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
      this.clearMarkers();
      list.classList.add("drop-target");
      const after = this.cardAfter(list, e.clientY);
      const marker = h("div", { class: "drop-marker" });
      if (after) list.insertBefore(marker, after);
      else list.append(marker);
    });
    list.addEventListener("dragleave", (e) => {
      if (!list.contains(e.relatedTarget)) this.clearMarkers();
    });
    list.addEventListener("drop", (e) => {
      if (this.dragging === null) return;
      e.preventDefault();
      const id = this.dragging;
      const after = this.cardAfter(list, e.clientY);
      this.clearMarkers();
      this.dragging = null;
      const story = this.model.story(id);
      if (!story) return;
      const beforeId = after ? Number(after.dataset.storyId) : this.afterShown(section);
      const state = section.states.includes(story.state) ? undefined : section.drop;
      const samePlace = state === undefined && (beforeId === id || beforeId === this.nextInSection(section, id));
      if (!samePlace) this.actions.move(id, state, beforeId);
    });
  }

  /** Dropped below a section's last card on the page: before its first story not rendered (null: the end). */
  afterShown(section) {
    const entry = this.sections.get(section.id);
    if (entry.newestLast || entry.collapsed) return null;
    const stories = this.visible(section);
    return stories.length > entry.shown.length ? stories[entry.shown.length].id : null;
  }

  nextInSection(section, storyId) {
    const stories = this.model.storiesIn(section);
    const index = stories.findIndex((s) => s.id === storyId);
    return index >= 0 && index + 1 < stories.length ? stories[index + 1].id : null;
  }
}

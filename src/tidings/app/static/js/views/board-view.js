// The board: columns of story cards by state, Tracker style. Renders the BoardModel;
// user intentions go out through the `actions` callbacks (open, move, create), never
// straight to the API. Drag and drop and the per-card state buttons both end in `move`.

import { h, replace } from "../dom.js";
import { COLUMNS, nextSteps } from "../board-model.js";
import { icon } from "./icons.js";

const TYPE_NAMES = { feature: "Feature", bug: "Bug", chore: "Chore", release: "Release" };

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

export class BoardView {
  /** actions: {open(id), move(id, state|undefined, beforeId|null), create(section, title, type)} */
  constructor(root, { model, writable, actions }) {
    this.model = model;
    this.writable = writable;
    this.actions = actions;
    this.selected = null;
    this.dragging = null;
    this.sections = new Map();
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
      const sectionHeader = section.title
        ? h("div", { class: "section-header" }, h("h3", {}, section.title), canAdd ? this.addButton(section, form) : null)
        : canAdd
          ? h("div", { class: "section-header section-header-bare" }, this.addButton(section, form))
          : null;
      body.append(h("div", { class: `section section-${section.id}` }, sectionHeader, form, list, empty));
      if (this.writable) this.bindDrop(list, section);
      this.sections.set(section.id, { section, list, empty, form, column: stats });
      stats.sections.push(section);
    }
    return el;
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

  /** Re-render every list; `flash` holds the ids that changed under someone else's hand. */
  render(flash = new Set()) {
    for (const { section, list, empty } of this.sections.values()) {
      const stories = this.model.storiesIn(section);
      replace(list, stories.map((s) => this.card(s, flash.has(s.id))));
      empty.hidden = stories.length > 0;
    }
    const seen = new Set();
    for (const { column } of this.sections.values()) {
      if (seen.has(column)) continue;
      seen.add(column);
      const stories = column.sections.flatMap((section) => this.model.storiesIn(section));
      const pts = stories.reduce((sum, s) => sum + (typeof s.estimate === "number" ? s.estimate : 0), 0);
      column.count.textContent = `${stories.length}`;
      column.points.textContent = `${pts} pts`;
    }
  }

  select(storyId) {
    this.selected = storyId;
    for (const el of this.el.querySelectorAll(".card")) el.classList.toggle("selected", Number(el.dataset.storyId) === storyId);
  }

  card(story, flash) {
    const owner = story.owner_id ? this.model.member(story.owner_id) : null;
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
                this.actions.move(story.id, state, this.nextInBoard(story.id));
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
      const beforeId = after ? Number(after.dataset.storyId) : null;
      const state = section.states.includes(story.state) ? undefined : section.drop;
      const samePlace = state === undefined && (beforeId === id || beforeId === this.nextInSection(section, id));
      if (!samePlace) this.actions.move(id, state, beforeId);
    });
  }

  nextInSection(section, storyId) {
    const stories = this.model.storiesIn(section);
    const index = stories.findIndex((s) => s.id === storyId);
    return index >= 0 && index + 1 < stories.length ? stories[index + 1].id : null;
  }
}

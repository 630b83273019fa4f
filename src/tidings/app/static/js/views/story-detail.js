// The story detail panel: fields to edit, comments, tasks. It keeps the user's unsaved
// edits when others change the project, and remembers which version the form shows so a
// save over someone else's edit of the same story gets a 409 instead of silently winning.

import { h, replace, ago } from "../dom.js";
import { STATES, TYPES, ESTIMATES } from "../board-model.js";
import { icon } from "./icons.js";

const FIELDS = ["title", "story_type", "state", "estimate", "owner_id", "labels", "description"];

function labelsOf(text) {
  return [...new Set(text.split(",").map((l) => l.trim()).filter(Boolean))];
}

function valuesOf(story) {
  const out = {};
  for (const f of FIELDS) out[f] = structuredClone(story[f]);
  return out;
}

function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class StoryDetail {
  /** actions: {save(id, changes, version), remove(id), comment(id, text), addTask(id, text), toggleTask(id, taskId, done), close()} */
  constructor(root, { model, writable, actions }) {
    this.model = model;
    this.writable = writable;
    this.actions = actions;
    this.storyId = null;
    this.formVersion = null;
        this.el = h("aside", { class: "detail", hidden: true, "data-testid": "story-detail", "aria-label": "Story details" });
    root.append(this.el);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.el.hidden && !e.target.closest("form.create-form")) this.actions.close();
    });
  }

  get openId() {
    return this.el.hidden ? null : this.storyId;
  }

  open(storyId) {
    this.storyId = storyId;
    this.el.hidden = false;
    this.build();
  }

  close() {
    this.el.hidden = true;
    this.storyId = null;
  }

  /** The model changed (anyone's change): refresh what is shown, keeping unsaved edits. */
  update() {
    if (this.el.hidden) return;
    const story = this.model.story(this.storyId);
    if (!story) {
      replace(this.el, h("div", { class: "detail-gone", "data-testid": "story-gone" }, "This story was deleted.", this.closeButton()));
      return;
    }
    const latest = valuesOf(story);
    const values = this.controls ? this.values() : latest;
    // Edits not yet in the story; once saved (or matched by someone else) they are no edits.
    const pending = this.touched().filter((f) => !sameValue(values[f], latest[f]));
    if (pending.length === 0) {
      const focused = this.formHost.contains(document.activeElement) ? document.activeElement.name : null;
      this.fillForm(story);
      if (focused) this.formHost.querySelector(`[name="${focused}"]`)?.focus();
    } else {
      // Fields the user has not touched follow the story; a change to a touched one is a
      // conflict, left for the app to refuse (409) so the user reviews it before saving.
      for (const f of FIELDS) {
        if (pending.includes(f) || sameValue(latest[f], this.base[f])) continue;
        if (!sameValue(values[f], latest[f])) this.setControl(f, latest[f]);
        this.base[f] = latest[f];
      }
      if (pending.some((f) => !sameValue(latest[f], this.base[f]))) this.changedNote.hidden = false;
      else this.formVersion = this.model.version;
    }
    this.refreshSave();
    this.renderComments(story);
    this.renderTasks(story);
  }

  /** After a 409: keep the edits, take the current version so the next save may win. */
  rebase() {
    const story = this.model.story(this.storyId);
    if (!story) return;
    this.formVersion = this.model.version;
    this.base = valuesOf(story);
    this.changedNote.hidden = true;
    this.refreshSave();
  }

  refreshSave() {
    if (this.saveButton) this.saveButton.disabled = !this.isDirty();
  }

  closeButton() {
    return h("button", { class: "btn btn-icon detail-close", "aria-label": "Close", "data-testid": "detail-close", onclick: () => this.actions.close() }, icon("close"));
  }

  field(label, control) {
    return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control);
  }

  build() {
    const story = this.model.story(this.storyId);
    if (!story) return;
    this.formHost = h("div", { class: "detail-form-host" });
    this.comments = h("ul", { class: "comments", "data-testid": "comments" });
    this.tasks = h("ul", { class: "tasks", "data-testid": "tasks" });
    replace(
      this.el,
      h(
        "header",
        { class: "detail-header" },
        h("span", { class: "detail-id" }, `#${story.id}`),
        this.writable ? null : h("span", { class: "badge", "data-testid": "read-only" }, "View only"),
        h("span", { class: "spacer" }),
        this.closeButton(),
      ),
      h(
        "div",
        { class: "detail-scroll" },
        this.formHost,
        h("h3", { class: "detail-h" }, "Tasks"),
        this.tasks,
        this.taskForm(story),
        h("h3", { class: "detail-h" }, "Comments"),
        this.comments,
        this.commentForm(story),
      ),
    );
    this.fillForm(story);
    this.renderComments(story);
    this.renderTasks(story);
  }

  /** (Re)fill the edit form from the story as it is now. */
  fillForm(story) {
    this.formVersion = this.model.version;
    this.base = valuesOf(story);
    const ro = !this.writable;
    const members = this.model.state.members.filter((m) => m.role !== "viewer");
    const c = {
      title: h("input", { name: "title", value: story.title, disabled: ro, maxlength: 200, "data-testid": "detail-title" }),
      story_type: h(
        "select",
        { name: "story_type", disabled: ro, "data-testid": "detail-type" },
        TYPES.map((t) => h("option", { value: t, selected: t === story.story_type }, t[0].toUpperCase() + t.slice(1))),
      ),
      state: h(
        "select",
        { name: "state", disabled: ro, "data-testid": "detail-state" },
        STATES.map((s) => h("option", { value: s, selected: s === story.state }, s[0].toUpperCase() + s.slice(1))),
      ),
      estimate: h(
        "select",
        { name: "estimate", disabled: ro, "data-testid": "detail-estimate" },
        ESTIMATES.map((e) => h("option", { value: e === null ? "" : String(e), selected: e === story.estimate }, e === null ? "Unestimated" : `${e} point${e === 1 ? "" : "s"}`)),
      ),
      owner_id: h(
        "select",
        { name: "owner_id", disabled: ro, "data-testid": "detail-owner" },
        h("option", { value: "", selected: story.owner_id === null }, "Nobody"),
        members.map((m) => h("option", { value: String(m.user_id), selected: m.user_id === story.owner_id }, m.name)),
      ),
      labels: h("input", { name: "labels", value: story.labels.join(", "), disabled: ro, placeholder: "ui, api", "data-testid": "detail-labels" }),
      description: h("textarea", { name: "description", rows: 5, disabled: ro, placeholder: "Add a description", "data-testid": "detail-description" }, story.description),
    };
    this.controls = c;
    this.changedNote = h("p", { class: "detail-note", hidden: true, "data-testid": "detail-changed" }, "Someone else changed a field you are editing. Saving will show you their version first.");
    const save = h("button", { type: "submit", class: "btn btn-primary", disabled: true, "data-testid": "detail-save" }, "Save");
    const form = h(
      "form",
      { class: "detail-form", "data-testid": "detail-form" },
      this.field("Title", c.title),
      h("div", { class: "field-row" }, this.field("Type", c.story_type), this.field("State", c.state)),
      h("div", { class: "field-row" }, this.field("Points", c.estimate), this.field("Owner", c.owner_id)),
      this.field("Labels", c.labels),
      this.field("Description", c.description),
      this.changedNote,
      this.writable ? h("div", { class: "detail-actions" }, this.deleteControl(story), h("span", { class: "spacer" }), save) : null,
    );
    this.saveButton = save;
    form.addEventListener("input", () => this.refreshSave());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const changes = this.changes();
      if (Object.keys(changes).length === 0) return;
      save.disabled = true;
      this.actions.save(story.id, changes, this.formVersion);
    });
    replace(this.formHost, form);
  }

  deleteControl(story) {
    const wrap = h("span", { class: "delete-control" });
    const ask = h("button", { type: "button", class: "btn btn-danger-ghost", "data-testid": "detail-delete", onclick: () => confirm() }, "Delete");
    const confirm = () =>
      replace(
        wrap,
        h("span", { class: "confirm-text" }, "Delete this story?"),
        h("button", { type: "button", class: "btn btn-danger", "data-testid": "detail-delete-confirm", onclick: () => this.actions.remove(story.id) }, "Delete"),
        h("button", { type: "button", class: "btn btn-ghost", onclick: () => replace(wrap, ask) }, "Keep"),
      );
    wrap.append(ask);
    return wrap;
  }

  values() {
    const c = this.controls;
    return {
      title: c.title.value.trim(),
      story_type: c.story_type.value,
      state: c.state.value,
      estimate: c.estimate.value === "" ? null : Number(c.estimate.value),
      owner_id: c.owner_id.value === "" ? null : Number(c.owner_id.value),
      labels: labelsOf(c.labels.value),
      description: c.description.value,
    };
  }

  setControl(field, value) {
    const control = this.controls[field];
    if (field === "labels") control.value = value.join(", ");
    else if (value === null) control.value = "";
    else control.value = String(value);
  }

  /** Fields the user changed since the form was filled (or last rebased). */
  touched() {
    if (!this.controls) return [];
    const values = this.values();
    return FIELDS.filter((f) => !sameValue(values[f], this.base[f]));
  }

  /** The touched fields' values: what a save sends. */
  changes() {
    const values = this.values();
    const out = {};
    for (const f of this.touched()) out[f] = values[f];
    if (out.title === "") delete out.title;
    return out;
  }

  isDirty() {
    return Boolean(this.controls) && this.writable && Object.keys(this.changes()).length > 0;
  }

  renderComments(story) {
    replace(
      this.comments,
      story.comments.length === 0 ? h("li", { class: "muted" }, "No comments yet.") : null,
      story.comments.map((c) => {
        const author = this.model.member(c.author_id);
        return h(
          "li",
          { class: "comment", "data-testid": "comment" },
          h("div", { class: "comment-head" }, h("strong", {}, author ? author.name : `User ${c.author_id}`), h("span", { class: "muted" }, ago(Date.now() / 1000 - c.created_at))),
          h("div", { class: "comment-text" }, c.text),
        );
      }),
    );
  }

  renderTasks(story) {
    replace(
      this.tasks,
      story.tasks.length === 0 ? h("li", { class: "muted" }, "No tasks.") : null,
      story.tasks.map((t) =>
        h(
          "li",
          { class: `task${t.done ? " done" : ""}`, "data-testid": "task" },
          h(
            "label",
            {},
            h("input", {
              type: "checkbox",
              checked: t.done,
              disabled: !this.writable,
              "data-testid": "task-checkbox",
              onchange: (e) => this.actions.toggleTask(story.id, t.id, e.target.checked),
            }),
            h("span", {}, t.text),
          ),
        ),
      ),
    );
  }

  taskForm(story) {
    if (!this.writable) return null;
    const input = h("input", { name: "task", placeholder: "Add a task", maxlength: 500, "data-testid": "task-input" });
    const form = h("form", { class: "inline-form" }, input, h("button", { type: "submit", class: "btn", "data-testid": "task-add" }, "Add"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      this.actions.addTask(story.id, text);
    });
    return form;
  }

  commentForm(story) {
    if (!this.writable) return null;
    const input = h("textarea", { name: "comment", rows: 2, placeholder: "Write a comment", maxlength: 5000, "data-testid": "comment-input" });
    const form = h("form", { class: "comment-form" }, input, h("div", { class: "detail-actions" }, h("span", { class: "spacer" }), h("button", { type: "submit", class: "btn btn-primary", "data-testid": "comment-post" }, "Post comment")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      this.actions.comment(story.id, text);
    });
    return form;
  }
}

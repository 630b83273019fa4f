// The story detail panel: fields to edit, comments, tasks. It keeps the user's unsaved
// edits when others change the project, and remembers which version the form shows so a
// save over someone else's edit gets a 409 instead of silently winning.
//
// Conflicts (docs/ARCHITECTURE.md, "Editing a story"): a field both people changed is shown
// with both values until the user keeps theirs or takes the other; Save waits for that
// choice. Fields only one side changed merge on their own: the other's follow the story, and
// after a 409 the user's own changes are sent again on the new version.

import { h, replace } from "../dom.js";
import { STATES, TYPES, ESTIMATES } from "../board-model.js";
import { LIMITS, storyProblem } from "../messages.js";
import { icon } from "./icons.js";
import { CommentList } from "./comments.js";
import { TaskList } from "./tasks.js";

const FIELDS = ["title", "story_type", "state", "estimate", "owner_id", "labels", "description"];
const FIELD_LABELS = { title: "Title", story_type: "Type", state: "State", estimate: "Points", owner_id: "Owner", labels: "Labels", description: "Description" };
/** A save that meets a 409 with no overlapping change is sent again at most this many times. */
const REAPPLY_ATTEMPTS = 3;

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

const capital = (s) => s[0].toUpperCase() + s.slice(1);

export class StoryDetail {
  /**
   * actions: {save(id, changes, version) -> {ok}|{conflict}|{error}, remove(id), comment(id, text),
   * editComment(id, commentId, text), deleteComment(id, commentId), addTask(id, text),
   * toggleTask(id, taskId, done), editTask(id, taskId, text), moveTask(id, taskId, position),
   * deleteTask(id, taskId), close()}; the comment and task changes answer {ok}|{error}.
   * `who()`: {userId, role} of the person at the board; `history(storyId)` -> {el, list}: the
   * story's changes, shown below its comments.
   */
  constructor(root, { model, writable, actions, who, history = null }) {
    this.model = model;
    this.history = history;
    this.historyList = null;
    this.writable = writable;
    this.actions = actions;
    this.commentList = new CommentList({
      model,
      who,
      actions: { edit: actions.editComment, remove: actions.deleteComment },
    });
    this.taskList = new TaskList({
      model,
      writable,
      actions: { toggle: actions.toggleTask, edit: actions.editTask, move: actions.moveTask, remove: actions.deleteTask },
    });
    this.storyId = null;
    this.formVersion = null;
    this.controls = null;
    /** field -> {mine, theirs}: both sides changed it; Save waits for the user's choice. */
    this.conflicts = new Map();
    this.saving = false;
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

  /** Move keyboard focus into the panel: its title (or its close button when read-only). */
  focus() {
    const target = this.writable ? this.controls?.title : this.el.querySelector('[data-testid="detail-close"]');
    target?.focus();
  }

  close() {
    this.el.hidden = true;
    this.dropHistory();
    this.storyId = null;
    this.controls = null;
    this.conflicts.clear();
    this.commentList.reset();
    this.taskList.reset();
  }

  /** Whether the panel may go away: no unsaved edits, or the user agrees to drop them. */
  confirmDiscard() {
    if (!this.isDirty()) return true;
    return window.confirm(`Discard your unsaved changes to story #${this.storyId}?`);
  }

  /** The model changed (anyone's change): refresh what is shown, keeping unsaved edits. */
  update() {
    if (this.el.hidden) return;
    const story = this.model.story(this.storyId);
    if (!story) {
      this.controls = null;
      this.conflicts.clear();
      replace(this.el, h("div", { class: "detail-gone", "data-testid": "story-gone" }, "This story was deleted.", this.closeButton()));
      return;
    }
    const latest = valuesOf(story);
    const values = this.controls ? this.values() : latest;
    // Edits not yet in the story; once saved (or matched by someone else) they are no edits.
    const pending = this.touched().filter((f) => !sameValue(values[f], latest[f]));
    if (pending.length === 0 && this.conflicts.size === 0 && !this.saving) {
      const focused = this.formHost.contains(document.activeElement) ? document.activeElement.name : null;
      this.fillForm(story);
      if (focused) this.formHost.querySelector(`[name="${focused}"]`)?.focus();
    } else {
      this.reconcile();
    }
    this.renderComments(story);
    this.renderTasks(story);
  }

  /**
   * Fold the story as it is now into the form: untouched fields follow it, fields only the
   * user changed keep the user's value, and a field both changed (differently) becomes a
   * conflict. The form then stands on the current version. Returns whether any conflict is open.
   */
  reconcile() {
    const story = this.model.story(this.storyId);
    if (!story || !this.controls) return false;
    const latest = valuesOf(story);
    const mine = this.values();
    for (const f of FIELDS) {
      const touched = !sameValue(mine[f], this.base[f]);
      const theirsMoved = !sameValue(latest[f], this.base[f]);
      if (!theirsMoved) continue;
      if (!touched) this.setControl(f, latest[f]);
      else if (!sameValue(mine[f], latest[f])) this.conflicts.set(f, { mine: mine[f], theirs: latest[f] });
    }
    for (const f of [...this.conflicts.keys()]) {
      // Someone else's later change made both sides agree: nothing left to choose.
      if (sameValue(this.values()[f], latest[f])) this.conflicts.delete(f);
      else this.conflicts.get(f).theirs = latest[f];
    }
    this.base = latest;
    this.formVersion = this.model.version;
    this.renderConflicts();
    this.refreshSave();
    return this.conflicts.size > 0;
  }

  refreshSave() {
    if (!this.saveButton) return;
    this.saveButton.disabled = this.saving || this.conflicts.size > 0 || !this.isDirty();
    if (this.counter) this.counter.textContent = `${this.controls.description.value.length.toLocaleString("en-US")} / ${LIMITS.description.toLocaleString("en-US")}`;
  }

  closeButton() {
    return h("button", { class: "btn btn-icon detail-close", "aria-label": "Close", "data-testid": "detail-close", onclick: () => this.actions.close() }, icon("close"));
  }

  field(label, control, extra = null) {
    return h("label", { class: "field" }, h("span", { class: "field-label" }, label, extra), control);
  }

  dropHistory() {
    if (this.historyList) this.historyList.destroy();
    this.historyList = null;
  }

  build() {
    const story = this.model.story(this.storyId);
    if (!story) return;
    this.dropHistory();
    const history = this.history ? this.history(story.id) : null;
    this.historyList = history ? history.list : null;
    this.conflicts.clear();
    this.formHost = h("div", { class: "detail-form-host" });
    this.comments = this.commentList.el;
    this.tasks = this.taskList.el;
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
        history ? history.el : null,
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
    this.conflicts.clear();
    const ro = !this.writable;
    const members = this.model.state.members.filter((m) => m.role !== "viewer");
    const c = {
      title: h("input", { name: "title", value: story.title, disabled: ro, maxlength: LIMITS.title, "aria-describedby": "detail-error", "data-testid": "detail-title" }),
      story_type: h(
        "select",
        { name: "story_type", disabled: ro, "data-testid": "detail-type" },
        TYPES.map((t) => h("option", { value: t, selected: t === story.story_type }, capital(t))),
      ),
      state: h(
        "select",
        { name: "state", disabled: ro, "data-testid": "detail-state" },
        STATES.map((s) => h("option", { value: s, selected: s === story.state }, capital(s))),
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
      labels: h("input", { name: "labels", value: story.labels.join(", "), disabled: ro, placeholder: "ui, api", "aria-describedby": "detail-labels-hint", "data-testid": "detail-labels" }),
      description: h("textarea", { name: "description", rows: 5, disabled: ro, maxlength: LIMITS.description, placeholder: "Add a description", "aria-describedby": "detail-description-count", "data-testid": "detail-description" }, story.description),
    };
    this.controls = c;
    this.counter = h("span", { class: "field-count", id: "detail-description-count", "data-testid": "detail-description-count" });
    this.conflictBox = h("div", { class: "conflicts", hidden: true, role: "region", "aria-label": "Conflicting changes", "data-testid": "detail-conflicts" });
    this.errorBox = h("p", { class: "field-error", id: "detail-error", role: "alert", hidden: true, "data-testid": "detail-error" });
    const save = h("button", { type: "submit", class: "btn btn-primary", disabled: true, "data-testid": "detail-save" }, "Save");
    const form = h(
      "form",
      { class: "detail-form", novalidate: true, "data-testid": "detail-form" },
      this.field("Title", c.title),
      h("div", { class: "field-row" }, this.field("Type", c.story_type), this.field("State", c.state)),
      h("div", { class: "field-row" }, this.field("Points", c.estimate), this.field("Owner", c.owner_id)),
      this.field("Labels", c.labels, h("span", { class: "field-hint", id: "detail-labels-hint" }, `comma-separated, up to ${LIMITS.labels}`)),
      this.field("Description", c.description, this.counter),
      this.conflictBox,
      this.errorBox,
      this.writable ? h("div", { class: "detail-actions" }, this.deleteControl(story), h("span", { class: "spacer" }), save) : null,
    );
    this.saveButton = save;
    form.addEventListener("input", () => {
      this.showError(null);
      this.refreshSave();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit(story.id);
    });
    replace(this.formHost, form);
    this.refreshSave();
  }

  showError(message, field = null) {
    if (!this.errorBox) return;
    this.errorBox.hidden = !message;
    this.errorBox.textContent = message || "";
    for (const control of Object.values(this.controls || {})) control.removeAttribute("aria-invalid");
    if (message && field && this.controls[field]) {
      this.controls[field].setAttribute("aria-invalid", "true");
      this.controls[field].focus();
    }
  }

  /** Save: refuse what the app would refuse, then send; on a 409, merge and resend or ask. */
  async submit(storyId) {
    if (this.saving || this.conflicts.size > 0) return;
    const problem = storyProblem(this.values());
    if (problem) {
      this.showError(problem[1], problem[0]);
      return;
    }
    this.saving = true;
    this.refreshSave();
    try {
      for (let attempt = 1; attempt <= REAPPLY_ATTEMPTS; attempt += 1) {
        const changes = this.changes();
        if (Object.keys(changes).length === 0) return;
        const outcome = await this.actions.save(storyId, changes, this.formVersion);
        if (this.storyId !== storyId || !this.controls) return;
        if (outcome.error) this.showError(outcome.error);
        if (!outcome.conflict) return;
        // The project moved on: merge with it, and send again only if nothing overlaps
        // (an overlap is shown field by field, with the choice to make).
        if (this.reconcile()) {
          this.conflictBox.querySelector("button")?.focus();
          return;
        }
      }
      this.showError("The project keeps changing under this story; try saving again.");
    } finally {
      this.saving = false;
      this.refreshSave();
    }
  }

  /** The conflicts, field by field: their value and the user's, and a choice for each. */
  renderConflicts() {
    if (!this.conflictBox) return;
    this.conflictBox.hidden = this.conflicts.size === 0;
    replace(
      this.conflictBox,
      this.conflicts.size ? h("p", { class: "conflicts-head" }, "Someone else changed what you are editing. For each field, keep your value or take theirs.") : null,
      [...this.conflicts.entries()].map(([field, { mine, theirs }]) =>
        h(
          "div",
          { class: "conflict", "data-testid": "conflict", "data-field": field },
          h("div", { class: "conflict-field" }, FIELD_LABELS[field]),
          h("div", { class: "conflict-side" }, h("span", { class: "conflict-who" }, "Theirs"), h("div", { class: "conflict-value", "data-testid": "conflict-theirs" }, this.shown(field, theirs))),
          h("div", { class: "conflict-side" }, h("span", { class: "conflict-who" }, "Yours"), h("div", { class: "conflict-value", "data-testid": "conflict-mine" }, this.shown(field, mine))),
          h(
            "div",
            { class: "conflict-actions" },
            h("button", { type: "button", class: "btn", "data-testid": "conflict-keep-mine", onclick: () => this.resolve(field, mine) }, "Keep mine"),
            h("button", { type: "button", class: "btn", "data-testid": "conflict-take-theirs", onclick: () => this.resolve(field, theirs) }, "Take theirs"),
          ),
        ),
      ),
    );
  }

  resolve(field, value) {
    this.setControl(field, value);
    this.conflicts.delete(field);
    this.renderConflicts();
    this.showError(null);
    this.refreshSave();
    if (this.conflicts.size === 0) this.saveButton?.focus();
  }

  /** A field's value as the form shows it, for the conflict view. */
  shown(field, value) {
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) return "(empty)";
    if (field === "labels") return value.join(", ");
    if (field === "owner_id") return this.model.member(value)?.name || `User ${value}`;
    if (field === "estimate") return `${value} point${value === 1 ? "" : "s"}`;
    if (field === "story_type" || field === "state") return capital(value);
    return String(value);
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

  /** Fields the user changed since the form was filled (or last reconciled). */
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
    return out;
  }

  isDirty() {
    if (this.el.hidden) return false;
    const fields = Boolean(this.controls) && this.writable && this.touched().length > 0;
    return fields || this.commentList.isDirty() || this.taskList.isDirty();
  }

  renderComments(story) {
    this.commentList.render(story);
  }

  renderTasks(story) {
    this.taskList.render(story);
  }

  taskForm(story) {
    if (!this.writable) return null;
    const input = h("input", { name: "task", placeholder: "Add a task", maxlength: LIMITS.task, "data-testid": "task-input" });
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
    const input = h("textarea", { name: "comment", rows: 2, placeholder: "Write a comment", maxlength: LIMITS.comment, "data-testid": "comment-input" });
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

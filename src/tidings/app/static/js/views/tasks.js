// A story's tasks in the panel: tick done, edit the text, move up or down, delete. Any
// member may (viewers see the list only). Moving is by buttons, so the keyboard and screen
// readers reorder as easily as a mouse; an edit in progress survives others' changes and
// counts as an unsaved edit for the panel's guards.

import { h, replace } from "../dom.js";
import { LIMITS } from "../messages.js";
import { ItemList } from "./inline-edits.js";

export class TaskList extends ItemList {
  /**
   * actions: {toggle(storyId, taskId, done), edit(storyId, taskId, text) -> {ok}|{error},
   * move(storyId, taskId, position) -> {ok}|{error}, remove(storyId, taskId) -> {ok}|{error}}.
   */
  constructor({ model, writable, actions }) {
    super({
      model,
      actions,
      el: h("ul", { class: "tasks", "data-testid": "tasks" }),
      noun: "task",
      afterCancel: (id) => this.focusOn(id, "task-edit"),
      afterSave: (id) => this.focusOn(id, "task-edit"),
    });
    this.writable = writable;
  }

  render(story) {
    this.follow(story, story.tasks.map((t) => t.id));
    const focused = this.el.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = focused ? [focused.closest("[data-task-id]")?.dataset.taskId, focused.dataset.testid] : null;
    replace(
      this.el,
      this.problem ? h("li", { class: "field-error", role: "alert", "data-testid": "tasks-error" }, this.problem) : null,
      story.tasks.length === 0 ? h("li", { class: "muted" }, "No tasks.") : null,
      story.tasks.map((t, index) => this.item(story, t, index)),
    );
    if (focused && this.el.contains(focused)) focused.focus();
    else if (focusKey) this.focusOn(focusKey[0], focusKey[1]);
  }

  /** Focus a task's control by test id (after a move the row is rebuilt). */
  focusOn(taskId, testid) {
    const row = this.el.querySelector(`[data-task-id="${taskId}"]`);
    const target = row?.querySelector(`[data-testid="${testid}"]:not(:disabled)`) || row?.querySelector("button:not(:disabled), input");
    target?.focus();
  }

  item(story, t, index) {
    const edit = this.edits.get(t.id);
    const checkbox = h("input", {
      type: "checkbox",
      checked: t.done,
      disabled: !this.writable,
      "aria-label": edit ? `Done: ${t.text}` : null,
      "data-testid": "task-checkbox",
      onchange: (e) => this.actions.toggle(story.id, t.id, e.target.checked),
    });
    const body = edit
      ? this.editor(story, t, edit, checkbox)
      : h("label", { class: "task-label" }, checkbox, h("span", { "data-testid": "task-text" }, t.text));
    return h(
      "li",
      { class: `task${t.done ? " done" : ""}`, "data-testid": "task", "data-task-id": String(t.id) },
      body,
      this.writable && !edit ? this.controls(story, t, index) : null,
    );
  }

  controls(story, t, index) {
    const last = this.model.story(story.id)?.tasks.length - 1;
    return h(
      "span",
      { class: "item-actions" },
      h("button", { type: "button", class: "btn btn-ghost", "aria-label": `Edit task: ${t.text}`, "data-testid": "task-edit", onclick: () => this.startEdit(story, t) }, "Edit"),
      h("button", { type: "button", class: "btn btn-ghost", "aria-label": `Move up: ${t.text}`, disabled: index === 0, "data-testid": "task-up", onclick: () => this.move(story, t, index - 1, "task-up") }, "↑"),
      h("button", { type: "button", class: "btn btn-ghost", "aria-label": `Move down: ${t.text}`, disabled: index >= last, "data-testid": "task-down", onclick: () => this.move(story, t, index + 1, "task-down") }, "↓"),
      h("button", { type: "button", class: "btn btn-ghost btn-danger-ghost", "aria-label": `Delete task: ${t.text}`, "data-testid": "task-delete", onclick: () => this.remove(story, t) }, "Delete"),
    );
  }

  editor(story, t, edit, checkbox) {
    const form = h(
      "form",
      { class: "inline-form task-editor", "data-testid": "task-editor" },
      checkbox,
      edit.input,
      h("button", { type: "submit", class: "btn btn-primary", disabled: edit.busy, "data-testid": "task-save" }, "Save"),
      h("button", { type: "button", class: "btn btn-ghost", "data-testid": "task-cancel", onclick: () => this.edits.cancel(story, t.id) }, "Cancel"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.edits.save(story, t.id, edit);
    });
    return h("div", { class: "task-edit" }, form, edit.error ? h("p", { class: "field-error", role: "alert", "data-testid": "task-error" }, edit.error) : null);
  }

  startEdit(story, t) {
    const input = h("input", { name: "task-edit", value: t.text, maxlength: LIMITS.task, "aria-label": "Task text", "data-testid": "task-edit-input" });
    this.edits.start(story, t.id, input, t.text);
    this.rerender(story);
    input.focus();
    input.select();
  }

  async move(story, t, position, testid) {
    await this.reported(story, () => this.actions.move(story.id, t.id, position));
    this.focusOn(t.id, testid);
  }

  async remove(story, t) {
    await this.reported(story, () => this.actions.remove(story.id, t.id));
  }
}

// A story's comments in the panel: read by everyone, edited and deleted by their author or
// a project owner (the rule decide.py enforces; the buttons only show where it would pass).
// An edit in progress survives others' changes re-rendering the list, and counts as an
// unsaved edit for the panel's guards.

import { h, replace, ago } from "../dom.js";
import { LIMITS } from "../messages.js";
import { ItemList } from "./inline-edits.js";

export class CommentList extends ItemList {
  /**
   * actions: {edit(storyId, commentId, text) -> {ok}|{error}, remove(storyId, commentId) -> {ok}|{error}}.
   * `who()`: {userId, role} of the person at the board now (a role may change while it is open).
   */
  constructor({ model, who, actions }) {
    super({
      model,
      actions,
      el: h("ul", { class: "comments", "data-testid": "comments" }),
      noun: "comment",
      afterCancel: (id) => this.el.querySelector(`[data-comment-id="${id}"] [data-testid="comment-edit"]`)?.focus(),
    });
    this.who = who;
    /** comment id whose delete waits for confirmation. */
    this.confirming = null;
  }

  /** Whether the comment may be changed by the person at the board. */
  mayChange(comment) {
    const { userId, role } = this.who();
    return role !== "viewer" && role !== null && (comment.author_id === userId || role === "owner");
  }

  render(story) {
    if (this.follow(story, story.comments.map((c) => c.id))) this.confirming = null;
    const focused = this.el.contains(document.activeElement) ? document.activeElement : null;
    replace(
      this.el,
      this.problem ? h("li", { class: "field-error", role: "alert", "data-testid": "comments-error" }, this.problem) : null,
      story.comments.length === 0 ? h("li", { class: "muted" }, "No comments yet.") : null,
      story.comments.map((c) => this.item(story, c)),
    );
    // The editor's textarea is the same node across renders: keep the caret where it was.
    if (focused && this.el.contains(focused)) focused.focus();
  }

  item(story, c) {
    const author = this.model.member(c.author_id);
    const edit = this.edits.get(c.id);
    const head = h(
      "div",
      { class: "comment-head" },
      h("strong", {}, author ? author.name : `User ${c.author_id}`),
      h("span", { class: "muted" }, ago(Date.now() / 1000 - c.created_at)),
      c.edited_at ? h("span", { class: "muted", "data-testid": "comment-edited", title: new Date(c.edited_at * 1000).toLocaleString() }, "(edited)") : null,
      h("span", { class: "spacer" }),
      !edit && this.mayChange(c) ? this.controls(story, c) : null,
    );
    return h(
      "li",
      { class: "comment", "data-testid": "comment", "data-comment-id": String(c.id) },
      head,
      edit ? this.editor(story, c, edit) : h("div", { class: "comment-text", "data-testid": "comment-text" }, c.text),
    );
  }

  controls(story, c) {
    if (this.confirming === c.id) {
      return h(
        "span",
        { class: "item-actions" },
        h("span", { class: "confirm-text" }, "Delete this comment?"),
        h("button", { type: "button", class: "btn btn-danger btn-small", "data-testid": "comment-delete-confirm", onclick: () => this.remove(story, c) }, "Delete"),
        h("button", { type: "button", class: "btn btn-ghost", onclick: () => this.setConfirming(story, null) }, "Keep"),
      );
    }
    return h(
      "span",
      { class: "item-actions" },
      h("button", { type: "button", class: "btn btn-ghost", "aria-label": `Edit comment ${c.id}`, "data-testid": "comment-edit", onclick: () => this.startEdit(story, c) }, "Edit"),
      h("button", { type: "button", class: "btn btn-ghost btn-danger-ghost", "aria-label": `Delete comment ${c.id}`, "data-testid": "comment-delete", onclick: () => this.setConfirming(story, c.id) }, "Delete"),
    );
  }

  editor(story, c, edit) {
    const save = h("button", { type: "submit", class: "btn btn-primary", disabled: edit.busy, "data-testid": "comment-save" }, "Save");
    const form = h(
      "form",
      { class: "comment-form", "data-testid": "comment-editor" },
      edit.input,
      edit.error ? h("p", { class: "field-error", role: "alert", "data-testid": "comment-error" }, edit.error) : null,
      h("div", { class: "detail-actions" }, h("span", { class: "spacer" }), h("button", { type: "button", class: "btn btn-ghost", "data-testid": "comment-cancel", onclick: () => this.edits.cancel(story, c.id) }, "Cancel"), save),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.edits.save(story, c.id, edit);
    });
    return form;
  }

  startEdit(story, c) {
    const input = h("textarea", { name: "comment-edit", rows: 3, maxlength: LIMITS.comment, "aria-label": "Comment text", "data-testid": "comment-edit-input" }, c.text);
    this.edits.start(story, c.id, input, c.text);
    this.confirming = null;
    this.render(this.model.story(story.id) || story);
    input.focus();
  }

  setConfirming(story, id) {
    this.confirming = id;
    this.rerender(story);
    if (id !== null) this.el.querySelector(`[data-comment-id="${id}"] [data-testid="comment-delete-confirm"]`)?.focus();
  }

  async remove(story, c) {
    this.confirming = null;
    await this.reported(story, () => this.actions.remove(story.id, c.id));
  }
}

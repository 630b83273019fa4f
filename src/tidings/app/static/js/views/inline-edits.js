// Edits in place of a story's comments or tasks: which items are being edited, and the
// start, cancel and save flow they share, so both lists guard unsaved text, refuse an
// empty one and put refusals in words the same way. What differs (the noun in the
// prompts, where focus goes after) comes from the list; ItemList is the rest both share.

export class InlineEdits {
  /**
   * list: the comment or task list, whose `actions.edit(storyId, id, text)` -> {ok}|{error}
   * saves and whose `rerender(story)` draws it again. noun: "comment" or "task", for the
   * prompts. afterCancel(id) / afterSave(id): put focus back once the item's editor has
   * gone (afterSave is optional).
   */
  constructor(list, { noun, afterCancel, afterSave = () => {} }) {
    this.list = list;
    this.noun = noun;
    this.afterCancel = afterCancel;
    this.afterSave = afterSave;
    /** item id -> {input, original, error, busy}: edits in progress. */
    this.editing = new Map();
  }

  get(id) {
    return this.editing.get(id);
  }

  clear() {
    this.editing.clear();
  }

  /** Drop edits of items that are gone (deleted by someone else). */
  keepOnly(ids) {
    const present = new Set(ids);
    for (const id of [...this.editing.keys()]) if (!present.has(id)) this.editing.delete(id);
  }

  isDirty() {
    for (const edit of this.editing.values()) if (edit.input.value.trim() !== edit.original) return true;
    return false;
  }

  /** Begin editing item `id` in `input`; Escape in it leaves this editor, not the whole panel. */
  start(story, id, input, original) {
    input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.cancel(story, id);
      }
    });
    this.editing.set(id, { input, original, error: null, busy: false });
  }

  cancel(story, id) {
    const edit = this.editing.get(id);
    if (edit && edit.input.value.trim() !== edit.original && !window.confirm(`Discard your unsaved changes to this ${this.noun}?`)) return;
    this.editing.delete(id);
    this.list.rerender(story);
    this.afterCancel(id);
  }

  async save(story, id, edit) {
    const text = edit.input.value.trim();
    if (text === "") {
      edit.error = `A ${this.noun} cannot be empty; delete it instead.`;
      this.list.rerender(story);
      edit.input.focus();
      return;
    }
    if (text === edit.original) {
      this.editing.delete(id);
      this.list.rerender(story);
      return;
    }
    edit.busy = true;
    edit.error = null;
    this.list.rerender(story);
    const outcome = await this.list.actions.edit(story.id, id, text);
    edit.busy = false;
    if (this.editing.get(id) !== edit) return;
    if (outcome.ok) this.editing.delete(id);
    else edit.error = outcome.error;
    this.list.rerender(story);
    if (outcome.ok) this.afterSave(id);
    else edit.input.focus();
  }
}

/**
 * What a story's comment list and task list share: the story shown, its items' edits in
 * progress, and why the last write was refused (shown above the list until the next one).
 */
export class ItemList {
  /** el: the list's element; the rest as for InlineEdits. */
  constructor({ model, actions, el, noun, afterCancel, afterSave }) {
    this.model = model;
    this.actions = actions;
    this.el = el;
    this.edits = new InlineEdits(this, { noun, afterCancel, afterSave });
    this.problem = null;
    this.storyId = null;
  }

  /** Forget edits in progress (the panel closed; the user agreed to drop them). */
  reset() {
    this.edits.clear();
    this.storyId = null;
  }

  isDirty() {
    return this.edits.isDirty();
  }

  /**
   * Start a render of `story` whose items have `ids`: another story drops the last one's
   * edits and refusal (and says so, true), and edits of items gone are dropped.
   */
  follow(story, ids) {
    const other = this.storyId !== story.id;
    if (other) {
      this.edits.clear();
      this.problem = null;
      this.storyId = story.id;
    }
    this.edits.keepOnly(ids);
    return other;
  }

  /** Run one write and show why it was refused, if it was. */
  async reported(story, write) {
    this.problem = null;
    const outcome = await write();
    if (!outcome.ok && outcome.error) this.problem = outcome.error;
    this.rerender(story);
    return outcome;
  }

  rerender(story) {
    const now = this.model.story(story.id);
    if (now && this.storyId === story.id) this.render(now);
  }
}

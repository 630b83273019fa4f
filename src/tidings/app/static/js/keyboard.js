// The board from the keyboard: walk between cards with the arrow keys, move the focused
// story within its section (Alt+↑/↓) or to the next section of its life (Alt+←/→), and
// single keys for the common actions. Every move is announced in a polite live region.
// Keys are left alone while the user types in a field, and while a dialog is open.
// The help is also a button (for touch screens, which have no "?"), and "m" opens a
// card's Move menu (views/move-menu.js), whose moves are announced the same way.
//
// The mapping from key presses to actions (`actionFor`) has no DOM, so it is tested in Node.

import { h } from "./dom.js";
import { COLUMNS, nextSteps } from "./board-model.js";
import { MoveMenu } from "./views/move-menu.js";

/** Sections in the order a story lives through them: Alt+→ takes it one step along. */
export const LIFECYCLE = ["icebox", "backlog", "current", "done"];

const SECTIONS = new Map(COLUMNS.flatMap((column) => column.sections.map((s) => [s.id, { ...s, name: s.title || column.title }])));

/** What the help dialog lists: [keys, what they do]. */
export const SHORTCUTS = [
  ["n", "New story, in the Icebox"],
  ["Enter or o", "Open the focused story"],
  ["Escape", "Close the story, or this help"],
  ["s", "Move the focused story to its next state (Start, Finish, Deliver, Accept…)"],
  ["↑ ↓", "Focus the story above or below"],
  ["← →", "Focus a story in the column to the left or right"],
  ["Alt + ↑ / Alt + ↓", "Move the focused story up or down within its section"],
  ["Alt + ← / Alt + →", "Move the focused story to the previous or next section: Icebox, Backlog, Current, Done"],
  ["m", "Open the focused story's Move menu: up, down, or to another state"],
  ["?", "Show these shortcuts"],
];

/** Whether keys typed at `target` are text (a field, an editable region): not shortcuts. */
export function isTyping(target) {
  if (!target || typeof target.closest !== "function") return false;
  if (target.isContentEditable) return true;
  const field = target.closest("input, textarea, select");
  if (!field) return false;
  // Checkboxes and buttons styled as inputs take no text.
  return !(field.tagName === "INPUT" && ["checkbox", "radio", "button", "submit", "range"].includes(field.type));
}

/**
 * The action a key press asks for, or null: {name, delta?}. `onCard`: focus is on a story
 * card. Plain letters need no modifier at all (Ctrl+S, Cmd+N stay the browser's).
 */
export function actionFor({ key, altKey = false, ctrlKey = false, metaKey = false, shiftKey = false }, onCard) {
  if (ctrlKey || metaKey) return null;
  const arrows = { ArrowUp: -1, ArrowDown: 1, ArrowLeft: -1, ArrowRight: 1 };
  if (key in arrows) {
    if (!onCard || shiftKey) return null;
    const vertical = key === "ArrowUp" || key === "ArrowDown";
    if (altKey) return { name: vertical ? "move-within" : "move-across", delta: arrows[key] };
    return { name: vertical ? "focus-within" : "focus-across", delta: arrows[key] };
  }
  if (altKey) return null;
  if (key === "?") return { name: "help" };
  if (shiftKey) return null;
  switch (key) {
    case "n":
      return { name: "new" };
    case "o":
      return onCard ? { name: "open" } : null;
    case "m":
      return onCard ? { name: "menu" } : null;
    case "s":
      return { name: "next-state" };
    default:
      return null;
  }
}

/** The section `delta` steps along LIFECYCLE from `sectionId`, or null past either end. */
export function sectionAlong(sectionId, delta) {
  const at = LIFECYCLE.indexOf(sectionId);
  const to = at + delta;
  return at < 0 || to < 0 || to >= LIFECYCLE.length ? null : LIFECYCLE[to];
}

export class BoardKeyboard {
  /**
   * board: the BoardView; model: the BoardModel; openId(): the story open in the panel;
   * actions: {open(id), move(id, state|undefined, beforeId) -> Promise<result|null>}.
   */
  constructor(root, { board, model, writable, openId, actions }) {
    this.board = board;
    this.model = model;
    this.writable = writable;
    this.openId = openId;
    this.actions = actions;
    /** Moves run one after another, each planned on the board as the previous one left it. */
    this.queue = Promise.resolve();
    this.live = h("div", { class: "sr-only", role: "status", "aria-live": "polite", "data-testid": "board-announcer" });
    this.help = this.buildHelp();
    root.append(this.live, this.help);
    /** The toolbar's help button: the shortcuts without a "?" key. */
    this.helpButton = h(
      "button",
      { type: "button", class: "btn btn-ghost btn-help", "aria-haspopup": "dialog", "aria-label": "Keyboard shortcuts", title: "Keyboard shortcuts (?)", "data-testid": "shortcuts-open", onclick: () => this.showHelp() },
      "?",
    );
    this.menu = writable ? new MoveMenu(root, { model, board, keyboard: this }) : null;
    this.onKey = (e) => this.handle(e);
    document.addEventListener("keydown", this.onKey);
  }

  destroy() {
    document.removeEventListener("keydown", this.onKey);
    if (this.help.open) this.help.close();
    if (this.menu) this.menu.close(false);
  }

  buildHelp() {
    const close = h("button", { type: "button", class: "btn", "data-testid": "shortcuts-close", onclick: () => dialog.close() }, "Close");
    const dialog = h(
      "dialog",
      { class: "shortcuts", "aria-labelledby": "shortcuts-title", "data-testid": "shortcuts-help" },
      h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
      h("dl", { class: "shortcut-list" }, SHORTCUTS.map(([keys, what]) => [h("dt", {}, h("kbd", {}, keys)), h("dd", {}, what)])),
      h("p", { class: "muted" }, "Shortcuts do nothing while you type in a field. On a touch screen, a card's Move button moves it up, down or to another state."),
      h("div", { class: "detail-actions" }, h("span", { class: "spacer" }), close),
    );
    // Escape closes the dialog (the browser does that); it must not also close the story.
    dialog.addEventListener("keydown", (e) => {
      if (e.key === "Escape") e.stopPropagation();
    });
    return dialog;
  }

  /** The story the keys act on: the focused card's, else the one open in the panel. */
  focusedStory() {
    const card = document.activeElement?.closest?.('[data-testid="story-card"]');
    if (card && this.board.el.contains(card)) return { id: Number(card.dataset.storyId), card };
    const open = this.openId();
    return open === null ? null : { id: open, card: null };
  }

  handle(e) {
    // A dialog (this help, or another) keeps its keys to itself.
    if (e.defaultPrevented || this.help.open || isTyping(e.target) || e.target?.closest?.("dialog")) return;
    const card = e.target?.closest?.('[data-testid="story-card"]');
    // Keys on a card's own buttons are the buttons'; on the card itself they are ours.
    const onCard = Boolean(card) && e.target === card && this.board.el.contains(card);
    const action = actionFor(e, onCard);
    if (!action) return;
    const writes = ["new", "next-state", "move-within", "move-across", "menu"].includes(action.name);
    if (writes && !this.writable) return;
    e.preventDefault();
    switch (action.name) {
      case "help":
        this.showHelp();
        break;
      case "menu":
        this.openMenu(Number(card.dataset.storyId), card.querySelector('[data-testid="card-move"]'));
        break;
      case "new":
        this.board.el.querySelector('[data-testid="add-story-icebox"]')?.click();
        break;
      case "open":
        this.actions.open(Number(card.dataset.storyId));
        break;
      case "focus-within":
        this.focusNear(card, action.delta);
        break;
      case "focus-across":
        this.focusAcross(card, action.delta);
        break;
      case "next-state":
        this.enqueue(() => this.nextState());
        break;
      case "move-within":
        this.enqueue(() => this.moveWithin(Number(card.dataset.storyId), action.delta));
        break;
      case "move-across":
        this.enqueue(() => this.moveAcross(Number(card.dataset.storyId), action.delta));
        break;
      default:
        break;
    }
  }

  showHelp() {
    if (this.help.open) return;
    this.help.showModal();
    this.help.querySelector("button").focus();
  }

  /** The Move menu of story `id`, below `anchor` (its card's Move button). */
  openMenu(id, anchor) {
    if (this.menu) this.menu.show(id, anchor);
  }

  enqueue(step) {
    this.queue = this.queue.then(step).catch(() => this.say("The story could not be moved."));
  }

  say(text) {
    // Emptied first, so the same sentence twice is announced twice.
    this.live.textContent = "";
    requestAnimationFrame(() => {
      this.live.textContent = text;
    });
  }

  cards(scope) {
    return [...scope.querySelectorAll('[data-testid="story-card"]')];
  }

  focusNear(card, delta) {
    const column = card.closest(".column");
    const cards = this.cards(column);
    const next = cards[cards.indexOf(card) + delta];
    if (next) next.focus();
  }

  /** Into the next column on that side that has cards, at about the same height. */
  focusAcross(card, delta) {
    const columns = [...this.board.el.querySelectorAll(".column")];
    const top = card.getBoundingClientRect().top;
    for (let i = columns.indexOf(card.closest(".column")) + delta; i >= 0 && i < columns.length; i += delta) {
      const cards = this.cards(columns[i]);
      if (cards.length === 0) continue;
      const near = cards.reduce((best, c) => (Math.abs(c.getBoundingClientRect().top - top) < Math.abs(best.getBoundingClientRect().top - top) ? c : best));
      near.focus();
      near.scrollIntoView({ block: "nearest", inline: "nearest" });
      return;
    }
  }

  sectionOf(story) {
    return [...SECTIONS.values()].find((s) => s.states.includes(story.state)) || null;
  }

  /** Up: before the card above. Down: after the card below (before the one after it). */
  async moveWithin(id, delta) {
    const card = this.board.el.querySelector(`[data-story-id="${id}"]`);
    const story = this.model.story(id);
    if (!card || !story) return;
    const section = this.sectionOf(story);
    const cards = this.cards(card.closest(".story-list"));
    const at = cards.indexOf(card);
    const neighbour = cards[at + delta];
    if (!neighbour) {
      this.say(`"${story.title}" is already ${delta < 0 ? "first" : "last"} in ${section.name}.`);
      return;
    }
    const neighbourId = Number(neighbour.dataset.storyId);
    const beforeId = delta < 0 ? neighbourId : (cards[at + 2] ? Number(cards[at + 2].dataset.storyId) : this.board.nextInSection(section, neighbourId));
    await this.moved(id, undefined, beforeId);
  }

  async moveAcross(id, delta) {
    const story = this.model.story(id);
    if (!story) return;
    const from = this.sectionOf(story);
    const to = SECTIONS.get(sectionAlong(from.id, delta));
    if (!to) {
      this.say(`"${story.title}" is already in ${from.name}; there is no section ${delta < 0 ? "before" : "after"} it.`);
      return;
    }
    // Into another section a story goes last, as the state buttons put it.
    await this.moved(id, to.drop, null);
  }

  async nextState() {
    const focused = this.focusedStory();
    const story = focused && this.model.story(focused.id);
    if (!story) return;
    const step = nextSteps(story.state)[0];
    if (!step) {
      this.say(`"${story.title}" is ${story.state}: it has no next state.`);
      return;
    }
    await this.moved(story.id, step[1], this.board.placeFor(story, step[1]), Boolean(focused.card));
  }

  /** Send the move; then bring the card into view, focus it, and say where it went. */
  async moved(id, state, beforeId, refocus = true) {
    const result = await this.actions.move(id, state, beforeId);
    const story = this.model.story(id);
    if (!result || !story) {
      this.say("The story was not moved.");
      return;
    }
    if (refocus) {
      this.board.reveal(id);
      this.board.focusCard(id);
    }
    const section = this.sectionOf(story);
    const list = this.model.storiesIn(section);
    const where = `${section.name}, ${list.findIndex((s) => s.id === id) + 1} of ${list.length}`;
    this.say(`Moved "${story.title}" to ${where}${state === undefined ? "" : `, now ${story.state}`}.`);
  }
}

// A story card's Move menu: up or down within its section, or to another state. It is how
// a touch screen reorders (drag and drop needs a mouse), and the keyboard's other way: it
// opens from the card's Move button (or "m" on a card), the arrows walk its items, Escape
// closes it. The moving and the spoken "Moved … to …" are the keyboard's (keyboard.js),
// so a move from here is announced exactly as Alt+arrow's.
//
// One menu serves the whole board (a card holds only its button), so 10,000 cards cost
// nothing more than a button each.

import { h } from "../dom.js";
import { COLUMNS, STATES } from "../board-model.js";

const SECTION_OF = new Map(COLUMNS.flatMap((column) => column.sections.map((s) => s.states.map((state) => [state, s.title || column.title])).flat()));
const capital = (s) => s[0].toUpperCase() + s.slice(1);
/** Pixels kept between the menu and the window's edges. */
const MARGIN = 8;

/** The menu's entries for a story in `state`: [key, label, {delta} | {state}]. No DOM, so tested in Node. */
export function moveChoices(state) {
  return [
    ["up", "Move up", { delta: -1 }],
    ["down", "Move down", { delta: 1 }],
    ...STATES.filter((s) => s !== state).map((s) => [s, `To ${capital(s)} (${SECTION_OF.get(s)})`, { state: s }]),
  ];
}

export class MoveMenu {
  /** keyboard: the BoardKeyboard (moveWithin, moved, enqueue); board: the BoardView (placeFor). */
  constructor(root, { model, board, keyboard }) {
    this.model = model;
    this.board = board;
    this.keyboard = keyboard;
    this.storyId = null;
    this.anchor = null;
    this.el = h("div", { class: "move-menu", role: "menu", hidden: true, "data-testid": "move-menu" });
    this.el.addEventListener("keydown", (e) => this.key(e));
    // A press anywhere else closes it, leaving focus where that press put it.
    this.onOutside = (e) => {
      if (!this.el.contains(e.target) && e.target !== this.anchor && !this.anchor?.contains(e.target)) this.close(false);
    };
    this.onScroll = (e) => {
      if (!this.el.contains(e.target)) this.close(false);
    };
    root.append(this.el);
  }

  get open() {
    return !this.el.hidden;
  }

  /** Open for story `id` below (or above) `anchor`, the button that asked; focus its first item. */
  show(id, anchor) {
    const story = this.model.story(id);
    if (!story) return;
    if (this.open) this.close(false);
    this.storyId = id;
    this.anchor = anchor;
    this.el.setAttribute("aria-label", `Move "${story.title}"`);
    this.el.replaceChildren(
      ...moveChoices(story.state).map(([key, label, choice]) =>
        h("button", { type: "button", role: "menuitem", tabindex: "-1", class: "move-item", "data-testid": `move-${key}`, onclick: () => this.choose(choice) }, label),
      ),
    );
    this.el.hidden = false;
    anchor?.setAttribute("aria-expanded", "true");
    this.place(anchor);
    document.addEventListener("pointerdown", this.onOutside, true);
    document.addEventListener("scroll", this.onScroll, true);
    this.items()[0].focus();
  }

  /** Close; `returnFocus`: back to the button that opened it (or its card, if that was rebuilt). */
  close(returnFocus = true) {
    if (!this.open) return;
    this.el.hidden = true;
    document.removeEventListener("pointerdown", this.onOutside, true);
    document.removeEventListener("scroll", this.onScroll, true);
    const anchor = this.anchor;
    anchor?.setAttribute("aria-expanded", "false");
    this.anchor = null;
    if (!returnFocus) return;
    if (anchor && anchor.isConnected) anchor.focus();
    else this.board.focusCard(this.storyId);
  }

  items() {
    return [...this.el.querySelectorAll('[role="menuitem"]')];
  }

  /** Below the button, right edges aligned, kept inside the window (above it when there is no room below). */
  place(anchor) {
    const box = anchor ? anchor.getBoundingClientRect() : { top: innerHeight / 2, bottom: innerHeight / 2, right: innerWidth / 2 };
    const { width, height } = this.el.getBoundingClientRect();
    const left = Math.max(MARGIN, Math.min(box.right - width, innerWidth - width - MARGIN));
    const below = box.bottom + 4;
    const top = below + height <= innerHeight - MARGIN ? below : Math.max(MARGIN, box.top - 4 - height);
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }

  choose(choice) {
    const id = this.storyId;
    this.close(false);
    const kb = this.keyboard;
    if (choice.delta !== undefined) kb.enqueue(() => kb.moveWithin(id, choice.delta));
    else {
      kb.enqueue(() => {
        const story = this.model.story(id);
        return story ? kb.moved(id, choice.state, this.board.placeFor(story, choice.state)) : kb.say("The story is gone.");
      });
    }
  }

  key(e) {
    // The board's shortcuts and the panel's Escape stay out of an open menu.
    e.stopPropagation();
    const items = this.items();
    const at = items.indexOf(document.activeElement);
    const go = (i) => {
      e.preventDefault();
      items[(i + items.length) % items.length].focus();
    };
    switch (e.key) {
      case "ArrowDown":
        go(at + 1);
        break;
      case "ArrowUp":
        go(at - 1);
        break;
      case "Home":
        go(0);
        break;
      case "End":
        go(items.length - 1);
        break;
      case "Escape":
        e.preventDefault();
        this.close(true);
        break;
      case "Tab":
        e.preventDefault();
        this.close(true);
        break;
      default:
        break;
    }
  }
}

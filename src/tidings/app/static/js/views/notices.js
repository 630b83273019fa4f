// Calm, visible messages at the bottom of the page: one per key, replaced in place,
// errors kept until dismissed, the rest fading after a few seconds.

import { h } from "../dom.js";

export class Notices {
  constructor(root) {
    this.el = h("div", { class: "notices", "aria-live": "polite", "data-testid": "notices" });
    root.append(this.el);
    this.byKey = new Map();
  }

  /** kind: "info" | "warn" | "error"; sticky notices stay until cleared or dismissed. */
  show(key, text, { kind = "info", sticky = kind !== "info" } = {}) {
    this.clear(key);
    const close = h("button", { class: "notice-close", "aria-label": "Dismiss", onclick: () => this.clear(key) }, "×");
    const el = h("div", { class: `notice notice-${kind}`, "data-testid": `notice-${key}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, text), close);
    this.el.append(el);
    const timer = sticky ? null : setTimeout(() => this.clear(key), 4000);
    this.byKey.set(key, { el, timer });
  }

  clear(key) {
    const entry = this.byKey.get(key);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.el.remove();
    this.byKey.delete(key);
  }
}

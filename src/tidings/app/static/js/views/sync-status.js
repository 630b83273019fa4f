// The sync indicator: what the sync controller last said (its `status` actions, relayed
// by tidings-client.js), the version shown, and how long since the board last heard
// from the app. It never infers the status from anything else, with one exception:
// while push is being (re)connected, on page load or when the kill switch lets it back,
// the controller says "push unavailable" until the connection is up (usually well under
// a second); the indicator says "Connecting…" then, and only says "unavailable" if push
// is still not up CONNECT_GRACE_MS later. data-status keeps the controller's word.

import { h, ago } from "../dom.js";

export const STATUS_TEXT = {
  starting: "Connecting…",
  live: "Live (push)",
  polling_push_off: "Polling — push off",
  polling_push_unavailable: "Polling — push unavailable",
  offline: "Offline, retrying",
};

/** How long push may take to come up before the indicator calls it unavailable. */
export const CONNECT_GRACE_MS = 3000;

/** States after which "push unavailable" means "not connected yet", not a verdict. */
const CONNECTING_AFTER = ["starting", "polling_push_off"];

const STATUS_HELP = {
  starting: "Connecting to the app and its push server.",
  live: "Changes arrive as soon as they are made.",
  polling_push_off: "Push is switched off for this project; the board polls the app.",
  polling_push_unavailable: "The push server cannot be reached; the board polls the app more often meanwhile.",
  offline: "The app does not answer; the board keeps retrying.",
};

export class SyncStatus {
  constructor(now = () => Date.now() / 1000) {
    this.now = now;
    this.lastSync = null;
    this.dot = h("span", { class: "sync-dot", "aria-hidden": "true" });
    // The live region is the label alone: a screen reader hears state changes, not the
    // version and the "synced N s ago" ticker, which change all the time.
    this.label = h("span", { class: "sync-label", "data-testid": "sync-label", role: "status", "aria-live": "polite" }, STATUS_TEXT.starting);
    this.version = h("span", { class: "sync-version", "data-testid": "project-version" }, "–");
    this.age = h("span", { class: "sync-age", "data-testid": "sync-age" }, "");
    this.el = h(
      "div",
      { class: "sync-status", "data-testid": "sync-status", "data-status": "starting" },
      this.dot,
      this.label,
      h("span", { class: "sync-sep" }, "·"),
      h("span", { class: "sync-version-wrap" }, "v", this.version),
      h("span", { class: "sync-sep" }, "·"),
      this.age,
    );
    this.setStatus("starting");
    this.timer = setInterval(() => this.renderAge(), 1000);
  }

  setStatus(status) {
    const before = this.el.dataset.shown;
    this.el.dataset.status = status;
    clearTimeout(this.grace);
    if (status === "polling_push_unavailable" && (CONNECTING_AFTER.includes(before) || before === "connecting")) {
      if (before !== "connecting") this.show("connecting", STATUS_TEXT.starting, STATUS_HELP.starting);
      this.grace = setTimeout(() => {
        if (this.el.dataset.status === status) this.show(status, STATUS_TEXT[status], STATUS_HELP[status]);
      }, CONNECT_GRACE_MS);
      return;
    }
    this.show(status, STATUS_TEXT[status] || status, STATUS_HELP[status] || "");
  }

  /** What the indicator says (data-shown, the label, the tooltip). */
  show(shown, text, help) {
    this.el.dataset.shown = shown;
    this.label.textContent = text;
    this.el.title = help;
  }

  setTransport(transport) {
    this.el.dataset.transport = transport;
  }

  setVersion(version) {
    this.version.textContent = String(version);
    this.el.dataset.version = String(version);
  }

  /** The app answered with the project's state (a poll, a snapshot, a command). */
  synced() {
    this.lastSync = this.now();
    this.renderAge();
  }

  renderAge() {
    this.age.textContent = this.lastSync === null ? "not synced yet" : `synced ${ago(this.now() - this.lastSync)}`;
  }

  destroy() {
    clearInterval(this.timer);
    clearTimeout(this.grace);
    this.el.remove();
  }
}

// The sync indicator: what the sync controller last said (its `status` actions, relayed
// by tidings-client.js), the version shown, and how long since the board last heard
// from the app. It never infers the status from anything else.

import { h, ago } from "../dom.js";

export const STATUS_TEXT = {
  starting: "Connecting…",
  live: "Live (push)",
  polling_push_off: "Polling — push off",
  polling_push_unavailable: "Polling — push unavailable",
  offline: "Offline, retrying",
};

const STATUS_HELP = {
  starting: "Loading the client configuration.",
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
    this.label = h("span", { class: "sync-label", "data-testid": "sync-label" }, STATUS_TEXT.starting);
    this.version = h("span", { class: "sync-version", "data-testid": "project-version" }, "–");
    this.age = h("span", { class: "sync-age", "data-testid": "sync-age" }, "");
    this.el = h(
      "div",
      { class: "sync-status", "data-testid": "sync-status", "data-status": "starting", role: "status", "aria-live": "polite" },
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
    this.el.dataset.status = status;
    this.label.textContent = STATUS_TEXT[status] || status;
    this.el.title = STATUS_HELP[status] || "";
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
    this.el.remove();
  }
}

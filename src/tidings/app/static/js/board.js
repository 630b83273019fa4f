// The tracker page: sign-in, project picker and a live board for one project at a time.
//
// Others' changes come from tidings-client.js (its `apply` and `reload` events); our own
// commands' events are applied the moment the app returns them, so the board never waits
// for a poke. The sync indicator shows only what the client's `status` events say.

import { TidingsClient } from "./tidings-client.js";
import { api, ApiError, NetworkError, idempotencyKey } from "./api.js";
import { BoardModel } from "./board-model.js";
import { BoardView } from "./views/board-view.js";
import { StoryDetail } from "./views/story-detail.js";
import { SyncStatus } from "./views/sync-status.js";
import { Notices } from "./views/notices.js";
import { signInView } from "./views/sign-in.js";
import { h, replace } from "./dom.js";

const TRANSPORTS = ["ws", "sse", "socketio"];
/** A command that meets a network error is retried (same Idempotency-Key) this many times, */
const COMMAND_ATTEMPTS = 8;
/** with delays doubling from 1 s up to this cap: about a minute in all before giving up. */
const RETRY_CAP_MS = 15000;
/** Answers that mean "the app is not there right now", retried like network errors. */
const RETRYABLE = [502, 503, 504];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The push transport asked for with ?transport=; the client library's default otherwise. */
function chosenTransport() {
  const asked = new URLSearchParams(location.search).get("transport");
  return TRANSPORTS.includes(asked) ? asked : "ws";
}

/** The transport the client library will use: "socketio" needs socket.io-client's `io` loaded. */
function effectiveTransport(transport) {
  return transport === "socketio" && typeof globalThis.io !== "function" ? "ws" : transport;
}

function projectFromHash() {
  const match = /^#\/projects\/(\d+)/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function isSyncRequest(url) {
  return /\/api\/projects\/\d+(\/events\?|$)|\/api\/poll\?/.test(url);
}

/** Story ids an event touches (for highlighting others' changes). */
function storyIdOf(event) {
  const d = event.data || {};
  return d.story_id ?? (d.story && d.story.id) ?? null;
}

/** One open project: its model, views and client. Closed when another project is opened. */
class ProjectSession {
  constructor(page, me, project) {
    this.page = page;
    this.me = me;
    this.project = project;
    this.id = project.id;
    this.writable = project.role !== "viewer";
    this.closed = false;
    this.client = null;
  }

  async open(container) {
    const snapshot = await api.snapshot(this.id);
    if (this.closed) return;
    this.model = new BoardModel(snapshot);
    this.status = new SyncStatus();
    this.page.syncSlot.replaceChildren(this.status.el);
    this.status.setVersion(snapshot.version);
    this.status.synced();
    const actions = {
      open: (id) => this.openStory(id),
      move: (id, state, beforeId) => this.move(id, state, beforeId),
      create: (section, title, type) => this.create(section, title, type),
    };
    this.root = h("div", { class: "workspace", "data-testid": "workspace", "data-role": this.project.role });
    replace(container, this.root);
    this.board = new BoardView(this.root, { model: this.model, writable: this.writable, actions });
    this.detail = new StoryDetail(this.root, {
      model: this.model,
      writable: this.writable,
      actions: {
        save: (id, changes, version) => this.save(id, changes, version),
        remove: (id) => this.remove(id),
        comment: (id, text) => this.run({ type: "add_comment", story_id: id, text }),
        addTask: (id, text) => this.run({ type: "add_task", story_id: id, text }),
        toggleTask: (id, taskId, done) => this.run({ type: "complete_task", story_id: id, task_id: taskId, done }),
        close: () => this.closeStory(),
      },
    });
    this.board.render();
    this.startClient(snapshot);
  }

  startClient(snapshot) {
    const transport = chosenTransport();
    this.status.setTransport(effectiveTransport(transport));
    const observed = async (input, init) => {
      const response = await fetch(input, init);
      const url = typeof input === "string" ? input : input.url;
      if ((response.ok || response.status === 304) && isSyncRequest(url) && !this.closed) this.status.synced();
      return response;
    };
    this.client = new TidingsClient({
      projects: [this.id],
      snapshots: { [this.id]: structuredClone(snapshot) },
      transport,
      fetch: observed,
    });
    this.client.addEventListener("status", (e) => {
      if (!this.closed) this.status.setStatus(e.detail.status);
    });
    this.client.addEventListener("apply", (e) => {
      if (this.closed || e.detail.project !== this.id) return;
      const flash = new Set();
      for (const event of e.detail.events) {
        const id = storyIdOf(event);
        if (id !== null && event.actor !== this.me.id && event.version > this.model.version) flash.add(id);
      }
      if (this.model.applyRemote(e.detail.events, e.detail.snapshot)) this.refresh(flash);
    });
    this.client.addEventListener("reload", (e) => {
      if (this.closed || e.detail.project !== this.id) return;
      this.model.replace(e.detail.snapshot, true);
      this.refresh();
    });
    this.client.start().catch(() => {
      // start() reads /api/client-config; without it the client polls only and says so.
    });
  }

  refresh(flash = new Set()) {
    this.board.render(flash);
    this.detail.update();
    this.status.setVersion(this.model.version);
  }

  close() {
    this.closed = true;
    if (this.client) this.client.stop();
    if (this.status) this.status.destroy();
  }

  openStory(id) {
    this.detail.open(id);
    this.board.select(id);
    this.root.classList.add("with-detail");
  }

  closeStory() {
    this.detail.close();
    this.board.select(null);
    this.root.classList.remove("with-detail");
  }

  /** Our own command's event: shown now; a gap (someone else's change first) means catching up. */
  absorb(event) {
    const outcome = this.model.applyLocal(event);
    if (outcome === "applied") this.refresh();
    else if (outcome === "gap") this.catchUp();
  }

  async catchUp() {
    try {
      const snapshot = await api.snapshot(this.id);
      if (!this.closed && this.model.replace(snapshot)) this.refresh();
    } catch (err) {
      // The client library brings the missing events with its next poll or poke.
    }
  }

  /** Send one command; retry network failures with the same Idempotency-Key. */
  async run(command, { expectedVersion } = {}) {
    const key = idempotencyKey();
    for (let attempt = 1; ; attempt += 1) {
      if (this.closed) return null;
      try {
        const result = await api.command(this.id, command, { expectedVersion, key });
        this.page.notices.clear("offline");
        if (!this.closed) {
          this.absorb(result.event);
          this.status.synced();
        }
        return result;
      } catch (err) {
        const transient = err instanceof NetworkError || (err instanceof ApiError && RETRYABLE.includes(err.status));
        if (transient && attempt < COMMAND_ATTEMPTS) {
          this.page.notices.show("offline", "Offline, retrying…", { kind: "warn" });
          await sleep(Math.min(RETRY_CAP_MS, 1000 * 2 ** (attempt - 1)));
          continue;
        }
        this.page.notices.clear("offline");
        await this.failed(err);
        return null;
      }
    }
  }

  async failed(err) {
    const n = this.page.notices;
    if (err instanceof NetworkError || (err instanceof ApiError && RETRYABLE.includes(err.status))) {
      n.show("error", "Not saved: the app cannot be reached. Try again when you are back online.", { kind: "error" });
    } else if (err.status === 409) {
      n.show("conflict", "Someone else changed this first. The board now shows the latest version; review and try again.", { kind: "warn" });
      await this.reload();
    } else if (err.status === 401) {
      this.page.signedOut("Your session has ended. Please sign in again.");
    } else if (err.status === 403) {
      n.show("error", "You cannot change this project.", { kind: "error" });
    } else if (err.status === 404) {
      n.show("error", "That no longer exists; the board is reloaded.", { kind: "warn" });
      await this.reload();
    } else if (err.status === 422) {
      n.show("error", `Not saved: ${err.message}`, { kind: "error" });
    } else {
      n.show("error", `Something went wrong (HTTP ${err.status}). Try again.`, { kind: "error" });
    }
  }

  async reload() {
    try {
      const snapshot = await api.snapshot(this.id);
      if (this.closed) return;
      this.model.replace(snapshot, true);
      this.refresh();
      this.detail.rebase();
    } catch (err) {
      // Stays as it is; the client library reloads or catches up on its own.
    }
  }

  create(section, title, storyType) {
    const first = this.model.storiesIn(section)[0];
    return this.run({
      type: "create_story",
      title,
      story_type: storyType,
      state: section.drop,
      before_id: first ? first.id : null,
    });
  }

  move(id, state, beforeId) {
    const command = { type: "move_story", story_id: id, before_id: beforeId };
    if (state !== undefined) command.state = state;
    return this.run(command);
  }

  save(id, changes, version) {
    return this.run({ type: "update_story", story_id: id, ...changes }, { expectedVersion: version });
  }

  async remove(id) {
    const result = await this.run({ type: "delete_story", story_id: id });
    if (result) this.closeStory();
  }
}

class BoardPage {
  constructor() {
    this.main = document.getElementById("main");
    this.nav = document.getElementById("nav");
    this.syncSlot = document.getElementById("sync-slot");
    this.userSlot = document.getElementById("user-slot");
    this.notices = new Notices(document.body);
    this.session = null;
    this.me = null;
    window.addEventListener("hashchange", () => {
      const id = projectFromHash();
      if (this.me && id !== null && (!this.session || this.session.id !== id)) this.openProject(id);
    });
  }

  async boot() {
    try {
      this.me = await api.me();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.signedOut();
      else this.unreachable();
      return;
    }
    this.signedIn();
  }

  unreachable() {
    replace(
      this.main,
      h("div", { class: "empty-page" }, h("h1", {}, "The app cannot be reached"), h("p", {}, "Retrying in a few seconds…")),
    );
    setTimeout(() => this.boot(), 3000);
  }

  signedOut(message = null) {
    if (this.session) this.session.close();
    this.session = null;
    this.me = null;
    this.syncSlot.replaceChildren();
    this.userSlot.replaceChildren();
    this.nav.replaceChildren();
    replace(this.main, signInView(() => this.boot()));
    if (message) this.notices.show("session", message, { kind: "warn" });
  }

  signedIn() {
    const { user, projects } = this.me;
    this.notices.clear("session");
    replace(
      this.userSlot,
      user.is_admin ? h("a", { class: "topbar-link", href: "/admin.html", "data-testid": "admin-link" }, "Admin") : null,
      h("span", { class: "user-name", "data-testid": "user-name" }, user.name),
      h("button", { class: "btn-topbar", "data-testid": "sign-out", onclick: () => this.signOut() }, "Sign out"),
    );
    if (projects.length === 0) {
      replace(this.main, h("div", { class: "empty-page" }, h("h1", {}, "No projects yet"), h("p", {}, "Ask a project owner to add you.")));
      return;
    }
    const wanted = projectFromHash();
    const project = projects.find((p) => p.id === wanted) || projects[0];
    this.openProject(project.id);
  }

  renderPicker(current) {
    const select = h(
      "select",
      { class: "project-picker", "aria-label": "Project", "data-testid": "project-picker", onchange: (e) => (location.hash = `#/projects/${e.target.value}`) },
      this.me.projects.map((p) => h("option", { value: String(p.id), selected: p.id === current.id }, p.name)),
    );
    replace(
      this.nav,
      select,
      current.role === "viewer" ? h("span", { class: "badge badge-topbar", "data-testid": "view-only" }, "View only") : null,
    );
  }

  async openProject(id) {
    const project = this.me.projects.find((p) => p.id === id);
    if (!project) {
      this.notices.show("error", `Project ${id} is not one of yours.`, { kind: "error" });
      return;
    }
    if (this.session) this.session.close();
    if (location.hash !== `#/projects/${id}`) history.replaceState(null, "", `${location.pathname}${location.search}#/projects/${id}`);
    this.renderPicker(project);
    document.title = `${project.name} — tidings`;
    const session = new ProjectSession(this, this.me.user, project);
    this.session = session;
    replace(this.main, h("div", { class: "loading" }, "Loading the board…"));
    try {
      await session.open(this.main);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.signedOut("Your session has ended. Please sign in again.");
      else replace(this.main, h("div", { class: "empty-page" }, h("h1", {}, "The board could not be loaded"), h("p", {}, err.message), h("button", { class: "btn btn-primary", onclick: () => this.openProject(id) }, "Try again")));
    }
  }

  async signOut() {
    try {
      await api.signOut();
    } catch (err) {
      // Signed out locally either way; the cookie expires on its own.
    }
    this.signedOut();
  }
}

new BoardPage().boot();

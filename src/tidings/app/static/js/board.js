// The tracker page: sign-in, project picker and a live board for one project at a time.
//
// Others' changes come from the tidings-client package (tidings-client/, its `apply` and
// `reload` events, applied to the snapshot with project.js's rules); our own
// commands' events are applied the moment the app returns them, so the board never waits
// for a poke. The sync indicator shows only what the client's `status` events say.

import { TidingsClient } from "./tidings-client/tidings-client.js";
import { applyInPlace } from "./project.js";
import { answer, api, ApiError, NetworkError, idempotencyKey, takeEarly } from "./api.js";
import { BoardModel } from "./board-model.js";
import { BoardView } from "./views/board-view.js";
import { StoryDetail } from "./views/story-detail.js";
import { BoardKeyboard } from "./keyboard.js";
import { ActivityPanel, storyHistory } from "./views/history.js";
import { FilterBar } from "./views/filters.js";
import { IterationView } from "./views/iterations.js";
import { filterFromHash, hashFor, matcher } from "./filters.js";
import { SyncStatus } from "./views/sync-status.js";
import { Notices } from "./views/notices.js";
import { signInView } from "./views/sign-in.js";
import { NewProjectDialog, ProjectSettings, projectButtons } from "./views/project-settings.js";
import { h, replace } from "./dom.js";
import { humanError, refusal } from "./messages.js";

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

/**
 * The transport the page asks the client library for: "socketio" only when socket.io-client's
 * bundle put `io` on the page (the board has no import map to let the library import it).
 */
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

  /** `early`: the snapshot already asked for (alongside /api/me), or null. */
  async open(container, early = null) {
    let snapshot = null;
    if (early) snapshot = await early.catch(() => null);
    if (!snapshot) snapshot = await api.snapshot(this.id);
    if (this.closed) return;
    // The model owns the parsed snapshot (no copy); the client library's copy is taken
    // after the first paint, from the model, so a large board shows before it is made.
    this.model = new BoardModel(snapshot, { owned: true });
    this.status = new SyncStatus();
    this.page.syncSlot.replaceChildren(this.status.el);
    this.status.setVersion(snapshot.version);
    this.status.synced();
    const actions = {
      open: (id) => this.openStory(id),
      move: (id, state, beforeId) => this.move(id, state, beforeId),
      create: (section, title, type) => this.create(section, title, type),
      menu: (id, anchor) => this.keyboard.openMenu(id, anchor),
    };
    this.heading = h("h1", { class: "sr-only" }, `${this.project.name}: board`);
    this.root = h("div", { class: "workspace", "data-testid": "workspace", "data-role": this.project.role }, this.heading);
    replace(container, this.root);
    this.filter = filterFromHash(location.hash);
    this.filters = new FilterBar({ model: this.model, filter: this.filter, onChange: (f) => this.setFilter(f, true) });
    this.activityButton = h(
      "button",
      { type: "button", class: "btn btn-ghost", "aria-expanded": "false", "aria-controls": "activity-panel", "data-testid": "activity-toggle", onclick: () => this.toggleActivity() },
      "Activity",
    );
    const toolbar = h("div", { class: "toolbar" }, this.filters.el, h("span", { class: "spacer" }), this.activityButton);
    const area = h("div", { class: "board-area" }, toolbar);
    this.root.append(area);
    this.board = new BoardView(area, { model: this.model, writable: this.writable, actions });
    this.board.filter = matcher(this.filter);
    this.iterations = new IterationView(this.model);
    this.iterations.attach(this.board);
    this.detail = new StoryDetail(this.root, {
      model: this.model,
      writable: this.writable,
      who: () => ({ userId: this.me.id, role: this.model.member(this.me.id)?.role ?? null }),
      history: (storyId) => storyHistory(this.id, this.model, storyId),
      actions: {
        editComment: (id, commentId, text) => this.attempt({ type: "edit_comment", story_id: id, comment_id: commentId, text }),
        deleteComment: (id, commentId) => this.attempt({ type: "delete_comment", story_id: id, comment_id: commentId }),
        editTask: (id, taskId, text) => this.attempt({ type: "edit_task", story_id: id, task_id: taskId, text }),
        moveTask: (id, taskId, position) => this.attempt({ type: "reorder_task", story_id: id, task_id: taskId, position }),
        deleteTask: (id, taskId) => this.attempt({ type: "delete_task", story_id: id, task_id: taskId }),
        save: (id, changes, version) => this.save(id, changes, version),
        remove: (id) => this.remove(id),
        comment: (id, text) => this.run({ type: "add_comment", story_id: id, text }),
        addTask: (id, text) => this.run({ type: "add_task", story_id: id, text }),
        toggleTask: (id, taskId, done) => this.run({ type: "complete_task", story_id: id, task_id: taskId, done }),
        close: () => this.closeStory(),
      },
    });
    this.keyboard = new BoardKeyboard(this.root, {
      board: this.board,
      model: this.model,
      writable: this.writable,
      openId: () => this.detail.openId,
      actions,
    });
    toolbar.append(this.keyboard.helpButton);
    this.settings = new ProjectSettings({
      model: this.model,
      me: this.me,
      actions: {
        rename: (name) => this.attempt({ type: "rename_project", name }),
        setRole: (userId, role) => this.attempt({ type: "set_role", user_id: userId, role }),
        addMember: (email, role) => this.attempt({ type: "add_member", email, role }),
        removeMember: (userId) => this.attempt({ type: "remove_member", user_id: userId }),
      },
    });
    this.activity = new ActivityPanel(this.root, { projectId: this.id, model: this.model, onClose: () => this.toggleActivity(false) });
    this.board.render();
    this.filters.showCount(this.board.matched, this.board.all);
    performance.mark("tidings:board-first-render", { detail: { stories: snapshot.stories.length } });
    // After the first frame is drawn: the client library's copy of the snapshot (a
    // structured clone, ~80 ms at 10,000 stories) and the label choices. Two frames, not
    // one: work queued after the first frame's callbacks still delays that frame's paint.
    requestAnimationFrame(() =>
      requestAnimationFrame(() =>
        setTimeout(() => {
          if (this.closed) return;
          this.filters.labelsLater();
          this.startClient(this.model.state);
        }, 0),
      ),
    );
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
      applyEvent: applyInPlace,
      transport: effectiveTransport(transport),
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
      // The user's own membership changed here: what /api/me says of all their projects may have too.
      if (e.detail.events.some((ev) => (ev.type === "member_added" || ev.type === "member_removed") && ev.data.user_id === this.me.id)) {
        this.page.refreshProjects();
      }
      const started = performance.now();
      this.heard(e.detail.events);
      if (this.model.applyRemote(e.detail.events, e.detail.snapshot)) {
        this.refresh(flash);
        // Read by bench/board.py: applying others' events and patching the board, per batch.
        performance.measure("tidings:remote-apply", { start: started, detail: { events: e.detail.events.length } });
      }
    });
    this.client.addEventListener("reload", (e) => {
      if (this.closed || e.detail.project !== this.id) return;
      this.model.replace(e.detail.snapshot, true);
      this.refresh();
      this.activity.refresh();
      if (this.detail.historyList) this.detail.historyList.refresh();
    });
    this.client.start().catch(() => {
      // start() reads /api/client-config; without it the client polls only and says so.
    });
  }

  refresh(flash = new Set()) {
    this.board.render(flash);
    this.detail.update();
    this.status.setVersion(this.model.version);
    this.settings.update();
    this.page.projectChanged(this);
    this.filters.refreshChoices();
    this.filters.showCount(this.board.matched, this.board.all);
  }

  /** Events that reached the board (anyone's): into the open feed and story history. */
  heard(events) {
    this.activity.receive(events);
    if (this.detail.historyList) this.detail.historyList.receive(events);
  }

  /** Show the stories `filter` accepts; `record`: keep it in the address (no new history entry). */
  setFilter(filter, record) {
    this.filter = filter;
    this.board.setFilter(matcher(filter));
    this.filters.showCount(this.board.matched, this.board.all);
    if (record) history.replaceState(null, "", `${location.pathname}${location.search}${hashFor(this.id, filter)}`);
  }

  /** The address changed by hand or by Back: take its filter. */
  followHash() {
    const filter = filterFromHash(location.hash);
    this.filters.set(filter);
    this.setFilter(filter, false);
  }

  toggleActivity(open = !this.activity.open) {
    if (open) this.activity.show();
    else this.activity.hide();
    this.root.classList.toggle("with-activity", open);
    this.activityButton.setAttribute("aria-expanded", String(open));
    if (!open) this.activityButton.focus();
  }

  close() {
    this.closed = true;
    if (this.client) this.client.stop();
    // Their relative times tick on a timer: stopped with the board.
    if (this.activity) this.activity.hide();
    if (this.detail) this.detail.dropHistory();
    if (this.status) this.status.destroy();
    if (this.keyboard) this.keyboard.destroy();
    if (this.settings) this.settings.destroy();
  }

  /** Whether the open story's unsaved edits may be dropped (none, or the user agrees). */
  mayLeave() {
    return !this.detail || this.detail.el.hidden || this.detail.confirmDiscard();
  }

  hasUnsavedEdits() {
    return (Boolean(this.detail) && this.detail.isDirty()) || (Boolean(this.settings) && this.settings.isDirty());
  }

  openStory(id) {
    if (this.detail.openId === id) return;
    if (!this.mayLeave()) return;
    this.detail.open(id);
    this.board.select(id);
    this.root.classList.add("with-detail");
    // Into the panel, so the keyboard and screen reader are where the story is.
    this.detail.focus();
  }

  closeStory({ discard = false } = {}) {
    if (!discard && !this.mayLeave()) return;
    const id = this.detail.openId;
    const returnFocus = this.detail.el.contains(document.activeElement) || document.activeElement === document.body;
    this.detail.close();
    this.board.select(null);
    this.root.classList.remove("with-detail");
    // Back to the story's card, where the user came from.
    if (returnFocus && id !== null) this.board.focusCard(id);
  }

  /** Our own command's event: shown now; a gap (someone else's change first) means catching up. */
  absorb(event) {
    // Heard before it is applied: a deleted story's title is still there to name it.
    this.heard([event]);
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

  /** Send one command and report what went wrong; null when it was not applied. */
  async run(command, options = {}) {
    try {
      return await this.send(command, options);
    } catch (err) {
      await this.failed(err);
      return null;
    }
  }

  /**
   * Send one command for an inline editor (a comment, a task, the project's settings):
   * {ok}, or {error: words to show beside it}; null words when a notice already said why.
   */
  async attempt(command) {
    try {
      return { ok: (await this.send(command)) !== null };
    } catch (err) {
      if (err instanceof ApiError && (err.status === 422 || err.status === 413)) return { error: humanError(err) };
      if (err instanceof ApiError && err.status === 403) return { error: refusal(err) };
      if (err instanceof ApiError && err.status === 404) {
        // Gone meanwhile (a comment, a task), or no such user (add_member): say it there,
        // and bring the board up to date in case it was a deletion.
        this.reload();
        return { error: refusal(err) };
      }
      await this.failed(err);
      return { error: null };
    }
  }

  /** Send one command; retry network failures with the same Idempotency-Key; throw the final refusal. */
  async send(command, { expectedVersion } = {}) {
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
        throw err;
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
    } else {
      n.show("error", `Not saved: ${humanError(err)}`, { kind: "error" });
    }
  }

  async reload() {
    try {
      const snapshot = await api.snapshot(this.id);
      if (this.closed) return;
      this.model.replace(snapshot, true);
      this.refresh();
    } catch (err) {
      // Stays as it is; the client library reloads or catches up on its own.
    }
  }

  async create(section, title, storyType) {
    const first = this.model.storiesIn(section)[0];
    const result = await this.run({
      type: "create_story",
      title,
      story_type: storyType,
      state: section.drop,
      before_id: first ? first.id : null,
    });
    // Focus on the new card, unless the user has moved on to something else meanwhile.
    const idle = document.activeElement === document.body || Boolean(document.activeElement?.closest("form.create-form"));
    if (result && !this.closed && idle) this.board.focusCard(result.event.data.story.id);
    return result;
  }

  move(id, state, beforeId) {
    const command = { type: "move_story", story_id: id, before_id: beforeId };
    if (state !== undefined) command.state = state;
    return this.run(command);
  }

  /**
   * Save a story's changed fields against the version the form shows: {ok}, {conflict}
   * (the board now holds the latest version; the panel merges or asks) or {error: text}.
   */
  async save(id, changes, version) {
    try {
      const result = await this.send({ type: "update_story", story_id: id, ...changes }, { expectedVersion: version });
      return { ok: result !== null };
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        await this.reload();
        return { conflict: true };
      }
      if (err instanceof ApiError && (err.status === 422 || err.status === 413)) return { error: humanError(err) };
      await this.failed(err);
      return { error: null };
    }
  }

  async remove(id) {
    const result = await this.run({ type: "delete_story", story_id: id });
    if (result) this.closeStory({ discard: true });
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
    this.refreshTimer = null;
    this.pickerKey = null;
    this.newProject = null;
    // A hidden tab asks nothing; when it is looked at again, it asks at once.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.me) this.refreshProjects();
    });
    window.addEventListener("hashchange", () => {
      const id = projectFromHash();
      if (this.me && id !== null && (!this.session || this.session.id !== id)) this.openProject(id);
      else if (this.session && this.session.id === id && this.session.filters) this.session.followHash();
    });
    // A reload or a closed tab would drop unsaved story edits: let the browser ask first.
    window.addEventListener("beforeunload", (e) => {
      if (this.session && this.session.hasUnsavedEdits()) {
        e.preventDefault();
        e.returnValue = "";
      }
    });
  }

  async boot() {
    // The project the address names is asked for alongside /api/me: one round trip less
    // before the first screen. A refusal here is ignored; open() asks again and says why.
    // On the first boot index.html's inline script has asked for both while the modules loaded.
    const pre = takeEarly();
    const wanted = projectFromHash();
    const asked = pre && pre.snapshot && pre.project === wanted ? answer(pre.snapshot) : null;
    this.early = wanted === null ? null : { id: wanted, snapshot: asked || api.snapshot(wanted) };
    if (this.early) this.early.snapshot.catch(() => {});
    try {
      this.me = await (pre ? answer(pre.me) : api.me());
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
    clearTimeout(this.refreshTimer);
    this.pickerKey = null;
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
    this.scheduleRefresh();
    if (projects.length === 0) {
      this.pickerKey = null;
      replace(this.nav, projectButtons({ owner: false, newProject: () => this.openNewProject() }));
      replace(this.main, h("div", { class: "empty-page" }, h("h1", {}, "No projects yet"), h("p", {}, "Ask a project owner to add you.")));
      return;
    }
    const wanted = projectFromHash();
    this.openProject(wanted === null ? projects[0].id : wanted);
  }

  /** The project picker; `current` null when the address names no project of the user's. */
  renderPicker(current) {
    const select = h(
      "select",
      { class: "project-picker", "aria-label": "Project", "data-testid": "project-picker", onchange: (e) => (location.hash = `#/projects/${e.target.value}`) },
      current ? null : h("option", { value: "", selected: true, disabled: true }, "Choose a project"),
      this.me.projects.map((p) => h("option", { value: String(p.id), selected: current !== null && p.id === current.id }, p.name)),
    );
    this.pickerKey = JSON.stringify([current && current.id, current && current.role, this.me.projects.map((p) => [p.id, p.name, p.role])]);
    replace(
      this.nav,
      select,
      current && current.role === "viewer" ? h("span", { class: "badge badge-topbar", "data-testid": "view-only" }, "View only") : null,
      projectButtons({
        owner: Boolean(current) && current.role === "owner",
        openSettings: () => this.session?.settings?.open(),
        newProject: () => this.openNewProject(),
      }),
    );
  }

  /** The picker again, only if what it shows changed (a select being used is left alone otherwise). */
  updatePicker(current) {
    const key = JSON.stringify([current && current.id, current && current.role, this.me.projects.map((p) => [p.id, p.name, p.role])]);
    if (key !== this.pickerKey) this.renderPicker(current);
  }

  /** The open project's name or the user's role in it changed (an event): the picker, title and heading follow. */
  projectChanged(session) {
    if (session !== this.session || !this.me) return;
    const entry = this.me.projects.find((p) => p.id === session.id);
    if (!entry) return;
    const name = session.model.state.name;
    const role = session.model.member(this.me.user.id)?.role ?? entry.role;
    if (entry.name === name && entry.role === role) return;
    entry.name = name;
    entry.role = role;
    session.project = entry;
    document.title = `${name} — tidings`;
    session.heading.textContent = `${name}: board`;
    if (role !== "owner") session.settings.dismiss();
    this.updatePicker(entry);
    // Made a viewer, or a viewer no more: the board is built read-only or not, so it is
    // built again (after this event's dispatch), unless that would drop unsaved edits.
    if ((role === "viewer") === session.writable && !session.hasUnsavedEdits()) {
      setTimeout(() => {
        if (this.session === session && !session.closed) this.reopen(session);
      }, 0);
    }
  }

  reopen(session) {
    session.close();
    this.session = null;
    this.openProject(session.id);
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    // projects_refresh from /api/me (docs/PROTOCOL.md 1.8), kept within 1 s .. 1 h.
    const seconds = Math.min(3600, Math.max(1, Number(this.me && this.me.projects_refresh) || 30));
    this.refreshTimer = setTimeout(() => this.refreshProjects(), seconds * 1000);
  }

  /**
   * Ask /api/me for the user's projects: ones they were added to elsewhere reach the picker,
   * other projects' new names too. The open project's name and role come from its own
   * events, which are at least as fresh.
   */
  async refreshProjects() {
    clearTimeout(this.refreshTimer);
    if (!this.me || document.visibilityState === "hidden") return;
    let me;
    try {
      me = await api.me();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.signedOut("Your session has ended. Please sign in again.");
      else if (this.me) this.scheduleRefresh();
      return;
    }
    if (!this.me) return;
    const hadNone = this.me.projects.length === 0;
    this.me.projects = me.projects;
    this.me.projects_refresh = me.projects_refresh;
    this.scheduleRefresh();
    const s = this.session;
    if (hadNone && me.projects.length > 0 && !s) {
      this.signedIn();
      return;
    }
    if (!s || s.closed) {
      if (projectFromHash() !== null && me.projects.length > 0) this.updatePicker(null);
      return;
    }
    const entry = me.projects.find((p) => p.id === s.id);
    if (!entry) {
      this.notices.show("membership", `You are no longer a member of ${s.project.name}.`, { kind: "warn" });
      this.updatePicker(null);
      return;
    }
    this.notices.clear("membership");
    if (s.model) {
      entry.name = s.model.state.name;
      entry.role = s.model.member(this.me.user.id)?.role ?? entry.role;
    }
    s.project = entry;
    this.updatePicker(entry);
  }

  openNewProject() {
    if (!this.newProject) this.newProject = new NewProjectDialog({ create: (name) => this.createProject(name) });
    this.newProject.open();
  }

  /** Create a project (the user becomes its owner) and open it: {ok, id} or {error}. */
  async createProject(name) {
    let created;
    try {
      created = await api.createProject(name, idempotencyKey());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.signedOut("Your session has ended. Please sign in again.");
        return { error: null };
      }
      if (err instanceof NetworkError) return { error: "Not created: the app cannot be reached. Try again when you are back online." };
      return { error: humanError(err) };
    }
    const id = created.project;
    await this.refreshProjects();
    if (!this.me) return { error: null };
    if (!this.me.projects.some((p) => p.id === id)) this.me.projects.push({ id, name: created.event.data.name, role: "owner", version: created.version });
    location.hash = `#/projects/${id}`;
    return { ok: true, id };
  }

  async openProject(id) {
    if (this.session && !this.session.closed && !this.session.mayLeave()) {
      // Stay: put the address back to the project still shown.
      history.replaceState(null, "", `${location.pathname}${location.search}${hashFor(this.session.id, this.session.filter)}`);
      this.renderPicker(this.session.project);
      return;
    }
    const project = this.me.projects.find((p) => p.id === id);
    if (!project) {
      this.notFound(id);
      return;
    }
    if (this.session) this.session.close();
    // The address keeps a filter for this project (#/projects/7?q=login); another project starts unfiltered.
    if (projectFromHash() !== id || !location.hash.startsWith(`#/projects/${id}`)) history.replaceState(null, "", `${location.pathname}${location.search}#/projects/${id}`);
    this.renderPicker(project);
    document.title = `${project.name} — tidings`;
    const session = new ProjectSession(this, this.me.user, project);
    this.session = session;
    replace(this.main, h("div", { class: "loading" }, "Loading the board…"));
    const early = this.early && this.early.id === id ? this.early.snapshot : null;
    this.early = null;
    try {
      await session.open(this.main, early);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.signedOut("Your session has ended. Please sign in again.");
      else replace(this.main, h("div", { class: "empty-page" }, h("h1", {}, "The board could not be loaded"), h("p", {}, err.message), h("button", { class: "btn btn-primary", onclick: () => this.openProject(id) }, "Try again")));
    }
  }

  /** A project id that is not one of the user's: say so, instead of showing another board. */
  notFound(id) {
    if (this.session) this.session.close();
    this.session = null;
    this.syncSlot.replaceChildren();
    this.renderPicker(null);
    document.title = "Project not found — tidings";
    const first = this.me.projects[0];
    replace(
      this.main,
      h(
        "div",
        { class: "empty-page", "data-testid": "project-not-found" },
        h("h1", {}, "Project not found"),
        h("p", {}, `There is no project ${id}, or you are not a member of it.`),
        h("p", {}, h("a", { href: `#/projects/${first.id}`, "data-testid": "first-project" }, `Open ${first.name}`)),
      ),
    );
  }

  async signOut() {
    if (this.session && !this.session.mayLeave()) return;
    try {
      await api.signOut();
    } catch (err) {
      // Signed out locally either way; the cookie expires on its own.
    }
    this.signedOut();
  }
}

new BoardPage().boot();

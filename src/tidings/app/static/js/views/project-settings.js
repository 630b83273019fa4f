// A project's settings for its owners (rename; members added by email, their roles changed,
// removed) and the "new project" form, as modal dialogs. The members list follows the project
// live; what the owner is typing (a new name, an email) is kept while it does, and closing
// with it unsaved asks first. Members and viewers get no button to open it: decide.py
// refuses them anyway.

import { h, replace } from "../dom.js";
import { LIMITS } from "../messages.js";

const ROLES = ["owner", "member", "viewer"];
const capital = (s) => s[0].toUpperCase() + s.slice(1);

/** A modal <dialog> whose Escape and close button ask before dropping what `dirty()` says is unsaved. */
function dialog(testid, titleId, title, dirty, onClosed) {
  const el = h("dialog", { class: "settings-dialog", "aria-labelledby": titleId, "data-testid": testid });
  const close = () => {
    if (dirty() && !window.confirm("Discard what you typed here?")) return;
    el.close();
  };
  el.addEventListener("cancel", (e) => {
    // Escape: the same question as the close button.
    e.preventDefault();
    close();
  });
  el.addEventListener("close", () => onClosed());
  // Keys pressed in the dialog are the dialog's: not the board's shortcuts, nor the story
  // panel's Escape (the browser's own Escape handling, the cancel event, still happens).
  el.addEventListener("keydown", (e) => e.stopPropagation());
  const header = h(
    "header",
    { class: "settings-header" },
    h("h2", { id: titleId, class: "settings-title" }, title),
    h("span", { class: "spacer" }),
    h("button", { type: "button", class: "btn btn-ghost", "data-testid": `${testid}-close`, onclick: close }, "Close"),
  );
  return { el, header, close };
}

function errorLine(testid) {
  return h("p", { class: "field-error", role: "alert", hidden: true, "data-testid": testid });
}

function say(line, message) {
  line.hidden = !message;
  line.textContent = message || "";
}

export class ProjectSettings {
  /**
   * actions: {rename(name), setRole(userId, role), addMember(email, role), removeMember(userId)},
   * each answering {ok}|{error}. `me`: the signed-in user.
   */
  constructor({ model, me, actions }) {
    this.model = model;
    this.me = me;
    this.actions = actions;
    this.confirming = null;
    const d = dialog("project-settings", "project-settings-title", "Project settings", () => this.isDirty(), () => this.closed());
    this.dialog = d;
    this.el = d.el;

    this.nameInput = h("input", { name: "project-name", maxlength: LIMITS.projectName, "aria-label": "Project name", "data-testid": "settings-name" });
    this.nameBase = model.state.name;
    this.nameInput.value = this.nameBase;
    this.nameError = errorLine("settings-name-error");
    const renameForm = h(
      "form",
      { class: "inline-form" },
      this.nameInput,
      h("button", { type: "submit", class: "btn btn-primary", "data-testid": "settings-rename" }, "Rename"),
    );
    renameForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.rename();
    });

    this.members = h("ul", { class: "members", "data-testid": "members" });
    this.membersError = errorLine("members-error");
    this.emailInput = h("input", { type: "email", name: "member-email", maxlength: LIMITS.email, placeholder: "name@example.com", "aria-label": "Email of the person to add", "data-testid": "member-email" });
    this.newRole = h(
      "select",
      { name: "member-role", "aria-label": "Role of the person to add", "data-testid": "member-new-role" },
      ROLES.map((r) => h("option", { value: r, selected: r === "member" }, capital(r))),
    );
    this.addError = errorLine("member-add-error");
    const addForm = h(
      "form",
      { class: "inline-form" },
      this.emailInput,
      this.newRole,
      h("button", { type: "submit", class: "btn", "data-testid": "member-add" }, "Add"),
    );
    addForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.add();
    });

    replace(
      this.el,
      d.header,
      h("section", { class: "settings-section" }, h("h3", { class: "detail-h" }, "Name"), renameForm, this.nameError),
      h(
        "section",
        { class: "settings-section" },
        h("h3", { class: "detail-h" }, "Members"),
        this.membersError,
        this.members,
        h("h3", { class: "detail-h" }, "Add a member"),
        addForm,
        this.addError,
      ),
    );
    document.body.append(this.el);
  }

  get isOpen() {
    return this.el.open;
  }

  open() {
    this.nameBase = this.model.state.name;
    this.nameInput.value = this.nameBase;
    for (const line of [this.nameError, this.membersError, this.addError]) say(line, null);
    this.emailInput.value = "";
    this.confirming = null;
    this.renderMembers();
    this.el.showModal();
    this.nameInput.focus();
  }

  closed() {
    this.confirming = null;
    this.onClosed?.();
  }

  /** Close without asking (the owner's role is gone, or the project is closed). */
  dismiss() {
    if (this.el.open) this.el.close();
  }

  destroy() {
    this.dismiss();
    this.el.remove();
  }

  isDirty() {
    return this.el.open && (this.nameInput.value.trim() !== this.nameBase || this.emailInput.value.trim() !== "");
  }

  /** The project changed (anyone's change): follow it, keeping what is being typed. */
  update() {
    if (!this.el.open) return;
    const name = this.model.state.name;
    if (this.nameInput.value.trim() === this.nameBase) this.nameInput.value = name;
    this.nameBase = name;
    this.renderMembers();
  }

  renderMembers() {
    const focused = this.members.contains(document.activeElement) ? [document.activeElement.closest("[data-user-id]")?.dataset.userId, document.activeElement.dataset.testid] : null;
    replace(
      this.members,
      this.model.state.members.map((m) => this.member(m)),
    );
    if (focused) this.members.querySelector(`[data-user-id="${focused[0]}"] [data-testid="${focused[1]}"]`)?.focus();
  }

  member(m) {
    const you = m.user_id === this.me.id;
    const role = h(
      "select",
      { "aria-label": `Role of ${m.name}`, "data-testid": "member-role", onchange: (e) => this.setRole(m, e.target.value, e.target) },
      ROLES.map((r) => h("option", { value: r, selected: r === m.role }, capital(r))),
    );
    const actions =
      this.confirming === m.user_id
        ? h(
            "span",
            { class: "item-actions" },
            h("span", { class: "confirm-text" }, you ? "Leave this project?" : `Remove ${m.name}?`),
            h("button", { type: "button", class: "btn btn-danger btn-small", "data-testid": "member-remove-confirm", onclick: () => this.remove(m) }, "Remove"),
            h("button", { type: "button", class: "btn btn-ghost", onclick: () => this.setConfirming(null) }, "Keep"),
          )
        : h("button", { type: "button", class: "btn btn-ghost btn-danger-ghost", "aria-label": `Remove ${m.name}`, "data-testid": "member-remove", onclick: () => this.setConfirming(m.user_id) }, "Remove");
    return h(
      "li",
      { class: "member", "data-testid": "member", "data-user-id": String(m.user_id) },
      h("span", { class: "member-name", "data-testid": "member-name" }, m.name, you ? h("span", { class: "muted" }, " (you)") : null),
      role,
      actions,
    );
  }

  setConfirming(userId) {
    this.confirming = userId;
    this.renderMembers();
    const row = this.members.querySelector(`[data-user-id="${userId}"]`);
    row?.querySelector('[data-testid="member-remove-confirm"]')?.focus();
  }

  async rename() {
    const name = this.nameInput.value.trim();
    say(this.nameError, null);
    if (name === "") {
      say(this.nameError, "A project needs a name.");
      this.nameInput.focus();
      return;
    }
    if (name === this.model.state.name) {
      this.nameBase = name;
      return;
    }
    const outcome = await this.actions.rename(name);
    if (outcome.ok) {
      this.nameBase = this.model.state.name;
      this.nameInput.value = this.nameBase;
    } else {
      say(this.nameError, outcome.error);
    }
  }

  async setRole(m, role, select) {
    say(this.membersError, null);
    const outcome = await this.actions.setRole(m.user_id, role);
    if (!outcome.ok) {
      // Back to the role the member has.
      select.value = this.model.member(m.user_id)?.role || m.role;
      say(this.membersError, outcome.error);
    }
  }

  async add() {
    const email = this.emailInput.value.trim();
    say(this.addError, null);
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      say(this.addError, "Enter the email address the person signs in with.");
      this.emailInput.focus();
      return;
    }
    const outcome = await this.actions.addMember(email, this.newRole.value);
    if (outcome.ok) {
      this.emailInput.value = "";
      this.emailInput.focus();
    } else {
      say(this.addError, outcome.error);
      this.emailInput.focus();
    }
  }

  async remove(m) {
    this.confirming = null;
    say(this.membersError, null);
    const outcome = await this.actions.removeMember(m.user_id);
    if (!outcome.ok) say(this.membersError, outcome.error);
    if (this.el.open) this.renderMembers();
  }
}

/** The "new project" form: {create(name) -> {ok, id}|{error}}. */
export class NewProjectDialog {
  constructor({ create }) {
    this.create = create;
    const d = dialog("new-project", "new-project-title", "New project", () => this.input.value.trim() !== "", () => {});
    this.el = d.el;
    this.input = h("input", { name: "new-project-name", maxlength: LIMITS.projectName, "aria-label": "Project name", "data-testid": "new-project-name" });
    this.error = errorLine("new-project-error");
    this.submitButton = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "new-project-create" }, "Create");
    const form = h("form", { class: "inline-form" }, this.input, this.submitButton);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    replace(this.el, d.header, h("section", { class: "settings-section" }, form, this.error));
    document.body.append(this.el);
  }

  open() {
    this.input.value = "";
    say(this.error, null);
    this.el.showModal();
    this.input.focus();
  }

  async submit() {
    const name = this.input.value.trim();
    say(this.error, null);
    if (name === "") {
      say(this.error, "A project needs a name.");
      this.input.focus();
      return;
    }
    this.submitButton.disabled = true;
    try {
      const outcome = await this.create(name);
      if (outcome.ok) {
        this.input.value = "";
        this.el.close();
      } else {
        say(this.error, outcome.error || "Not created; try again.");
        this.input.focus();
      }
    } finally {
      this.submitButton.disabled = false;
    }
  }
}

/** The top bar's project buttons: settings for owners of the open project, a new project for anyone signed in. */
export function projectButtons({ owner, openSettings, newProject }) {
  return [
    owner ? h("button", { type: "button", class: "btn-topbar", "data-testid": "project-settings-open", onclick: openSettings }, "Settings") : null,
    h("button", { type: "button", class: "btn-topbar", "data-testid": "new-project-open", onclick: newProject }, "New project"),
  ];
}

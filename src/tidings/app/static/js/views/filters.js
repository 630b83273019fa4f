// The filter bar above the board: text, type, state, owner and label, combined; a count of
// what matches; "Clear all". It only reports the filter (`onChange`); the board applies it
// and the page keeps it in the address (filters.js says how).

import { h } from "../dom.js";
import { STATES, TYPES } from "../board-model.js";
import { NO_FILTER, TEXT_MAX, isActive, labelsIn } from "../filters.js";

const capital = (s) => s[0].toUpperCase() + s.slice(1);

export class FilterBar {
  constructor({ model, filter, onChange }) {
    this.model = model;
    this.onChange = onChange;
    this.filter = { ...filter };
    this.text = h("input", {
      type: "search",
      class: "filter-text",
      placeholder: "Search stories",
      "aria-label": "Search titles and descriptions",
      maxlength: TEXT_MAX,
      value: filter.q,
      "data-testid": "filter-text",
    });
    this.type = this.select("type", "Type", [["", "All types"], ...TYPES.map((t) => [t, capital(t)])]);
    this.state = this.select("state", "State", [["", "All states"], ...STATES.map((s) => [s, capital(s)])]);
    this.owner = this.select("owner", "Owner", []);
    this.label = this.select("label", "Label", []);
    this.count = h("span", { class: "filter-count", role: "status", "data-testid": "filter-count" });
    this.clear = h("button", { type: "button", class: "btn btn-ghost", "data-testid": "filter-clear", onclick: () => this.set({ ...NO_FILTER }, true) }, "Clear all");
    this.el = h(
      "form",
      { class: "filter-bar", role: "search", "aria-label": "Filter stories", "data-testid": "filter-bar", onsubmit: (e) => e.preventDefault() },
      this.text,
      this.type,
      this.state,
      this.owner,
      this.label,
      this.clear,
      this.count,
    );
    this.text.addEventListener("input", () => this.changed("q", this.text.value.trim()));
    this.text.addEventListener("keydown", (e) => {
      // Escape clears the search box only; it does not close the story panel from here.
      if (e.key === "Escape" && this.text.value) {
        e.stopPropagation();
        this.text.value = "";
        this.changed("q", "");
      }
    });
    // The label choices are read from every story (10,000 on a large board) and sorted with
    // the locale's collation: that waits for the page's labelsLater() after the first paint.
    this.labelsRead = false;
    this.refreshChoices();
    this.sync();
  }

  /** Read the label choices now (after the board's first paint). */
  labelsLater() {
    this.labelsRead = true;
    this.refreshChoices();
  }

  select(key, name, options) {
    const el = h(
      "select",
      { class: "filter-select", "aria-label": `Filter by ${name.toLowerCase()}`, "data-testid": `filter-${key}`, onchange: () => this.changed(key, el.value) },
      options.map(([value, text]) => h("option", { value }, text)),
    );
    return el;
  }

  changed(key, value) {
    if (this.filter[key] === value) return;
    this.filter = { ...this.filter, [key]: value };
    this.sync();
    this.onChange(this.filter);
  }

  /** Show `filter` (from the address, or Clear all); `report`: tell the page. */
  set(filter, report = false) {
    this.filter = { ...filter };
    this.text.value = filter.q;
    this.refreshChoices();
    this.sync();
    if (report) {
      this.onChange(this.filter);
      this.text.focus();
    }
  }

  /** Owners and labels follow the project (members come and go, labels are added). */
  refreshChoices() {
    const members = this.model.state.members;
    fill(this.owner, [["", "Anyone"], ["none", "Nobody"], ...members.map((m) => [String(m.user_id), m.name])], this.filter.owner);
    const labels = this.labelsRead ? labelsIn(this.model.state.stories) : [];
    fill(this.label, [["", "All labels"], ...labels.map((l) => [l, l])], this.filter.label);
  }

  sync() {
    this.type.value = this.filter.type;
    this.state.value = this.filter.state;
    this.clear.hidden = !isActive(this.filter);
    for (const [key, el] of [["type", this.type], ["state", this.state], ["owner", this.owner], ["label", this.label]]) el.classList.toggle("active", Boolean(this.filter[key]));
    this.text.classList.toggle("active", Boolean(this.filter.q));
  }

  /** "12 of 80 stories" while filtering; nothing otherwise. */
  showCount(matched, total) {
    const text = isActive(this.filter) ? `${matched} of ${total} stories` : "";
    if (this.count.textContent !== text) this.count.textContent = text;
  }
}

/** Make a select's options exactly `options`, keeping `value` chosen (added when it is unknown). */
function fill(select, options, value) {
  const wanted = options.some(([v]) => v === value) ? options : [...options, [value, value]];
  const same = select.options.length === wanted.length && wanted.every(([v, t], i) => select.options[i].value === v && select.options[i].textContent === t);
  if (!same) select.replaceChildren(...wanted.map(([v, t]) => h("option", { value: v }, t)));
  select.value = value;
}

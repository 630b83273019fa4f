// The admin page: push flags (kill switch, rollout percentage, per-project overrides)
// through /api/admin/flags, and live figures from /api/admin/stats drawn as charts over the
// last two minutes. Flags are read again with every stats read, so a change made on another
// admin page shows here within STATS_EVERY_MS. The API refuses non-admins on its own; the
// page says so plainly instead of failing.

import { api, ApiError } from "./api.js";
import { h, replace } from "./dom.js";
import { signInView } from "./views/sign-in.js";
import { Notices } from "./views/notices.js";
import { stackedBar, timeChart } from "./views/charts.js";
import { History, TRANSPORTS, WINDOW_S } from "./stats.js";

/** Milliseconds between stats (and flags) reads; the charts keep HISTORY of them (two minutes). */
const STATS_EVERY_MS = 2000;
const HISTORY = 60;
const CHART_WINDOW_S = (HISTORY * STATS_EVERY_MS) / 1000;
const COLORS = { ws: "#2563eb", sse: "#16a34a", socketio: "#d97706", a: "#2563eb", b: "#d97706", c: "#7c3aed" };
const TRANSPORT_NAMES = { ws: "WebSocket", sse: "SSE", socketio: "Socket.IO" };

const fmt = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

class AdminPage {
  constructor() {
    this.main = document.getElementById("main");
    this.userSlot = document.getElementById("user-slot");
    this.notices = new Notices(document.body);
    this.history = new History(HISTORY);
    this.statsTimer = null;
  }

  async boot() {
    let me;
    try {
      me = await api.me();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        replace(this.main, signInView(() => this.boot(), { title: "Sign in to the admin page" }));
      } else {
        replace(this.main, h("div", { class: "empty-page" }, h("h1", {}, "The app cannot be reached"), h("p", {}, "Retrying in a few seconds…")));
        setTimeout(() => this.boot(), 3000);
      }
      return;
    }
    this.me = me;
    replace(
      this.userSlot,
      h("span", { class: "user-name", "data-testid": "user-name" }, me.user.name),
      h("button", { class: "btn-topbar", "data-testid": "sign-out", onclick: () => this.signOut() }, "Sign out"),
    );
    if (!me.user.is_admin) {
      replace(
        this.main,
        h(
          "div",
          { class: "empty-page", "data-testid": "admin-denied" },
          h("h1", {}, "Admins only"),
          h("p", {}, `${me.user.name} is not an administrator, so push settings and figures are not shown.`),
          h("p", {}, h("a", { href: "/" }, "Back to the board")),
        ),
      );
      return;
    }
    this.render();
    await this.loadFlags();
    this.pollStats();
  }

  async signOut() {
    try {
      await api.signOut();
    } catch (err) {
      // Signed out here either way.
    }
    clearTimeout(this.statsTimer);
    location.reload();
  }

  render() {
    this.flagsEl = h("div", { class: "flags", "data-testid": "flags" }, h("p", { class: "muted" }, "Loading flags…"));
    this.statsEl = h("div", { class: "stats", "data-testid": "stats" }, h("p", { class: "muted" }, "Loading figures…"));
    this.updatedEl = h("span", { class: "updated-at", "data-testid": "stats-updated" });
    replace(
      this.main,
      h(
        "div",
        { class: "admin", "data-testid": "admin" },
        h(
          "div",
          { class: "admin-inner" },
          h("h1", {}, "Push administration"),
          h("section", { class: "panel" }, h("h2", {}, "Push flags"), this.flagsEl),
          h("section", { class: "panel" }, h("h2", {}, "Live figures", this.updatedEl), this.statsEl),
        ),
      ),
    );
  }

  // ----- flags ------------------------------------------------------------

  async loadFlags() {
    try {
      this.renderFlags(await api.flags());
    } catch (err) {
      replace(this.flagsEl, h("p", { class: "form-error" }, `Flags could not be loaded: ${err.message}`));
    }
  }

  /**
   * Flags changed elsewhere (another admin page, `tidings flags`): shown when they differ
   * from what is shown, unless the user is in the middle of editing one here.
   */
  async refreshFlags() {
    let flags;
    try {
      flags = await api.flags();
    } catch (err) {
      return; // the stats line already says when the app cannot be read
    }
    if (JSON.stringify(flags) === this.shownFlags) return;
    if (this.flagsEl.contains(document.activeElement) && document.activeElement.matches("input[type=number], input[type=range]")) return;
    this.renderFlags(flags);
    this.notices.show("flags", "Push flags were changed elsewhere; now showing the new values.", { kind: "info" });
  }

  async changeFlags(changes, done) {
    try {
      const flags = await api.setFlags(changes);
      this.renderFlags(flags);
      this.notices.show("flags", done, { kind: "info" });
    } catch (err) {
      this.notices.show("flags", `Not changed: ${err.message}`, { kind: "error" });
      await this.loadFlags();
    }
  }

  renderFlags(flags) {
    this.shownFlags = JSON.stringify(flags);
    const kill = h("input", {
      type: "checkbox",
      checked: flags.enabled,
      "data-testid": "flag-enabled",
      "aria-label": "Push enabled",
      onchange: (e) => this.changeFlags({ enabled: e.target.checked }, e.target.checked ? "Push switched on." : "Push switched off: clients fall back to polling."),
    });
    const slider = h("input", { type: "range", min: 0, max: 100, step: 5, value: String(flags.rollout_percent), "aria-label": "Rollout percentage" });
    const number = h("input", { type: "number", min: 0, max: 100, value: String(flags.rollout_percent), "data-testid": "flag-rollout", "aria-label": "Rollout percentage" });
    slider.addEventListener("input", () => (number.value = slider.value));
    number.addEventListener("input", () => (slider.value = number.value));
    const apply = h(
      "button",
      {
        class: "btn",
        "data-testid": "flag-rollout-apply",
        onclick: () => {
          const value = Math.max(0, Math.min(100, Math.round(Number(number.value))));
          if (Number.isFinite(value)) this.changeFlags({ rollout_percent: value }, `Rollout set to ${value} %.`);
        },
      },
      "Apply",
    );
    const projectIds = new Set([...this.me.projects.map((p) => p.id), ...Object.keys(flags.projects).map(Number)]);
    const nameOf = (id) => (this.me.projects.find((p) => p.id === id) || {}).name || `Project ${id}`;
    const rows = [...projectIds]
      .sort((a, b) => a - b)
      .map((id) => {
        const value = flags.projects[String(id)];
        const current = value === true ? "on" : value === false ? "off" : "follow";
        const select = h(
          "select",
          {
            "data-testid": `flag-project-${id}`,
            "aria-label": `Push for ${nameOf(id)}`,
            onchange: (e) => {
              const v = { follow: null, on: true, off: false }[e.target.value];
              this.changeFlags({ projects: { [String(id)]: v } }, `${nameOf(id)}: ${e.target.selectedOptions[0].textContent.toLowerCase()}.`);
            },
          },
          h("option", { value: "follow", selected: current === "follow" }, "Follow global settings"),
          h("option", { value: "on", selected: current === "on" }, "Force push on"),
          h("option", { value: "off", selected: current === "off" }, "Force push off"),
        );
        return h("tr", {}, h("td", {}, h("strong", {}, nameOf(id)), h("span", { class: "muted" }, `  #${id}`)), h("td", {}, select));
      });
    const otherId = h("input", { type: "number", min: 1, placeholder: "Project id", style: "width: 120px" });
    const addOther = h("form", { class: "inline-form" }, otherId, h("button", { type: "submit", class: "btn" }, "Force push off"));
    addOther.addEventListener("submit", (e) => {
      e.preventDefault();
      const id = Math.floor(Number(otherId.value));
      if (id > 0) this.changeFlags({ projects: { [String(id)]: false } }, `Project ${id}: push forced off.`);
    });
    replace(
      this.flagsEl,
      flags.enabled ? null : h("div", { class: "kill-banner", "data-testid": "kill-banner" }, "Push is switched off: every client polls at the fallback interval."),
      h(
        "div",
        { class: "flag-row" },
        h("div", { class: "flag-text" }, h("strong", {}, "Push (kill switch)"), h("span", {}, "Off: no client uses push; all fall back to polling within one poll interval.")),
        h("label", { class: "switch" }, kill, h("span", { class: "track" })),
      ),
      h(
        "div",
        { class: "flag-row" },
        h("div", { class: "flag-text" }, h("strong", {}, "Rollout"), h("span", {}, "Share of users (by a stable hash of their id) who get push; project overrides win.")),
        h("div", { class: "rollout" }, slider, number, h("span", {}, "%"), apply),
      ),
      h(
        "div",
        { class: "flag-row", style: "display:block" },
        h("div", { class: "flag-text" }, h("strong", {}, "Per-project overrides"), h("span", {}, "Force push on or off for one project, whatever the rollout says.")),
        h("table", { class: "overrides" }, h("thead", {}, h("tr", {}, h("th", {}, "Project"), h("th", {}, "Push"))), h("tbody", {}, rows)),
        addOther,
      ),
    );
  }

  // ----- live figures ----------------------------------------------------------

  async pollStats() {
    let sample = null;
    let missing = false;
    try {
      sample = await api.stats();
    } catch (err) {
      missing = err instanceof ApiError && (err.status === 404 || err.status === 405);
      if (!missing) this.statsProblem(err);
    }
    if (missing) {
      this.statsUnavailable();
      return; // the endpoint is not there; no point asking every two seconds
    }
    if (sample) {
      this.history.push(sample);
      this.renderStats(sample);
      this.statsEl.dataset.samples = String(this.history.points.length);
    }
    await this.refreshFlags();
    this.statsTimer = setTimeout(() => this.pollStats(), STATS_EVERY_MS);
  }

  statsUnavailable() {
    this.updatedEl.textContent = "";
    replace(
      this.statsEl,
      h(
        "div",
        { class: "stats-unavailable", "data-testid": "stats-unavailable" },
        h("strong", {}, "Stats unavailable. "),
        "This app does not serve ",
        h("code", {}, "GET /api/admin/stats"),
        " yet, so connections, pokes, polls, staleness, missed pokes and broker heartbeat age cannot be shown. ",
        "The push flags above work without it.",
      ),
    );
  }

  statsProblem(err) {
    this.updatedEl.textContent = `last read failed: ${err.message}; retrying`;
  }

  figure(title, value, unit, chart, legend = null, testid = null) {
    return h(
      "div",
      { class: "figure", "data-testid": testid },
      h("div", { class: "figure-title" }, title),
      h("div", { class: "figure-value" }, value, unit ? h("small", {}, unit) : null),
      chart,
      legend ? h("div", { class: "figure-legend" }, legend) : null,
    );
  }

  legend(items) {
    return items.map(([color, text]) => h("span", {}, h("span", { class: "swatch", style: `background:${color}` }), text));
  }

  renderStats(sample) {
    const now = this.history.latest();
    const hist = this.history;
    this.updatedEl.textContent = `updated ${new Date((sample.ts || Date.now() / 1000) * 1000).toLocaleTimeString()}`;
    const conn = now.connections;
    const times = hist.times();
    const chart = (series, unit, label, max = null) => timeChart(series, { times, windowS: CHART_WINDOW_S, unit, label, max });
    const connSeries = TRANSPORTS.map((t) => ({ values: hist.points.map((p) => p.connections[t]), color: COLORS[t] }));
    const over = `over the last ${WINDOW_S} s`;
    const staleNote =
      now.stalenessCount === null
        ? "this app reports no recent window"
        : `from ${now.stalenessCount} client report${now.stalenessCount === 1 ? "" : "s"} in the last ${fmt(now.stalenessWindowS, 0)} s`;
    const figures = h(
      "div",
      { class: "figures", "data-testid": "figures" },
      this.figure(
        "Connections",
        String(conn.total),
        "open",
        chart(connSeries, "open", "Connections by transport"),
        this.legend(TRANSPORTS.map((t) => [COLORS[t], `${TRANSPORT_NAMES[t]} ${conn[t]}`])),
        "figure-connections",
      ),
      this.figure(
        "Pokes sent",
        fmt(now.pokesPerSecond),
        "/s",
        chart([{ values: hist.series("pokesPerSecond"), color: COLORS.a, fill: true }], "/s", "Pokes sent per second"),
        h("span", { class: "figure-note" }, over),
        "figure-pokes",
      ),
      this.figure(
        "Polls",
        fmt(sum2(now.pollsUpToDate, now.pollsWithEvents)),
        "/s",
        chart(
          [
            { values: hist.series("pollsUpToDate"), color: COLORS.a },
            { values: hist.series("pollsWithEvents"), color: COLORS.b },
          ],
          "/s",
          "Polls per second",
        ),
        [
          ...this.legend([
            [COLORS.a, `up to date ${fmt(now.pollsUpToDate)}`],
            [COLORS.b, `with events ${fmt(now.pollsWithEvents)}`],
          ]),
          h("span", { class: "figure-note" }, over),
        ],
        "figure-polls",
      ),
      this.figure(
        "Staleness",
        now.stalenessP50 === null ? "–" : `${fmt(now.stalenessP50, 0)} / ${fmt(now.stalenessP99, 0)}`,
        "ms p50 / p99",
        chart(
          [
            { values: hist.series("stalenessP50"), color: COLORS.a },
            { values: hist.series("stalenessP99"), color: COLORS.c },
          ],
          "ms",
          "Staleness p50 and p99",
        ),
        [
          h("span", { class: "figure-note", "data-testid": "staleness-samples", "data-count": now.stalenessCount ?? "" }, staleNote),
          ...this.legend([
            [COLORS.a, "p50"],
            [COLORS.c, "p99"],
          ]),
          ...Object.entries(now.stalenessByVia).map(([via, q]) => h("span", {}, `${via}: ${fmt(q.p50, 0)} / ${fmt(q.p99, 0)} ms (${q.count ?? 0})`)),
        ],
        "figure-staleness",
      ),
      this.figure(
        "Missed pokes",
        now.missedPokeRate === null ? "–" : fmt(now.missedPokeRate * 100, 2),
        "% of polls",
        chart([{ values: hist.series("missedPokeRate").map((v) => (v === null ? null : v * 100)), color: "#dc2626", fill: true }], "%", "Missed-poke rate"),
        h("span", { class: "figure-note" }, over),
        "figure-missed",
      ),
      this.figure("Broker heartbeat age", fmt(now.heartbeatAge), "s (oldest)", chart([{ values: hist.series("heartbeatAge"), color: "#7c3aed", fill: true }], "s", "Broker heartbeat age"), null, "figure-heartbeat"),
    );
    const servers = sample.push_servers || [];
    const most = Math.max(1, ...servers.map((s) => TRANSPORTS.reduce((a, t) => a + ((s.connections || {})[t] || 0), 0)));
    const table = h(
      "table",
      { class: "servers", "data-testid": "push-servers" },
      h("thead", {}, h("tr", {}, ["Push server", "State", "WebSocket", "SSE", "Socket.IO", "Connections", "Pokes sent", "Broker heartbeat", "Last report"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        servers.length === 0
          ? h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No push server is reporting."))
          : servers.map((s) => {
              const c = s.connections || {};
              return h(
                "tr",
                { "data-testid": "push-server" },
                h("td", {}, h("code", {}, String(s.id))),
                h("td", {}, h("span", { class: `server-state ${s.state}` }, String(s.state || "?"))),
                TRANSPORTS.map((t) => h("td", {}, String(c[t] ?? 0))),
                h("td", {}, stackedBar(TRANSPORTS.map((t) => ({ value: c[t] || 0, color: COLORS[t], label: TRANSPORT_NAMES[t] })), { total: most })),
                h("td", {}, String((s.counters || {}).pokes_sent ?? "–")),
                h("td", {}, `${fmt(s.heartbeat_age)} s`),
                h("td", {}, `${fmt(s.age)} s ago`),
              );
            }),
      ),
    );
    const link =
      typeof sample.control_link === "boolean"
        ? h("span", { class: `badge ${sample.control_link ? "badge-ok" : "badge-bad"}`, "data-testid": "control-link" }, sample.control_link ? "control channel up" : "control channel down")
        : null;
    replace(this.statsEl, figures, h("h3", { class: "detail-h servers-h" }, "Push servers", link), table);
  }
}

function sum2(a, b) {
  return a === null || b === null ? null : a + b;
}

new AdminPage().boot();

// Figures for the admin page from GET /api/admin/stats samples: counters become rates
// over a window of samples (WINDOW_S), gauges are taken as they are. Pure functions, no DOM.
//
// Why a window: push servers report their counters every 5 s and the page reads every 2 s,
// so the rate between two reads is 0 or 2.5 reports' worth (0-23/s under a steady load).
// Each push server's counter is dated by its report (the read's ts minus the report's age),
// and the rate runs from the window's first report to its last.
//
// The sample (src/tidings/app/routes/admin.py; counters cumulative since each process started):
// {"ts": 1732780200.5, "control_link": true,
//  "app": {"counters": {"polls": {"up_to_date": n, "not_modified": n, "events": n, ...},
//                       "pokes_published": n, "client_polls": n, "client_missed_pokes": n, ...},
//          "staleness_seconds": {"poke": {"count": n, "p50": s|null, "p99": s|null}, "poll": {...}},
//          "staleness_window": {"window_s": 60, "count": n, "p50": s|null, "p99": s|null,
//                               "by_via": {"poke": {"count": n, "p50": s|null, "p99": s|null}, ...}}},
//  "push_servers": [{"id": "a1b2c3", "age": s, "state": "ok|degraded|draining",
//                    "connections": {"ws": n, "sse": n, "socketio": n}, "heartbeat_age": s,
//                    "counters": {"pokes_sent": n, ...}, ...}]}

export const TRANSPORTS = ["ws", "sse", "socketio"];

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

function get(obj, ...keys) {
  let cur = obj;
  for (const k of keys) cur = cur && typeof cur === "object" ? cur[k] : undefined;
  return num(cur);
}

/** Seconds of samples a rate is taken over: six push-server reports. */
export const WINDOW_S = 30;

/** Per-second rate of a counter between two readings; null when unknown or reset. */
export function rate(before, after, dt) {
  if (before === null || after === null || !(dt > 0) || after < before) return null;
  return (after - before) / dt;
}

/**
 * Per-second rate over readings [{t, v}] (oldest first): from the first reading after the
 * last reset (a restarted process counts from 0) to the last; null with under two readings.
 */
export function windowRate(readings) {
  const known = readings.filter((r) => r.t !== null && r.v !== null);
  let start = 0;
  for (let i = 1; i < known.length; i += 1) if (known[i].v < known[i - 1].v) start = i;
  const from = known[start];
  const to = known[known.length - 1];
  return from && to ? rate(from.v, to.v, to.t - from.t) : null;
}

function sum(values) {
  const known = values.filter((v) => v !== null);
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}

function servers(sample) {
  return Array.isArray(sample.push_servers) ? sample.push_servers : [];
}

/** Pokes written to clients per second, each push server's reports over the window, summed. */
function pokesRate(samples) {
  const reports = new Map();
  for (const sample of samples) {
    for (const server of servers(sample)) {
      const ts = num(sample.ts);
      const age = num(server.age);
      const t = ts === null ? null : ts - (age ?? 0);
      const list = reports.get(server.id) || [];
      // The same report read again (every read between two reports): counted once.
      if (list.length && t !== null && Math.abs(list[list.length - 1].t - t) < 0.5) continue;
      list.push({ t, v: get(server, "counters", "pokes_sent") });
      reports.set(server.id, list);
    }
  }
  return sum([...reports.values()].map(windowRate));
}

const upToDate = (s) => sum([get(s, "app", "counters", "polls", "up_to_date"), get(s, "app", "counters", "polls", "not_modified")]);
const withEvents = (s) => get(s, "app", "counters", "polls", "events");

/** An app counter's rate over the window (the app's counters are current at each read). */
function appRate(samples, f) {
  return windowRate(samples.map((s) => ({ t: num(s.ts), v: f(s) })));
}

/** Connections by transport, summed over the push servers. */
export function connections(sample) {
  const out = { ws: 0, sse: 0, socketio: 0, total: 0 };
  for (const server of servers(sample)) {
    for (const t of TRANSPORTS) {
      const n = get(server, "connections", t) || 0;
      out[t] += n;
      out.total += n;
    }
  }
  return out;
}

const ms = (v) => (num(v) === null ? null : v * 1000);

/**
 * Staleness quantiles in milliseconds over the app's window of recent client reports, with
 * the number of reports they rest on; per path (poke, poll, full_push) too. An app without
 * the window falls back to its since-start histogram (bucket bounds, no overall figure).
 */
export function staleness(sample) {
  const app = sample.app || {};
  const w = app.staleness_window;
  if (w && typeof w === "object") {
    const byVia = {};
    for (const [via, q] of Object.entries(w.by_via || {})) byVia[via] = { count: num(q.count), p50: ms(q.p50), p99: ms(q.p99) };
    return { p50: ms(w.p50), p99: ms(w.p99), count: num(w.count), windowS: num(w.window_s), byVia };
  }
  const byVia = {};
  for (const [via, q] of Object.entries(app.staleness_seconds || {})) byVia[via] = { count: num(q.count), p50: ms(q.p50), p99: ms(q.p99) };
  return { p50: null, p99: null, count: null, windowS: null, byVia };
}

/** The figures at the last of `samples` (oldest first), rates over the last `windowS` of them. */
export function figures(samples, windowS = WINDOW_S) {
  const cur = samples[samples.length - 1];
  const now = num(cur.ts);
  const recent = samples.filter((s) => now === null || num(s.ts) === null || now - s.ts <= windowS + 1e-6);
  const first = recent[0];
  const counterDelta = (name) => (recent.length > 1 ? (get(cur, "app", "counters", name) ?? 0) - (get(first, "app", "counters", name) ?? 0) : null);
  const clientPolls = counterDelta("client_polls");
  const missed = counterDelta("client_missed_pokes");
  const ages = servers(cur).map((s) => num(s.heartbeat_age)).filter((v) => v !== null);
  const stale = staleness(cur);
  return {
    t: now,
    connections: connections(cur),
    pokesPerSecond: pokesRate(recent),
    pollsUpToDate: appRate(recent, upToDate),
    pollsWithEvents: appRate(recent, withEvents),
    stalenessP50: stale.p50,
    stalenessP99: stale.p99,
    stalenessCount: stale.count,
    stalenessWindowS: stale.windowS,
    stalenessByVia: stale.byVia,
    missedPokeRate: clientPolls !== null && clientPolls > 0 && missed !== null && missed >= 0 ? missed / clientPolls : null,
    heartbeatAge: ages.length ? Math.max(...ages) : null,
  };
}

/** The last `size` samples and their figures, oldest first. */
export class History {
  constructor(size = 60, windowS = WINDOW_S) {
    this.size = size;
    this.windowS = windowS;
    this.samples = [];
    this.points = [];
  }

  push(sample) {
    const prev = this.samples.length ? this.samples[this.samples.length - 1] : null;
    if (prev && num(sample.ts) !== null && num(prev.ts) !== null && sample.ts <= prev.ts) return this.latest();
    this.samples.push(sample);
    this.points.push(figures(this.samples, this.windowS));
    if (this.samples.length > this.size) {
      this.samples.shift();
      this.points.shift();
    }
    return this.latest();
  }

  latest() {
    return this.points.length ? this.points[this.points.length - 1] : null;
  }

  series(key) {
    return this.points.map((p) => p[key]);
  }

  times() {
    return this.points.map((p) => p.t);
  }
}

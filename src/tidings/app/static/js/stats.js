// Figures for the admin page from GET /api/admin/stats samples: counters become rates
// between two samples; gauges are taken as they are. Pure functions, no DOM.
//
// The sample (src/tidings/app/routes/admin.py; counters cumulative since each process started):
// {"ts": 1732780200.5, "control_link": true,
//  "app": {"counters": {"polls": {"up_to_date": n, "not_modified": n, "events": n, ...},
//                       "pokes_published": n, "client_polls": n, "client_missed_pokes": n, ...},
//          "staleness_seconds": {"poke": {"count": n, "p50": s|null, "p99": s|null}, "poll": {...}}},
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

/** Per-second rate of a counter between two samples; null when unknown or reset. */
export function rate(before, after, dt) {
  if (before === null || after === null || !(dt > 0) || after < before) return null;
  return (after - before) / dt;
}

function sum(values) {
  const known = values.filter((v) => v !== null);
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}

function servers(sample) {
  return Array.isArray(sample.push_servers) ? sample.push_servers : [];
}

/** Pokes written to clients, summed over the push servers reporting in both samples. */
function pokesRate(prev, cur, dt) {
  const before = new Map(servers(prev).map((s) => [s.id, get(s, "counters", "pokes_sent")]));
  const rates = servers(cur)
    .filter((s) => before.has(s.id))
    .map((s) => rate(before.get(s.id), get(s, "counters", "pokes_sent"), dt));
  return sum(rates);
}

const upToDate = (s) => sum([get(s, "app", "counters", "polls", "up_to_date"), get(s, "app", "counters", "polls", "not_modified")]);
const withEvents = (s) => get(s, "app", "counters", "polls", "events");

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

/**
 * Staleness quantiles in milliseconds: per path the client applied events by (poke, poll,
 * full_push), and the worst of them (quantiles of different paths cannot be merged).
 */
export function staleness(sample) {
  const byVia = {};
  let p50 = null;
  let p99 = null;
  const table = (sample.app && sample.app.staleness_seconds) || {};
  for (const [via, q] of Object.entries(table)) {
    const row = { count: num(q.count), p50: num(q.p50) === null ? null : q.p50 * 1000, p99: num(q.p99) === null ? null : q.p99 * 1000 };
    byVia[via] = row;
    if (row.p50 !== null) p50 = Math.max(p50 ?? 0, row.p50);
    if (row.p99 !== null) p99 = Math.max(p99 ?? 0, row.p99);
  }
  return { p50, p99, byVia };
}

/** The figures at `cur`, with rates since `prev` (null for the first sample). */
export function figures(prev, cur) {
  const dt = prev ? num(cur.ts) - num(prev.ts) : null;
  const delta = (f) => (prev ? rate(f(prev), f(cur), dt) : null);
  const counterDelta = (name) => (prev ? (get(cur, "app", "counters", name) ?? 0) - (get(prev, "app", "counters", name) ?? 0) : null);
  const clientPolls = counterDelta("client_polls");
  const missed = counterDelta("client_missed_pokes");
  const ages = servers(cur).map((s) => num(s.heartbeat_age)).filter((v) => v !== null);
  const stale = staleness(cur);
  return {
    connections: connections(cur),
    pokesPerSecond: prev ? pokesRate(prev, cur, dt) : null,
    pollsUpToDate: delta(upToDate),
    pollsWithEvents: delta(withEvents),
    stalenessP50: stale.p50,
    stalenessP99: stale.p99,
    stalenessByVia: stale.byVia,
    missedPokeRate: clientPolls !== null && clientPolls > 0 && missed !== null && missed >= 0 ? missed / clientPolls : null,
    heartbeatAge: ages.length ? Math.max(...ages) : null,
  };
}

/** The last `size` figures, oldest first. */
export class History {
  constructor(size = 60) {
    this.size = size;
    this.samples = [];
    this.points = [];
  }

  push(sample) {
    const prev = this.samples.length ? this.samples[this.samples.length - 1] : null;
    if (prev && num(sample.ts) !== null && num(prev.ts) !== null && sample.ts <= prev.ts) return this.latest();
    this.samples.push(sample);
    this.points.push(figures(prev, sample));
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
}

// Figures for the admin page from GET /api/admin/stats samples: counters become rates
// between two samples; gauges are taken as they are. Pure functions, no DOM.
//
// The sample shape (the app's endpoint; all counters cumulative since the process started):
// {"ts": 1732780200.5,
//  "app": {"polls": {"up_to_date": n, "not_modified": n, "events": n, "reload": n},
//          "pokes_published": n,
//          "client": {"polls": n, "missed_pokes": n, "staleness_ms": {"p50": ms|null, "p99": ms|null}}},
//  "push_servers": [{"id": "a1b2c3", "state": "ok|degraded|draining",
//                    "connections": {"ws": n, "sse": n, "socketio": n},
//                    "pokes_sent": n, "heartbeat_age": seconds}]}

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

function pokesSent(sample) {
  return sum((sample.push_servers || []).map((s) => num(s.pokes_sent)));
}

function upToDate(sample) {
  return sum([get(sample, "app", "polls", "up_to_date"), get(sample, "app", "polls", "not_modified")]);
}

/** Connections by transport, summed over the push servers. */
export function connections(sample) {
  const out = { ws: 0, sse: 0, socketio: 0, total: 0 };
  for (const server of sample.push_servers || []) {
    for (const t of TRANSPORTS) {
      const n = num(server.connections && server.connections[t]) || 0;
      out[t] += n;
      out.total += n;
    }
  }
  return out;
}

/** The figures at `cur`, with rates since `prev` (null for the first sample). */
export function figures(prev, cur) {
  const dt = prev ? num(cur.ts) - num(prev.ts) : null;
  const delta = (f) => (prev ? rate(f(prev), f(cur), dt) : null);
  const clientPolls = prev ? (get(cur, "app", "client", "polls") ?? 0) - (get(prev, "app", "client", "polls") ?? 0) : null;
  const missed = prev ? (get(cur, "app", "client", "missed_pokes") ?? 0) - (get(prev, "app", "client", "missed_pokes") ?? 0) : null;
  const ages = (cur.push_servers || []).map((s) => num(s.heartbeat_age)).filter((v) => v !== null);
  return {
    connections: connections(cur),
    pokesPerSecond: delta(pokesSent),
    pollsUpToDate: delta(upToDate),
    pollsWithEvents: delta((s) => get(s, "app", "polls", "events")),
    stalenessP50: get(cur, "app", "client", "staleness_ms", "p50"),
    stalenessP99: get(cur, "app", "client", "staleness_ms", "p99"),
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

// The client's sync controller: when to poll, when to trust push, when to back off.
//
// A plain state machine, the twin of src/tidings/client/controller.py: feed(now, input)
// returns the actions a driver must carry out. No I/O, no clock, randomness only from
// the rand() given. Both run the shared vectors in tests/vectors/sync/; the rules are
// docs/PROTOCOL.md section 5. ES module, no build step.

export const STATUS = Object.freeze({
  LIVE: "live",
  PUSH_OFF: "polling_push_off",
  PUSH_UNAVAILABLE: "polling_push_unavailable",
  OFFLINE: "offline",
});

export const PUSH_STATE = Object.freeze({
  OFF: "off",
  WAITING: "waiting",
  CONNECTING: "connecting",
  HEALTHY: "healthy",
  DEGRADED: "degraded",
  DRAINING: "draining",
});

/** Close codes after which the token is dropped and a new one fetched (tidings.protocol.errors). */
export const TOKEN_CLOSE_CODES = Object.freeze([4401, 4403]);

export const DEFAULT_ADVICE = Object.freeze({
  push: true,
  interval: 60,
  fallback_interval: 5,
  jitter: 0.2,
});

/** Defaults, the same as tidings.client.controller.Config (tests/vectors/sync/README.md). */
export const DEFAULTS = Object.freeze({
  push: true,
  // 0.1 s, not 0.25: with 0.25 poke-mode staleness p99 was 253-272 ms against a
  // 250 ms goal (bench/freshness.py), most of it this delay; with poll collapsing a
  // poked herd costs one store read with or without the spread, and 5,000 clients'
  // time to current is bound by the app's CPU, not it (bench/herd.py).
  poke_delay: 0.1,
  poll_backoff_base: 2,
  poll_backoff_cap: 120,
  poll_backoff_floor: 1,
  retry_after_cap: 600,
  push_backoff_base: 2,
  push_backoff_cap: 120,
  push_backoff_floor: 1,
  connect_timeout: 10,
  heartbeat: 25,
  heartbeat_timeout_factor: 2.5,
  push_stable_after: 30,
  token_refresh_margin: 60,
  lag_retries: 3,
  lag_retry_delay: 1,
  telemetry_interval: 60,
  telemetry_max_samples: 500,
  // A report of counts alone waits this long after the last one (idle clients).
  telemetry_idle_interval: 600,
  miss_grace: 2,
});

/** Staleness above a day is reported as a day (tidings.protocol.telemetry.MAX_STALENESS_MS). */
export const MAX_STALENESS_MS = 86400000;

const MAX_DOUBLINGS = 30;
const OPEN = [PUSH_STATE.CONNECTING, PUSH_STATE.HEALTHY, PUSH_STATE.DEGRADED, PUSH_STATE.DRAINING];
const SUBSCRIBED = [PUSH_STATE.HEALTHY, PUSH_STATE.DEGRADED, PUSH_STATE.DRAINING];
const SERVER_STATES = { ok: PUSH_STATE.HEALTHY, degraded: PUSH_STATE.DEGRADED, draining: PUSH_STATE.DRAINING };
const STATUS_RANK = [STATUS.LIVE, STATUS.PUSH_OFF, STATUS.PUSH_UNAVAILABLE, STATUS.OFFLINE];

/** interval times a uniform factor in [1 - jitter, 1 + jitter]. */
export function jittered(interval, jitter, r) {
  return interval * (1 - jitter + 2 * jitter * r);
}

/**
 * Delay before retry `attempt` (1 for the first): uniform in [floor, min(cap, base * 2^(n-1))].
 * The floor (against tight loops) shifts the range rather than clamping it, so no
 * share of a herd lands on exactly `floor`.
 */
export function fullJitter(attempt, base, cap, floor, r) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt - 1, MAX_DOUBLINGS));
  return floor + r * Math.max(0, ceiling - floor);
}

/** Commit-to-applied delay in whole milliseconds, clamped to [0, MAX_STALENESS_MS]. */
export function stalenessMs(now, ts) {
  const ms = Math.floor((now - ts) * 1000 + 0.5);
  return Math.max(0, Math.min(MAX_STALENESS_MS, ms));
}

function contiguous(local, events) {
  let expected = local + 1;
  for (const e of events) {
    if (e.version !== expected) return false;
    expected += 1;
  }
  return true;
}

function minOf(values) {
  let best = null;
  for (const v of values) if (v !== null && v !== undefined && (best === null || v < best)) best = v;
  return best;
}

function versionsObject(map) {
  const out = {};
  for (const [p, v] of map) out[String(p)] = v;
  return out;
}

class Project {
  constructor(id, version, advice) {
    this.id = id;
    this.version = version;
    this.advice = advice;
    this.needsSnapshot = version === null;
    this.inFlight = false;
    this.nextPollAt = null;
    this.nextLong = false;
    // The long-interval time a loss of push brought nextPollAt forward from.
    this.longAt = null;
    this.soonAt = null;
    this.failures = 0;
    this.announced = 0;
    this.announcedAtSend = 0;
    this.behind = 0;
    this.healthySince = null;
    this.reportedDue = null;
    this.revoked = false;
  }

  due() {
    if (this.inFlight) return null;
    return minOf([this.nextPollAt, this.soonAt]);
  }
}

/**
 * Decides every poll, push connection and token fetch of one client.
 * `config`: {projects: [ids], versions: {id: version}, push, advice, ...DEFAULTS};
 * `rand`: () => uniform number in [0, 1).
 */
export class SyncController {
  constructor(config, rand) {
    const known = new Set([...Object.keys(DEFAULTS), "projects", "versions", "advice"]);
    for (const key of Object.keys(config)) {
      if (!known.has(key)) throw new Error(`unknown config key ${key}`);
    }
    this.cfg = { ...DEFAULTS, ...config, advice: { ...DEFAULT_ADVICE, ...(config.advice || {}) } };
    this.rand = rand;
    this.projects = new Map();
    const versions = config.versions || {};
    for (const raw of config.projects) {
      const id = Number(raw);
      const v = versions[String(id)];
      this.projects.set(id, new Project(id, v === undefined || v === null ? null : v, this.cfg.advice));
    }
    this.started = false;
    this.push = PUSH_STATE.OFF;
    this.conn = null;
    this.connSeq = 0;
    this.connectAt = null;
    this.connectDeadline = null;
    this.drainAt = null;
    this.subscribedAt = null;
    this.refreshWhenSubscribed = false;
    this.lastSeen = 0;
    this.heartbeat = this.cfg.heartbeat;
    this.pushFailures = 0;
    this.token = null;
    this.tokenRefreshAt = null;
    this.tokenFetching = false;
    this.tokenFailures = 0;
    this.reportedConnect = null;
    this.reportedStatus = null;
    this.telemetryAt = null;
    this.reportedAt = 0;
    this.samples = [];
    this.missed = 0;
    this.polls = 0;
    this.pokes = 0;
    this.pollErrors = 0;
  }

  // ----- public surface -----------------------------------------------------

  /** Handle one input at time `now` (seconds) and run everything due by then. */
  feed(now, input) {
    const out = [];
    this._handle(now, input, out);
    if (this.started) {
      this._pushTimers(now, out);
      this._updateHealth(now);
      this._projectTimers(now, out);
      this._telemetryTimer(now, out);
      this._reportChanges(now, out);
    }
    return out;
  }

  /** When to feed the next tick if nothing else happens; null: nothing scheduled. */
  nextDeadline() {
    if (!this.started) return null;
    const times = [...this.projects.values()].map((p) => p.due());
    times.push(this.telemetryAt);
    if (this.push === PUSH_STATE.WAITING && !this.tokenFetching) times.push(this.connectAt);
    if (this.push === PUSH_STATE.CONNECTING) times.push(this.connectDeadline);
    if (SUBSCRIBED.includes(this.push)) {
      times.push(this._overdueAt());
      times.push(this.drainAt);
    }
    if (OPEN.includes(this.push) && !this.tokenFetching) times.push(this.tokenRefreshAt);
    return minOf(times);
  }

  get status() {
    return this.reportedStatus;
  }

  version(project) {
    return this.projects.get(Number(project)).version;
  }

  /** Observable state, as the vectors' `state` expectations name it. */
  inspect() {
    const versions = {};
    for (const p of this.projects.values()) versions[String(p.id)] = p.version;
    return { status: this.reportedStatus, versions, push: this.push, deadline: this.nextDeadline() };
  }

  // ----- inputs -------------------------------------------------------------

  _handle(now, input, out) {
    switch (input.type) {
      case "start":
        this._start(now);
        break;
      case "tick":
        break;
      case "snapshot_loaded":
        this._snapshotLoaded(now, input);
        break;
      case "poll_result":
        this._pollResult(now, input, out);
        break;
      case "poll_failed":
        this._pollFailed(now, input);
        break;
      case "poke":
        this._poke(now, input, out);
        break;
      case "push_connected":
        if (input.conn === this.conn && OPEN.includes(this.push)) this.lastSeen = now;
        break;
      case "push_subscribed":
        this._subscribed(now, input, out);
        break;
      case "push_heartbeat":
        if (input.conn === this.conn && SUBSCRIBED.includes(this.push)) {
          this.lastSeen = now;
          this.push = this.drainAt !== null ? PUSH_STATE.DRAINING : SERVER_STATES[input.state || "ok"];
        }
        break;
      case "push_drain":
        if (input.conn === this.conn && OPEN.includes(this.push)) {
          this.lastSeen = now;
          this.push = PUSH_STATE.DRAINING;
          this.drainAt = now + Math.max(0, input.reconnect_after);
        }
        break;
      case "push_token_expiring":
        if (input.conn === this.conn && OPEN.includes(this.push) && this.tokenRefreshAt !== null) {
          this.tokenRefreshAt = Math.min(this.tokenRefreshAt, now);
        }
        break;
      case "push_revoked":
        this._revoked(now, input);
        break;
      case "push_closed":
        if (input.conn === this.conn && OPEN.includes(this.push)) {
          if (TOKEN_CLOSE_CODES.includes(input.code)) {
            this.token = null;
            this.tokenRefreshAt = null;
          }
          this._losePush(now, out, false);
        }
        break;
      case "token_fetched":
        this._tokenFetched(now, input, out);
        break;
      case "token_failed":
        this._tokenFailed(now);
        break;
      default:
        throw new Error(`unknown input type ${input.type}`);
    }
  }

  _start(now) {
    if (this.started) return;
    this.started = true;
    this.telemetryAt = now + this.cfg.telemetry_interval;
    this.reportedAt = now;
    for (const p of this.projects.values()) {
      if (p.needsSnapshot) p.nextPollAt = now;
      else this._scheduleRegular(now, p);
    }
  }

  _snapshotLoaded(now, input) {
    const p = this.projects.get(input.project);
    if (p === undefined || !p.needsSnapshot) return;
    p.version = input.version;
    p.needsSnapshot = false;
    p.inFlight = false;
    p.failures = 0;
    p.behind = 0;
    this._scheduleRegular(now, p);
    if (p.announced > input.version) {
      if (p.announced > p.announcedAtSend) p.soonAt = now + this.rand() * this.cfg.poke_delay;
      else p.announced = input.version;
    }
  }

  _pollResult(now, input, out) {
    const p = this.projects.get(input.project);
    if (p === undefined || p.needsSnapshot || p.version === null) return;
    p.inFlight = false;
    const local = p.version;
    const fresh = (input.events || []).filter((e) => e.version > local);
    if (this._isMissedPoke(now, p, fresh)) this.missed += 1;
    if (input.advice) {
      const pushed = this._usesPush(p);
      p.advice = { ...input.advice };
      if (!pushed && this._usesPush(p)) this._watchOnOpenConnection(out);
    }
    if (input.reload) {
      p.failures = 0;
      p.needsSnapshot = true;
      this._issue(p);
      out.push({ type: "reload_snapshot", project: p.id });
      return;
    }
    if (!contiguous(local, fresh) || (input.has_more && fresh.length === 0)) {
      this.pollErrors += 1;
      this._fail(now, p, null);
      return;
    }
    p.failures = 0;
    if (fresh.length > 0) this._apply(now, p, fresh, null, out);
    if (input.has_more) {
      p.soonAt = now;
      return;
    }
    this._scheduleRegular(now, p);
    if (p.announced <= p.version) {
      p.behind = 0;
    } else if (p.announced > p.announcedAtSend) {
      p.behind = 0;
      p.soonAt = now + this.rand() * this.cfg.poke_delay;
    } else {
      p.behind += 1;
      if (p.behind > this.cfg.lag_retries) {
        p.announced = p.version;
        p.behind = 0;
      } else {
        const delay = this.cfg.lag_retry_delay * 2 ** (p.behind - 1);
        p.soonAt = now + jittered(delay, p.advice.jitter, this.rand());
      }
    }
  }

  _pollFailed(now, input) {
    const p = this.projects.get(input.project);
    if (p === undefined || !p.inFlight) return;
    p.inFlight = false;
    this.pollErrors += 1;
    this._fail(now, p, input.retry_after === undefined ? null : input.retry_after);
  }

  _poke(now, input, out) {
    if (input.conn !== undefined && input.conn !== null && input.conn === this.conn && OPEN.includes(this.push)) {
      this.lastSeen = now;
    }
    const p = this.projects.get(input.project);
    if (p === undefined || !this._usesPush(p)) return;
    this.pokes += 1;
    if (Array.isArray(input.events) && p.version !== null && !p.needsSnapshot) {
      const fresh = input.events.filter((e) => e.version > p.version);
      if (fresh.length > 0 && contiguous(p.version, fresh)) this._apply(now, p, fresh, "full_push", out);
    }
    this._announce(now, p, input.version);
  }

  // A project's advice switched push on (kill switch, rollout, override) while a
  // connection is open or opening without it: without a refresh it would be shown
  // live yet never poked, and polled only at the long interval.
  _watchOnOpenConnection(out) {
    if (this.conn === null || this.token === null) return; // the next connection subscribes to it
    if (this.push === PUSH_STATE.HEALTHY || this.push === PUSH_STATE.DEGRADED) {
      out.push({ type: "push_refresh", conn: this.conn, token: this.token, projects: this._subscription() });
    } else if (this.push === PUSH_STATE.CONNECTING) {
      this.refreshWhenSubscribed = true;
    }
  }

  _subscribed(now, input, out) {
    if (input.conn !== this.conn || !OPEN.includes(this.push)) return;
    this.lastSeen = now;
    if (this.subscribedAt === null) this.subscribedAt = now;
    this.connectDeadline = null;
    if (typeof input.heartbeat === "number" && input.heartbeat > 0) this.heartbeat = input.heartbeat;
    if (this.drainAt === null) this.push = SERVER_STATES[input.state || "ok"];
    if (this.refreshWhenSubscribed) {
      this.refreshWhenSubscribed = false;
      this._watchOnOpenConnection(out);
    }
    const versions = input.projects || {};
    // Config order, not the answer's: draws must not depend on key order.
    for (const p of this.projects.values()) {
      const v = versions[String(p.id)];
      if (v !== undefined && v !== null && this._usesPush(p)) this._announce(now, p, v);
    }
  }

  _tokenFetched(now, input, out) {
    this.tokenFetching = false;
    this.tokenFailures = 0;
    this.token = input.token;
    const life = Math.max(0, input.expires_at - now);
    this.tokenRefreshAt = input.expires_at - Math.min(this.cfg.token_refresh_margin, life / 2);
    if (this.conn !== null && (this.push === PUSH_STATE.HEALTHY || this.push === PUSH_STATE.DEGRADED)) {
      out.push({ type: "push_refresh", conn: this.conn, token: input.token, projects: this._subscription() });
    }
  }

  _tokenFailed(now) {
    this.tokenFetching = false;
    if (this.push === PUSH_STATE.WAITING) {
      this.pushFailures += 1;
      this.connectAt = now + this._pushBackoff(this.pushFailures);
    } else if (OPEN.includes(this.push)) {
      this.tokenFailures += 1;
      this.tokenRefreshAt = now + this._pushBackoff(this.tokenFailures);
    }
  }

  // ----- timers -------------------------------------------------------------

  _pushTimers(now, out) {
    if (!this._pushWanted()) {
      if (OPEN.includes(this.push) && this.conn !== null) out.push({ type: "close_push", conn: this.conn });
      this.push = PUSH_STATE.OFF;
      this.conn = null;
      this.drainAt = null;
      this.subscribedAt = null;
      return;
    }
    if (this.push === PUSH_STATE.OFF) {
      this.push = PUSH_STATE.WAITING;
      this.connectAt = now;
    }
    if (OPEN.includes(this.push) && !this.tokenFetching && this.tokenRefreshAt !== null && now >= this.tokenRefreshAt) {
      this.tokenFetching = true;
      out.push({ type: "refresh_token" });
    }
    if (this.push === PUSH_STATE.CONNECTING && this.connectDeadline !== null) {
      if (now >= this.connectDeadline) this._losePush(now, out, true);
    } else if (SUBSCRIBED.includes(this.push)) {
      if (now >= this._overdueAt()) {
        this._losePush(now, out, true);
      } else if (this.drainAt !== null && now >= this.drainAt && this.conn !== null) {
        out.push({ type: "close_push", conn: this.conn });
        this.conn = null;
        this.drainAt = null;
        this.subscribedAt = null;
        this.push = PUSH_STATE.WAITING;
        this.connectAt = now;
      }
    }
    if (this.push === PUSH_STATE.WAITING && this.connectAt !== null && now >= this.connectAt) {
      if (this.token !== null && this.tokenRefreshAt !== null && now < this.tokenRefreshAt) {
        this.connSeq += 1;
        this.conn = this.connSeq;
        this.push = PUSH_STATE.CONNECTING;
        this.connectDeadline = now + this.cfg.connect_timeout;
        this.subscribedAt = null;
        this.refreshWhenSubscribed = false;
        this.lastSeen = now;
        out.push({ type: "connect_push", conn: this.conn, token: this.token, projects: this._subscription() });
      } else if (!this.tokenFetching) {
        this.tokenFetching = true;
        out.push({ type: "refresh_token" });
      }
    }
  }

  _updateHealth(now) {
    for (const p of this.projects.values()) {
      if (this._healthy(p)) {
        if (p.healthySince === null) {
          p.healthySince = now;
          if (p.longAt !== null) {
            // Push is back before the brought-forward poll: back to the original
            // long-interval time (see the Python controller for why this is safe).
            p.nextPollAt = p.longAt;
            p.nextLong = true;
            p.longAt = null;
          }
        }
        continue;
      }
      p.healthySince = null;
      if (p.nextLong && p.nextPollAt !== null) {
        // Full jitter: a whole fleet learns at once; spread its first polls evenly.
        const candidate = now + this.rand() * p.advice.fallback_interval;
        p.longAt = p.nextPollAt;
        p.nextPollAt = Math.min(p.nextPollAt, candidate);
        p.nextLong = false;
      }
    }
  }

  _projectTimers(now, out) {
    const polls = new Map();
    for (const p of this.projects.values()) {
      const due = p.due();
      if (due === null || due > now) continue;
      this._issue(p);
      if (p.needsSnapshot || p.version === null) {
        out.push({ type: "reload_snapshot", project: p.id });
      } else {
        polls.set(p.id, p.version);
        this.polls += 1;
      }
    }
    if (polls.size > 0) out.push({ type: "poll", projects: versionsObject(polls) });
  }

  _telemetryTimer(now, out) {
    if (this.telemetryAt !== null && now >= this.telemetryAt) {
      this.telemetryAt = now + this.cfg.telemetry_interval;
      const worth = this.samples.length > 0 || this.missed > 0 || this.pollErrors > 0;
      if (worth || now - this.reportedAt >= this.cfg.telemetry_idle_interval) {
        this.reportedAt = now;
        this._flushTelemetry(out);
      }
    }
  }

  _reportChanges(now, out) {
    for (const p of this.projects.values()) {
      const due = p.due();
      if (due !== null && due !== p.reportedDue) out.push({ type: "poll_at", project: p.id, at: due });
      p.reportedDue = due;
    }
    const connect = this._connectDue();
    if (connect !== null && connect > now && connect !== this.reportedConnect) {
      out.push({ type: "connect_push_at", at: connect });
    }
    this.reportedConnect = connect;
    const status = this._computeStatus();
    if (status !== this.reportedStatus) {
      this.reportedStatus = status;
      out.push({ type: "status", status });
    }
  }

  // ----- helpers ------------------------------------------------------------

  _issue(p) {
    p.inFlight = true;
    p.nextPollAt = null;
    p.nextLong = false;
    p.longAt = null;
    p.soonAt = null;
    p.announcedAtSend = p.announced;
  }

  _scheduleRegular(now, p) {
    const healthy = this._healthy(p);
    const interval = healthy ? p.advice.interval : p.advice.fallback_interval;
    p.nextPollAt = now + jittered(interval, p.advice.jitter, this.rand());
    p.nextLong = healthy;
    p.longAt = null;
    p.soonAt = null;
  }

  _fail(now, p, retryAfter) {
    p.failures += 1;
    const c = this.cfg;
    let delay = fullJitter(p.failures, c.poll_backoff_base, c.poll_backoff_cap, c.poll_backoff_floor, this.rand());
    if (retryAfter !== null && retryAfter !== undefined) {
      delay = Math.max(delay, Math.min(retryAfter, c.retry_after_cap));
    }
    p.nextPollAt = now + delay;
    p.nextLong = false;
    p.longAt = null;
    p.soonAt = null;
  }

  _announce(now, p, version) {
    p.announced = Math.max(p.announced, version);
    if (p.version === null || p.needsSnapshot || p.inFlight || p.failures > 0) return;
    if (p.announced <= p.version) p.soonAt = null;
    else if (p.soonAt === null) p.soonAt = now + this.rand() * this.cfg.poke_delay;
  }

  _apply(now, p, events, via, out) {
    out.push({ type: "apply_events", project: p.id, events });
    for (const e of events) {
      const how = via || (e.version <= p.announced ? "poke" : "poll");
      this._sample({ project: p.id, staleness_ms: stalenessMs(now, e.ts), via: how }, out);
    }
    p.version = events[events.length - 1].version;
  }

  _isMissedPoke(now, p, fresh) {
    const since = p.healthySince;
    if (since === null || !this._healthy(p)) return false;
    const grace = this.cfg.miss_grace;
    return fresh.some((e) => e.version > p.announced && since + grace <= e.ts && e.ts <= now - grace);
  }

  _sample(sample, out) {
    this.samples.push(sample);
    if (this.samples.length >= this.cfg.telemetry_max_samples) this._flushTelemetry(out);
  }

  _flushTelemetry(out) {
    const body = {
      samples: this.samples,
      missed_pokes: this.missed,
      polls: this.polls,
      pokes: this.pokes,
      poll_errors: this.pollErrors,
    };
    if (body.samples.length === 0 && !body.missed_pokes && !body.polls && !body.pokes && !body.poll_errors) return;
    out.push({ type: "report_telemetry", body });
    this.samples = [];
    this.missed = 0;
    this.polls = 0;
    this.pokes = 0;
    this.pollErrors = 0;
  }

  _losePush(now, out, close) {
    if (close && this.conn !== null) out.push({ type: "close_push", conn: this.conn });
    if (this.subscribedAt !== null && now - this.subscribedAt >= this.cfg.push_stable_after) {
      this.pushFailures = 0;
    }
    if (this.drainAt !== null) {
      this.connectAt = Math.max(now, this.drainAt);
    } else {
      this.pushFailures += 1;
      this.connectAt = now + this._pushBackoff(this.pushFailures);
    }
    this.conn = null;
    this.drainAt = null;
    this.subscribedAt = null;
    this.connectDeadline = null;
    this.push = PUSH_STATE.WAITING;
  }

  _pushBackoff(attempt) {
    const c = this.cfg;
    return fullJitter(attempt, c.push_backoff_base, c.push_backoff_cap, c.push_backoff_floor, this.rand());
  }

  _overdueAt() {
    return this.lastSeen + this.heartbeat * this.cfg.heartbeat_timeout_factor;
  }

  _connectDue() {
    if (this.push === PUSH_STATE.WAITING) return this.connectAt;
    if (this.push === PUSH_STATE.DRAINING) return this.drainAt;
    return null;
  }

  _subscription() {
    const out = {};
    for (const p of this.projects.values()) if (this._usesPush(p)) out[String(p.id)] = p.version || 0;
    return out;
  }

  _usesPush(p) {
    return Boolean(this.cfg.push) && Boolean(p.advice.push) && !p.revoked;
  }

  /** Access revoked: never pushed again (left out of subscriptions); poll it at once. */
  _revoked(now, input) {
    if (input.conn !== this.conn || !OPEN.includes(this.push)) return;
    this.lastSeen = now;
    const p = this.projects.get(input.project);
    if (p === undefined || p.revoked) return;
    p.revoked = true;
    if (p.version !== null && !p.inFlight && p.failures === 0) p.soonAt = now;
  }

  _pushWanted() {
    for (const p of this.projects.values()) if (this._usesPush(p)) return true;
    return false;
  }

  _healthy(p) {
    return this.push === PUSH_STATE.HEALTHY && this._usesPush(p);
  }

  _computeStatus() {
    let worst = STATUS.LIVE;
    for (const p of this.projects.values()) {
      let s;
      if (p.failures > 0) s = STATUS.OFFLINE;
      else if (!this._usesPush(p)) s = STATUS.PUSH_OFF;
      else if (this.push !== PUSH_STATE.HEALTHY) s = STATUS.PUSH_UNAVAILABLE;
      else s = STATUS.LIVE;
      if (STATUS_RANK.indexOf(s) > STATUS_RANK.indexOf(worst)) worst = s;
    }
    return worst;
  }
}

/**
 * Map a push server message (tidings.protocol.push) to an input; null for `error`
 * (a close with its code follows) and anything malformed.
 */
export function fromPushMessage(conn, body) {
  if (body === null || typeof body !== "object") return null;
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  switch (body.type) {
    case "poke": {
      const project = num(body.project);
      const version = num(body.version);
      const ts = num(body.ts);
      if (project === null || version === null || ts === null) return null;
      const input = { type: "poke", conn, project, version, ts };
      if (Array.isArray(body.events)) input.events = body.events;
      return input;
    }
    case "heartbeat":
      return { type: "push_heartbeat", conn, state: body.state || "ok" };
    case "subscribed":
      return {
        type: "push_subscribed",
        conn,
        projects: body.projects && typeof body.projects === "object" ? body.projects : {},
        state: body.state || "ok",
        heartbeat: num(body.heartbeat),
      };
    case "drain":
      return { type: "push_drain", conn, reconnect_after: num(body.reconnect_after) ?? 0 };
    case "token_expiring":
      return num(body.expires_at) === null ? null : { type: "push_token_expiring", conn, expires_at: body.expires_at };
    case "revoked":
      return Number.isInteger(body.project) ? { type: "push_revoked", conn, project: body.project } : null;
    default:
      return null;
  }
}

// The browser client: carries out the sync controller's actions with fetch, WebSocket,
// EventSource or Socket.IO, and setTimeout. Every decision (when to poll, reconnect,
// back off, refresh the token) is sync-controller.js's; this module only moves bytes
// and reads the clock. ES module, no build step; types in tidings-client.d.ts.
// The npm package `tidings-client` is this folder (README.md); the tracker's board
// loads the same files.
//
//   const client = new TidingsClient({ projects: [7], snapshots: { 7: boardSnapshot }, applyEvent });
//   client.addEventListener("apply", (e) => board.render(e.detail.snapshot));
//   client.addEventListener("status", (e) => badge.show(e.detail.status));
//   await client.start();

import { SyncController, fromPushMessage, DEFAULT_ADVICE } from "./sync-controller.js";

/** Events asked for per poll (the app's default page). */
export const POLL_LIMIT = 100;
/** Milliseconds for any HTTP request; a push connection's opening is the controller's (connect_timeout). */
export const REQUEST_TIMEOUT_MS = 10000;
/** Push message types a server may send (tidings.protocol.push.ServerType). */
export const SERVER_TYPES = ["subscribed", "poke", "heartbeat", "drain", "token_expiring", "revoked", "error", "close"];

/**
 * Where the app answers (docs/PROTOCOL.md section 1); `{project}` stands for a project id.
 * `poll: null` polls each project on its own (an app without the several-projects form).
 */
export const DEFAULT_ENDPOINTS = Object.freeze({
  config: "/api/client-config",
  token: "/api/push/token",
  snapshot: "/api/projects/{project}",
  events: "/api/projects/{project}/events",
  poll: "/api/poll",
  telemetry: "/api/telemetry",
});
/** The npm name of the optional peer the Socket.IO transport imports when no `io` is given. */
export const SOCKET_IO_MODULE = "socket.io-client";

const CSRF_COOKIE = "tidings_csrf";
const CSRF_HEADER = "X-Tidings-CSRF";
const ADVICE_HEADER = "Tidings-Advice";
const VERSION_HEADER = "X-Tidings-Project-Version";
/** Error codes in a push `error` message that stand for a close code. */
const ERROR_CLOSE_CODES = { bad_token: 4401, unauthorized: 4401, forbidden: 4403 };

/** Parse `Tidings-Advice: push=1, interval=60, fallback=5, jitter=0.2`. */
export function parseAdviceHeader(value) {
  const fields = {};
  for (const part of value.split(",")) {
    const [k, v] = part.trim().split("=");
    fields[k] = v;
  }
  return {
    push: fields.push === "1",
    interval: Number(fields.interval),
    fallback_interval: Number(fields.fallback),
    jitter: Number(fields.jitter),
  };
}

function readCookie(name) {
  if (typeof document === "undefined" || !document.cookie) return null;
  for (const part of document.cookie.split(";")) {
    const [k, ...rest] = part.trim().split("=");
    if (k === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** Without an applyEvent option the client keeps only the version; the page applies events. */
function keepVersion(snapshot, event) {
  snapshot.version = event.version;
}

/**
 * socket.io-client's `io`: the option, a page's global (its <script> bundle), or the
 * module itself, imported on first use. The specifier is a variable so that bundlers
 * leave it alone: an app that bundles passes `io`; Node and import maps resolve it.
 */
export async function loadSocketIo(given = globalThis.io) {
  if (typeof given === "function") return given;
  let module;
  try {
    const specifier = SOCKET_IO_MODULE;
    module = await import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
  } catch (err) {
    throw new Error(
      `tidings-client: the "socketio" transport needs ${SOCKET_IO_MODULE}, which could not be imported ` +
        `(${err && err.message ? err.message : err}). Install it (npm install ${SOCKET_IO_MODULE}), map it in ` +
        `the page's import map, or pass its io function as the \`io\` option.`,
    );
  }
  const io = module.io || (module.default && (module.default.io || module.default));
  if (typeof io !== "function") throw new Error(`tidings-client: ${SOCKET_IO_MODULE} has no io function`);
  return io;
}

function expand(template, project) {
  return template.replaceAll("{project}", String(project));
}

function withQuery(url, pairs) {
  const query = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
  return url + (url.includes("?") ? "&" : "?") + query;
}

export class TidingsClient extends EventTarget {
  constructor(options) {
    super();
    const g = globalThis;
    this.options = {
      baseUrl: "",
      endpoints: {},
      transport: "ws",
      pushUrl: null,
      apiToken: null,
      snapshots: {},
      controller: {},
      fetch: g.fetch ? g.fetch.bind(g) : null,
      WebSocket: g.WebSocket,
      EventSource: g.EventSource,
      io: g.io,
      applyEvent: keepVersion,
      now: () => Date.now() / 1000,
      rand: Math.random,
      ...options,
    };
    this._endpoints = { ...DEFAULT_ENDPOINTS, ...this.options.endpoints };
    this.controller = null;
    this._snapshots = new Map();
    for (const [p, s] of Object.entries(this.options.snapshots)) this._snapshots.set(Number(p), s);
    this._push = new Map();
    this._timer = null;
    this._stopped = false;
    this._pushUrl = this.options.pushUrl;
    this._transport = this.options.transport;
    if (!["ws", "sse", "socketio"].includes(this._transport)) {
      throw new Error(`tidings-client: transport must be "ws", "sse" or "socketio", not ${JSON.stringify(this._transport)}`);
    }
    this._io = null;
  }

  /** The state at the version last applied (null before its snapshot is loaded). */
  snapshot(project) {
    return this._snapshots.get(Number(project)) ?? null;
  }

  get status() {
    return this.controller ? this.controller.status : null;
  }

  /**
   * Read the client configuration, then follow the projects until stop(). Rejects when
   * the Socket.IO transport is asked for and socket.io-client cannot be found.
   */
  async start() {
    if (this._transport === "socketio") this._io = await loadSocketIo(this.options.io);
    const { advice, push } = await this._configure();
    const versions = {};
    for (const [p, s] of this._snapshots) versions[String(p)] = s.version;
    this.controller = new SyncController(
      { projects: this.options.projects.map(Number), versions, push, advice, ...this.options.controller },
      this.options.rand,
    );
    this._feed({ type: "start" });
  }

  stop() {
    this._stopped = true;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    for (const connection of this._push.values()) connection.close();
    this._push.clear();
  }

  // ----- plumbing -------------------------------------------------------------

  // push.enabled in client-config already folds in the kill switch, which the advice
  // carries too and which may flip back on: with a URL for the transport, push stays
  // possible and the latest advice decides.
  async _configure() {
    let advice = DEFAULT_ADVICE;
    try {
      const body = await this._json("GET", this._endpoints.config);
      if (body) {
        advice = body.advice || advice;
        if (this._pushUrl === null) {
          const urls = (body.push && body.push.urls) || {};
          const key = this._transport === "socketio" ? "socketio" : this._transport;
          if (typeof urls[key] === "string" && urls[key]) {
            const url = new URL(urls[key], this._absolute("/"));
            // A relative "/ws" resolves against the page: give it the WebSocket scheme.
            if (this._transport === "ws" && url.protocol.startsWith("http")) url.protocol = url.protocol.replace("http", "ws");
            this._pushUrl = url.href;
          }
        }
      }
    } catch (err) {
      // Without it, poll only: the poll channel works even when the rest does not.
    }
    return { advice, push: this._pushUrl !== null };
  }

  _absolute(path) {
    const base = this.options.baseUrl || (typeof location !== "undefined" ? location.origin : "http://localhost");
    return new URL(path, base.endsWith("/") ? base : base + "/").href;
  }

  _request(method, path, { body, headers = {} } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (this.options.apiToken) h.Authorization = `Bearer ${this.options.apiToken}`;
    if (method !== "GET") {
      const csrf = readCookie(CSRF_COOKIE);
      if (csrf) h[CSRF_HEADER] = csrf;
      h["Content-Type"] = "application/json";
    }
    return this.options.fetch(this._absolute(path), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  }

  async _json(method, path, init) {
    const response = await this._request(method, path, init);
    if (!response.ok) return null;
    return response.json();
  }

  /** Feed one input and carry out the actions; then re-arm the single timer. */
  _feed(input) {
    if (this._stopped || this.controller === null) return;
    const actions = this.controller.feed(this.options.now(), input);
    for (const action of actions) this._execute(action);
    this._arm();
  }

  _arm() {
    if (this._stopped) return;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    const deadline = this.controller.nextDeadline();
    if (deadline === null) return;
    const delay = Math.max(0, (deadline - this.options.now()) * 1000);
    this._timer = setTimeout(() => {
      this._timer = null;
      this._feed({ type: "tick" });
    }, delay);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _execute(action) {
    switch (action.type) {
      case "poll":
        this._poll(action.projects);
        break;
      case "reload_snapshot":
        this._reload(action.project);
        break;
      case "apply_events": {
        const snapshot = this._snapshots.get(action.project) ?? null;
        if (snapshot) for (const e of action.events) this.options.applyEvent(snapshot, e);
        this._emit("apply", { project: action.project, events: action.events, snapshot });
        break;
      }
      case "refresh_token":
        this._fetchToken();
        break;
      case "connect_push":
        this._connect(action.conn, action.token, action.projects);
        break;
      case "push_refresh": {
        const c = this._push.get(action.conn);
        if (c) c.refresh(action.token, action.projects);
        break;
      }
      case "close_push": {
        const c = this._push.get(action.conn);
        this._push.delete(action.conn);
        if (c) c.close();
        break;
      }
      case "status":
        this._emit("status", { status: action.status });
        break;
      case "report_telemetry":
        this._request("POST", this._endpoints.telemetry, { body: action.body }).catch(() => {});
        break;
      default:
        break; // poll_at, connect_push_at: the timer follows controller.nextDeadline()
    }
  }

  _failed(project, response) {
    const raw = response ? response.headers.get("Retry-After") : null;
    const retry = raw === null ? null : Number(raw);
    return {
      type: "poll_failed",
      project,
      status: response ? response.status : null,
      retry_after: Number.isFinite(retry) ? Math.max(0, retry) : null,
    };
  }

  async _poll(projects) {
    const ids = Object.keys(projects).map(Number);
    try {
      if (ids.length === 1 || !this._endpoints.poll) {
        await Promise.all(ids.map((p) => this._pollOne(p, projects[String(p)])));
        return;
      }
      const pairs = ids.map((p) => ["p", `${p}:${projects[String(p)]}`]);
      pairs.push(["limit", String(POLL_LIMIT)]);
      const response = await this._request("GET", withQuery(this._endpoints.poll, pairs));
      if (!response.ok) {
        for (const p of ids) this._feed(this._failed(p, response));
        return;
      }
      const results = (await response.json()).projects || {};
      for (const p of ids) {
        const body = results[String(p)];
        if (!body || body.error) this._feed({ type: "poll_failed", project: p, status: 404 });
        else this._feed(this._result(p, body));
      }
    } catch (err) {
      for (const p of ids) this._feed(this._failed(p, null));
    }
  }

  /** One project's events since `since`, conditional on the version held (304 when none). */
  async _pollOne(p, since) {
    try {
      const path = withQuery(expand(this._endpoints.events, p), [["since", String(since)], ["limit", String(POLL_LIMIT)]]);
      const response = await this._request("GET", path, { headers: { "If-None-Match": `"${since}"` } });
      if (response.status === 304) {
        const header = response.headers.get(ADVICE_HEADER);
        const version = response.headers.get(VERSION_HEADER);
        this._feed({
          type: "poll_result",
          project: p,
          version: version ? Number(version) : since,
          events: [],
          advice: header ? parseAdviceHeader(header) : undefined,
        });
      } else if (response.ok) {
        this._feed(this._result(p, await response.json()));
      } else {
        this._feed(this._failed(p, response));
      }
    } catch (err) {
      this._feed(this._failed(p, null));
    }
  }

  _result(project, body) {
    return {
      type: "poll_result",
      project,
      version: body.version,
      events: body.events || [],
      has_more: Boolean(body.has_more),
      reload: body.reload ?? null,
      advice: body.advice || undefined,
    };
  }

  async _reload(project) {
    try {
      const response = await this._request("GET", expand(this._endpoints.snapshot, project));
      if (!response.ok) {
        this._feed(this._failed(project, response));
        return;
      }
      const snapshot = await response.json();
      this._snapshots.set(project, snapshot);
      this._emit("reload", { project, snapshot });
      this._feed({ type: "snapshot_loaded", project, version: snapshot.version });
    } catch (err) {
      this._feed(this._failed(project, null));
    }
  }

  async _fetchToken() {
    try {
      const response = await this._request("POST", this._endpoints.token, {
        body: { projects: this.options.projects.map(Number) },
      });
      if (!response.ok) {
        this._feed({ type: "token_failed", status: response.status });
        return;
      }
      const body = await response.json();
      this._feed({ type: "token_fetched", token: body.token, expires_at: body.expires_at });
    } catch (err) {
      this._feed({ type: "token_failed", status: null });
    }
  }

  _connect(conn, token, projects) {
    const report = (input) => {
      if (this._push.get(conn) === connection) this._feed(input);
    };
    const connection =
      this._transport === "socketio"
        ? socketIoConnection(this._io, this._pushUrl, conn, token, projects, report)
        : (this._transport === "sse" ? sseConnection : webSocketConnection)(this.options, this._pushUrl, conn, token, projects, report);
    this._push.set(conn, connection);
  }
}

function messageHandler(conn, report, state) {
  return (text) => {
    let body;
    try {
      body = typeof text === "string" ? JSON.parse(text) : text;
    } catch (err) {
      return;
    }
    if (body && body.type === "error") state.closeCode = ERROR_CLOSE_CODES[body.error] ?? state.closeCode;
    // SSE has no close frame: a `close` message carries the code before the stream ends.
    if (body && body.type === "close" && typeof body.code === "number") state.closeCode = body.code;
    const input = fromPushMessage(conn, body);
    if (input) report(input);
  };
}

function subscribeMessage(type, token, projects) {
  return { type, token, projects };
}

/** `/ws`: the subscribe is the first text frame; `refresh` goes on the same socket. */
function webSocketConnection(options, url, conn, token, projects, report) {
  const ws = new options.WebSocket(url);
  const state = { closeCode: null, closed: false };
  const onMessage = messageHandler(conn, report, state);
  ws.onopen = () => {
    report({ type: "push_connected", conn });
    ws.send(JSON.stringify(subscribeMessage("subscribe", token, projects)));
  };
  ws.onmessage = (event) => onMessage(event.data);
  // An error is always followed by a close event, which reports it. The listener must
  // exist all the same: Node's `ws` package throws an unhandled "error" otherwise
  // (a refused connection would end the process).
  ws.onerror = () => {};
  ws.onclose = (event) => {
    if (state.closed) return;
    state.closed = true;
    report({ type: "push_closed", conn, code: event.code === 1006 ? state.closeCode : event.code });
  };
  return {
    refresh(newToken, versions) {
      if (ws.readyState === 1) ws.send(JSON.stringify(subscribeMessage("refresh", newToken, versions)));
    },
    close() {
      state.closed = true;
      ws.close(1000);
    },
  };
}

/**
 * `/sse?token=...&p=7:42`: one event per message (named or not). EventSource retries on
 * its own; the controller owns reconnecting, so the first error closes it for good.
 * A refresh opens a second stream with the new token and drops the first once it speaks.
 */
function sseConnection(options, url, conn, token, projects, report) {
  const state = { closeCode: null, closed: false };
  const onMessage = messageHandler(conn, report, state);
  const open = (tok, versions, replacing) => {
    const pairs = [["token", tok], ...Object.entries(versions).map(([p, v]) => ["p", `${p}:${v}`])];
    const es = new options.EventSource(withQuery(url, pairs));
    let opened = false;
    const listener = (event) => {
      if (replacing) {
        replacing.close();
        replacing = null;
      }
      onMessage(event.data);
    };
    es.onopen = () => {
      if (!opened) report({ type: "push_connected", conn });
      opened = true;
    };
    for (const type of ["message", ...SERVER_TYPES]) es.addEventListener(type, listener);
    es.onerror = () => {
      es.close();
      if (es === current && !state.closed) {
        state.closed = true;
        report({ type: "push_closed", conn, code: state.closeCode });
      }
    };
    return es;
  };
  let current = open(token, projects, null);
  return {
    refresh(newToken, versions) {
      current = open(newToken, versions, current);
    },
    close() {
      state.closed = true;
      current.close();
    },
  };
}

/**
 * Socket.IO at /socket.io/: each message is an event named by its type. The subscription
 * rides in the CONNECT `auth` payload ({token, projects}); `refresh` is an event.
 */
function socketIoConnection(io, url, conn, token, projects, report) {
  const state = { closeCode: null, closed: false };
  const onMessage = messageHandler(conn, report, state);
  const socket = io(url, {
    path: "/socket.io/",
    auth: { token, projects },
    transports: ["websocket"],
    reconnection: false,
    timeout: REQUEST_TIMEOUT_MS,
  });
  socket.on("connect", () => report({ type: "push_connected", conn }));
  for (const type of SERVER_TYPES) socket.on(type, (body) => onMessage({ ...(body || {}), type }));
  const closed = (code) => {
    if (state.closed) return;
    state.closed = true;
    report({ type: "push_closed", conn, code });
  };
  socket.on("disconnect", () => closed(state.closeCode));
  socket.on("connect_error", (err) => {
    const code = err && err.data && typeof err.data.code === "number" ? err.data.code : state.closeCode;
    closed(code);
    socket.close();
  });
  return {
    refresh(newToken, versions) {
      socket.emit("refresh", subscribeMessage("refresh", newToken, versions));
    },
    close() {
      state.closed = true;
      socket.close();
    },
  };
}

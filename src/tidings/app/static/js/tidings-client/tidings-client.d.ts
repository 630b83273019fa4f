// Types for tidings-client.js (the browser and Node driver); sync-controller.d.ts has
// the rules' own. The npm package `tidings-client` (README.md).

export type Status = "live" | "polling_push_off" | "polling_push_unavailable" | "offline";
export type TransportName = "ws" | "sse" | "socketio";

export interface Advice {
  push: boolean;
  /** Seconds between polls while push is healthy. */
  interval: number;
  /** Seconds between polls while push is off, down, degraded or draining. */
  fallback_interval: number;
  /** Each interval is multiplied by a uniform factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

export interface TidingsEvent {
  version: number;
  type: string;
  data: Record<string, unknown>;
  actor: number;
  /** Commit time, seconds since the epoch. */
  ts: number;
}

/** A project's state as the app's snapshot endpoint answers it: any object with its `version`. */
export interface Snapshot {
  version: number;
  [field: string]: unknown;
}

/** The app's URLs (docs/PROTOCOL.md section 1); `{project}` stands for a project id. */
export interface Endpoints {
  /** GET: push URLs and advice (section 1.5). Default "/api/client-config". */
  config?: string;
  /** POST {projects}: a push token (section 1.5). Default "/api/push/token". */
  token?: string;
  /** GET: a project's snapshot (section 1.1). Default "/api/projects/{project}". */
  snapshot?: string;
  /** GET ?since=V&limit=N: events since a version (section 1.2). Default "/api/projects/{project}/events". */
  events?: string;
  /** GET ?p=7:42&p=9:13: several projects at once (section 1.3); null polls each on its own. Default "/api/poll". */
  poll?: string | null;
  /** POST: freshness telemetry (section 1.7). Default "/api/telemetry". */
  telemetry?: string;
}

/** socket.io-client's `io` (only what the client uses of it). */
export type SocketIoFactory = (url: string, options: Record<string, unknown>) => unknown;

/** Overrides of the controller's defaults (tests/vectors/sync/README.md). */
export interface ControllerOptions {
  push?: boolean;
  poke_delay?: number;
  poll_backoff_base?: number;
  poll_backoff_cap?: number;
  poll_backoff_floor?: number;
  retry_after_cap?: number;
  push_backoff_base?: number;
  push_backoff_cap?: number;
  push_backoff_floor?: number;
  connect_timeout?: number;
  heartbeat?: number;
  heartbeat_timeout_factor?: number;
  push_stable_after?: number;
  token_refresh_margin?: number;
  lag_retries?: number;
  lag_retry_delay?: number;
  telemetry_interval?: number;
  telemetry_max_samples?: number;
  miss_grace?: number;
}

export interface TidingsClientOptions {
  /** Projects to follow. */
  projects: number[];
  /** The app's origin; default: the page's. */
  baseUrl?: string;
  /**
   * Push transport. Default "ws". "socketio" uses the `io` option, else a global `io`, else
   * imports socket.io-client (an optional peer dependency); start() rejects when none is found.
   */
  transport?: TransportName;
  /** Push endpoint; default: the one GET /api/client-config names for the transport. */
  pushUrl?: string | null;
  /** An API token (Authorization: Bearer); default: the session cookie. */
  apiToken?: string | null;
  /** Snapshots the page came with, by project id: not loaded again at start. */
  snapshots?: Record<number, Snapshot>;
  /**
   * Apply one event to a held snapshot, in place (events come contiguous and in order).
   * Default: only `snapshot.version = event.version`; the page applies `apply` events itself.
   */
  applyEvent?: (snapshot: Snapshot, event: TidingsEvent) => void;
  /** The app's URLs, where they differ from the defaults. */
  endpoints?: Endpoints;
  controller?: ControllerOptions;
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  io?: SocketIoFactory;
  /** Seconds since the epoch (the clock staleness is measured with). */
  now?: () => number;
  rand?: () => number;
}

export interface ApplyDetail {
  project: number;
  /** Contiguous, in order, the first one following the version held before. */
  events: TidingsEvent[];
  /** The state after them, or null when no snapshot is held. */
  snapshot: Snapshot | null;
}

export interface ReloadDetail {
  project: number;
  snapshot: Snapshot;
}

export interface StatusDetail {
  status: Status;
}

export interface TidingsClientEventMap {
  apply: CustomEvent<ApplyDetail>;
  reload: CustomEvent<ReloadDetail>;
  status: CustomEvent<StatusDetail>;
}

export declare const POLL_LIMIT: number;
export declare const REQUEST_TIMEOUT_MS: number;
export declare const SERVER_TYPES: string[];
export declare const DEFAULT_ENDPOINTS: Readonly<Required<Endpoints>>;
export declare const SOCKET_IO_MODULE: string;

/** socket.io-client's `io`: `given` if a function, else imported; rejects with what to do when missing. */
export declare function loadSocketIo(given?: unknown): Promise<SocketIoFactory>;

export declare function parseAdviceHeader(value: string): Advice;

export declare class TidingsClient extends EventTarget {
  constructor(options: TidingsClientOptions);
  /** Read the client configuration, then follow the projects until stop(); rejects when "socketio" has no socket.io-client. */
  start(): Promise<void>;
  stop(): void;
  /** The state at the version last applied (null before its snapshot is loaded). */
  snapshot(project: number): Snapshot | null;
  readonly status: Status | null;
  addEventListener<K extends keyof TidingsClientEventMap>(
    type: K,
    listener: (event: TidingsClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof TidingsClientEventMap>(
    type: K,
    listener: (event: TidingsClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

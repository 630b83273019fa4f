// Types for tidings-client.js (the browser driver) and sync-controller.js (its rules).

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

export interface Snapshot {
  id: number;
  name: string;
  version: number;
  next_id: number;
  members: Array<{ user_id: number; role: string; name: string }>;
  stories: Array<Record<string, unknown>>;
}

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
  /** Push transport; "socketio" needs socket.io-client's `io` (else "ws" is used). Default "ws". */
  transport?: TransportName;
  /** Push endpoint; default: the one GET /api/client-config names for the transport. */
  pushUrl?: string | null;
  /** An API token (Authorization: Bearer); default: the session cookie. */
  apiToken?: string | null;
  /** Snapshots the page came with, by project id: not loaded again at start. */
  snapshots?: Record<number, Snapshot>;
  controller?: ControllerOptions;
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  io?: (url: string, options: Record<string, unknown>) => unknown;
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

export declare function parseAdviceHeader(value: string): Advice;

export declare class TidingsClient extends EventTarget {
  constructor(options: TidingsClientOptions);
  /** Read /api/client-config, then follow the projects until stop(). */
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

// Types for sync-controller.js: the client's rules as a state machine (docs/PROTOCOL.md
// section 5; inputs and actions in tests/vectors/sync/README.md). No I/O: feed(now, input)
// returns the actions a driver must carry out.

import type { Advice, ControllerOptions, Status } from "./tidings-client.js";

export type PushState = "off" | "waiting" | "connecting" | "healthy" | "degraded" | "draining";

export declare const STATUS: Readonly<{ LIVE: "live"; PUSH_OFF: "polling_push_off"; PUSH_UNAVAILABLE: "polling_push_unavailable"; OFFLINE: "offline" }>;
export declare const PUSH_STATE: Readonly<Record<"OFF" | "WAITING" | "CONNECTING" | "HEALTHY" | "DEGRADED" | "DRAINING", PushState>>;
/** Close codes after which the token is dropped and a new one fetched. */
export declare const TOKEN_CLOSE_CODES: readonly number[];
export declare const DEFAULT_ADVICE: Readonly<Advice>;
export declare const DEFAULTS: Readonly<Required<ControllerOptions> & { telemetry_idle_interval: number }>;
export declare const MAX_STALENESS_MS: number;

/** An input (`{type: "start" | "tick" | "poll_result" | "poke" | ..., ...}`): the vectors' README lists them. */
export interface ControllerInput {
  type: string;
  [field: string]: unknown;
}

/** An action (`{type: "poll" | "connect_push" | "apply_events" | "status" | ..., ...}`). */
export interface ControllerAction {
  type: string;
  [field: string]: unknown;
}

export interface ControllerConfig extends ControllerOptions {
  projects: number[];
  /** Versions already held, by project id; the others are loaded at start. */
  versions?: Record<string, number | null>;
  advice?: Partial<Advice>;
}

export declare class SyncController {
  constructor(config: ControllerConfig, rand: () => number);
  /** Feed one input at `now` (seconds since the epoch); the actions to carry out, in order. */
  feed(now: number, input: ControllerInput): ControllerAction[];
  /** When the next `tick` is due (seconds since the epoch), or null. */
  nextDeadline(): number | null;
  readonly status: Status | null;
  version(project: number): number | null;
  inspect(): { status: Status | null; versions: Record<string, number | null>; push: PushState; deadline: number | null };
}

/** interval times a uniform factor in [1 - jitter, 1 + jitter]. */
export declare function jittered(interval: number, jitter: number, r: number): number;
/** Delay before retry `attempt`: uniform in [floor, min(cap, base * 2^(attempt-1))]. */
export declare function fullJitter(attempt: number, base: number, cap: number, floor: number, r: number): number;
/** Commit-to-applied delay in whole milliseconds, clamped to [0, MAX_STALENESS_MS]. */
export declare function stalenessMs(now: number, ts: number): number;
/** A push server message as a controller input; null for `error` and anything malformed. */
export declare function fromPushMessage(conn: number, body: unknown): ControllerInput | null;

"""The app's settings: one object, built once at start-up (from the environment and
command-line flags) and passed down. Nothing reads the environment later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tidings.protocol.tokens import DEFAULT_TTL_SECONDS, KeyRing


@dataclass(frozen=True, slots=True)
class PushUrls:
    """Where browsers reach the push servers (through the load balancer)."""

    ws: str | None = None
    sse: str | None = None
    socketio: str | None = None

    @classmethod
    def from_base(cls, base: str) -> PushUrls:
        """``http://host:8001`` -> the three endpoint URLs."""
        base = base.rstrip("/")
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        return cls(ws=f"{ws_base}/ws", sse=f"{base}/sse", socketio=base)


@dataclass(frozen=True, slots=True)
class AppSettings:
    database_url: str = "sqlite:///tidings.sqlite3"
    #: None: the in-process broker (single process only).
    redis_url: str | None = None
    redis_sharded: bool = False
    push_keys: KeyRing = field(default_factory=KeyRing.generate)
    push_token_ttl: float = DEFAULT_TTL_SECONDS
    push_urls: PushUrls = field(default_factory=PushUrls)
    #: Poll cadence advised to clients: while push is healthy / while it is not.
    poll_interval_push: float = 300.0
    poll_interval: float = 5.0
    poll_jitter: float = 0.2
    #: Carry the events inside pokes (full-push mode), within the poke size cap.
    full_push: bool = False
    #: Browser sessions last this long (seconds).
    session_ttl: float = 14 * 24 * 3600
    #: Mark cookies Secure (set when served over HTTPS).
    secure_cookies: bool = False
    #: Request bodies larger than this get 413.
    max_body_bytes: int = 64 * 1024
    #: Seconds a cached credential or flag set may be stale in this process.
    auth_cache_ttl: float = 30.0
    flag_cache_ttl: float = 2.0
    #: Collapse the poll path's event reads (single-flight, and each page kept while
    #: its project stays at its version): a poked herd costs one read per distinct
    #: (project, since). Off only to measure what that saves (bench/herd.py).
    poll_collapsing: bool = True
    #: Answer GET polls before the framework's routing (app/fastpoll.py).
    fast_poll: bool = True
    #: Run database migrations at start-up.
    migrate: bool = True
    #: Seconds between the sweeper's passes (app/sweeper.py): commits whose poke
    #: never reached the broker (the process died first) are poked within this
    #: plus 2 s. Each pass is one indexed query and one MGET; 0 turns it off.
    sweep_interval: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> AppSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "TIDINGS_DATABASE_URL" in env:
            values["database_url"] = env["TIDINGS_DATABASE_URL"]
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        if env.get("TIDINGS_REDIS_SHARDED") == "1":
            values["redis_sharded"] = True
        if env.get("TIDINGS_PUSH_KEYS"):
            values["push_keys"] = KeyRing.parse(env["TIDINGS_PUSH_KEYS"])
        if env.get("TIDINGS_PUSH_URL"):
            values["push_urls"] = PushUrls.from_base(env["TIDINGS_PUSH_URL"])
        if env.get("TIDINGS_FULL_PUSH") == "1":
            values["full_push"] = True
        if env.get("TIDINGS_MIGRATE") == "0":
            values["migrate"] = False
        if env.get("TIDINGS_POLL_COLLAPSING") == "0":
            values["poll_collapsing"] = False
        if env.get("TIDINGS_SECURE_COOKIES") == "1":
            values["secure_cookies"] = True
        for name, key in (
            ("poll_interval_push", "TIDINGS_POLL_INTERVAL_PUSH"),
            ("poll_interval", "TIDINGS_POLL_INTERVAL"),
            ("poll_jitter", "TIDINGS_POLL_JITTER"),
            ("push_token_ttl", "TIDINGS_PUSH_TOKEN_TTL"),
            ("sweep_interval", "TIDINGS_SWEEP_INTERVAL"),
        ):
            if env.get(key):
                values[name] = float(env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

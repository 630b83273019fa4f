"""The app's settings: one object, built once at start-up (from the environment and
command-line flags) and passed down. Nothing reads the environment later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tidings.app.ratelimit import SignInLimits, TelemetryLimits
from tidings.broker.redis_config import RedisConfig
from tidings.environment import flag
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
    #: Sharded pub/sub (``TIDINGS_REDIS_SHARDED``); push servers must agree.
    redis_sharded: bool = False
    #: ``REDIS_URL`` names seeds of a Redis Cluster (``TIDINGS_REDIS_CLUSTER``,
    #: or a ``redis+cluster://`` URL): broker/redis_config.py.
    redis_cluster: bool = False
    push_keys: KeyRing = field(default_factory=KeyRing.generate)
    push_token_ttl: float = DEFAULT_TTL_SECONDS
    push_urls: PushUrls = field(default_factory=PushUrls)
    #: Poll cadence advised to clients: while push is healthy / while it is not.
    poll_interval_push: float = 300.0
    poll_interval: float = 5.0
    poll_jitter: float = 0.2
    #: Seconds after which a board asks GET /api/me again for the user's projects
    #: (``projects_refresh`` in its answer): how long a project the user was added
    #: to elsewhere, or another project's new name, takes to reach the picker. One
    #: indexed read per open page per interval; a board in a hidden tab does not ask.
    projects_refresh: float = 30.0
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
    #: Run valid commands before the framework's routing (app/fastcommand.py).
    fast_commands: bool = True
    #: On SQLite, run commands on the stdlib ``sqlite3`` module on the event loop
    #: (store/sqlitewrites.py), not SQLAlchemy's writer: off only in the tests
    #: that hold the two to the same answers.
    sqlite_commands: bool = True
    #: Run database migrations at start-up.
    migrate: bool = True
    #: Freeze the objects alive once started out of the garbage collector's walks
    #: (tidings/heap.py). The serving process (``tidings app``, the ASGI factory) turns
    #: it on; off by default, for processes that build many apps (the tests).
    freeze_heap: bool = False
    #: Seconds between the sweeper's passes (app/sweeper.py): commits whose poke
    #: never reached the broker (the process died first) are poked within this
    #: plus 2 s. Each pass is one indexed query and one MGET; 0 turns it off.
    sweep_interval: float = 15.0
    #: Threads that hash and verify passwords (app/passwords.py), and sign-ins
    #: that may wait for one before the next gets 503. 0 threads: on the event
    #: loop, only to measure what the threads save (bench/signin.py).
    password_workers: int = 2
    password_queue: int = 64
    #: Sign-in rate limits (app/ratelimit.py, docs/OPERATIONS.md).
    signin_limits: SignInLimits = field(default_factory=SignInLimits)
    #: Freshness reports per user, and the missed pokes each may add. Off only
    #: where one user stands for many clients (benchmark crowds, test stacks).
    telemetry_limits: TelemetryLimits = field(default_factory=TelemetryLimits)
    limit_telemetry: bool = True

    def __post_init__(self) -> None:
        if not self.projects_refresh > 0:
            raise ValueError(f"projects_refresh must be above 0, not {self.projects_refresh}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> AppSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "TIDINGS_DATABASE_URL" in env:
            values["database_url"] = env["TIDINGS_DATABASE_URL"]
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        values["redis_sharded"] = flag(env, "TIDINGS_REDIS_SHARDED", False)
        values["redis_cluster"] = flag(env, "TIDINGS_REDIS_CLUSTER", False)
        if env.get("TIDINGS_PUSH_KEYS"):
            values["push_keys"] = KeyRing.parse(env["TIDINGS_PUSH_KEYS"])
        if env.get("TIDINGS_PUSH_URL"):
            values["push_urls"] = PushUrls.from_base(env["TIDINGS_PUSH_URL"])
        values["full_push"] = flag(env, "TIDINGS_FULL_PUSH", False)
        values["migrate"] = flag(env, "TIDINGS_MIGRATE", True)
        values["poll_collapsing"] = flag(env, "TIDINGS_POLL_COLLAPSING", True)
        values["secure_cookies"] = flag(env, "TIDINGS_SECURE_COOKIES", False)
        values["limit_telemetry"] = flag(env, "TIDINGS_TELEMETRY_LIMITS", True)
        for name, key in (
            ("poll_interval_push", "TIDINGS_POLL_INTERVAL_PUSH"),
            ("poll_interval", "TIDINGS_POLL_INTERVAL"),
            ("poll_jitter", "TIDINGS_POLL_JITTER"),
            ("projects_refresh", "TIDINGS_PROJECTS_REFRESH"),
            ("push_token_ttl", "TIDINGS_PUSH_TOKEN_TTL"),
            ("sweep_interval", "TIDINGS_SWEEP_INTERVAL"),
        ):
            if env.get(key):
                values[name] = float(env[key])
        if env.get("TIDINGS_SIGNIN_LIMITS"):
            values["signin_limits"] = SignInLimits.parse(env["TIDINGS_SIGNIN_LIMITS"])
        if env.get("TIDINGS_PASSWORD_THREADS"):
            values["password_workers"] = int(env["TIDINGS_PASSWORD_THREADS"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.redis_config()  # a URL it cannot use fails at start, with the reason
        return settings

    def redis_config(self) -> RedisConfig | None:
        """How to reach Redis; ``None``: the in-process broker."""
        if not self.redis_url:
            return None
        return RedisConfig.parse(
            self.redis_url, cluster=self.redis_cluster, sharded=self.redis_sharded
        )

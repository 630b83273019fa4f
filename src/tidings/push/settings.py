"""Every tunable of a push server, in one object built at start-up and passed down.

Each bound says what it costs and what happens when it is hit; docs/OPERATIONS.md
repeats them for operators. Environment parsing lives in :func:`from_env` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from tidings.protocol.push import HEARTBEAT_INTERVAL, MAX_CLIENT_MESSAGE_BYTES
from tidings.protocol.tokens import DEFAULT_TTL_SECONDS


@dataclass(frozen=True, slots=True)
class PushSettings:
    #: Seconds between heartbeats to every client (each carries ok/degraded/draining).
    heartbeat_interval: float = HEARTBEAT_INTERVAL

    #: ``token_expiring`` is sent this many seconds before the token's ``exp``;
    #: at ``exp`` + the verifier's leeway (5 s) the connection is closed with 4401.
    token_warning: float = 60.0

    #: The longest push-token lifetime the app issues (its ``TIDINGS_PUSH_TOKEN_TTL``,
    #: read from the same variable). A revocation is remembered this long plus
    #: 2 x 5 s of leeway, at most ``hub.MAX_REVOCATIONS`` of them (~10 MB): after
    #: that every token issued before it has expired anyway.
    max_token_lifetime: float = DEFAULT_TTL_SECONDS

    #: Per-connection send buffer (asyncio write-buffer high-water mark), bytes.
    #: Above it a connection stops receiving frames; it keeps only the latest
    #: message per project (at most one shared, already-encoded message per
    #: project it watches), so its memory is bounded by roughly this buffer +
    #: one message (<= 16 KiB + framing) + the kernel's socket buffer.
    send_buffer_bytes: int = 64 * 1024

    #: A connection whose send buffer stays above ``send_buffer_bytes`` this long
    #: is closed with 4408 SLOW_CONSUMER (metric ``slow_closes``); the client polls.
    slow_consumer_timeout: float = 15.0

    #: Client connections per process (past their handshake: a verified token).
    #: Past it new requests get HTTP 503 (WebSocket: upgraded, then closed with
    #: 1013). Each idle WebSocket costs ~1-4 KB of RSS plus a file descriptor:
    #: keep ``max_connections + max_pending`` well under the process's open-file
    #: limit (20,000 on our machines) and scale out with more processes.
    max_connections: int = 10_000

    #: Sockets that are not clients yet (no verified token: silent, still sending
    #: their request, a WebSocket before ``subscribe``, Socket.IO before its
    #: token), on top of ``max_connections``. When full, the oldest pending socket
    #: is closed (metric ``pending_evicted``): an attacker opening sockets at R
    #: per second leaves each one ``max_pending / R`` seconds to finish its
    #: handshake (2,000 / 20,000 per second = 100 ms, against a real client's
    #: 1-3 round trips). Honest load needs arrival rate x handshake time: a
    #: reconnect storm of 2,000 clients a second with 300 ms handshakes keeps
    #: ~600 pending. Also the cap on Socket.IO sessions without a token.
    max_pending: int = 2_000

    #: Pending sockets (and, separately, Socket.IO sessions without a token) per
    #: client IP. A socket past it gets 429 and is closed at once (metric
    #: ``pending_refused``); a session past it gets 429. Browsers open at most 6
    #: sockets per host; raise it behind a NAT with many users starting at once.
    #: Like every per-IP limit it is off when ``ip_rate`` is 0 (addresses hidden
    #: by a load balancer), and 0 turns it off alone.
    max_pending_per_ip: int = 64

    #: New connections per second per client IP (token bucket), and the burst
    #: allowed; past it HTTP 429 with ``Retry-After``. 0 disables the limit (use
    #: that behind a load balancer that hides client addresses).
    ip_rate: float = 20.0
    ip_burst: int = 200

    #: Seconds a new connection has to send its HTTP request, and a WebSocket to
    #: send ``subscribe`` after the upgrade; then it is closed (HTTP 408 / 1008).
    handshake_timeout: float = 10.0

    #: Socket.IO (Engine.IO) heartbeat, advertised in each handshake as
    #: ``pingInterval``/``pingTimeout``: the server pings a session this long
    #: after its last pong and ends it (``ping timeout``) when no pong comes
    #: within ``sio_ping_timeout``; the client gives up after the sum. Shorten
    #: the interval behind proxies that cut idle connections sooner than 25 s.
    sio_ping_interval: float = 25.0
    sio_ping_timeout: float = 20.0

    #: Largest Engine.IO POST body and WebSocket message a Socket.IO session
    #: takes, advertised as ``maxPayload`` (clients split their POSTs under it);
    #: past it: HTTP 413 / ``payload too large``. Capped by ``max_body_bytes``;
    #: a WebSocket message is also capped by ``max_message_bytes``.
    sio_max_payload: int = 32 * 1024

    #: Seconds a kept-alive HTTP connection may sit between requests.
    idle_timeout: float = 60.0

    #: Largest HTTP request head (request line + headers); SSE carries the token in
    #: the query (<= 8 KiB), hence 16 KiB. Past it: HTTP 431, connection closed.
    max_request_head_bytes: int = 16 * 1024

    #: Largest HTTP request body (long-polling POSTs of plugged-in transports);
    #: past it: HTTP 413. ``/ws`` and ``/sse`` take no body.
    max_body_bytes: int = 64 * 1024

    #: Largest client WebSocket message (after reassembly); past it: close 1009.
    max_message_bytes: int = MAX_CLIENT_MESSAGE_BYTES

    #: Most frames of one fragmented client message (continuations included);
    #: past it: close 1009. Browsers never fragment what they send.
    max_message_fragments: int = 16

    #: Seconds a client message may take from its first byte to its last (a
    #: partial frame, or a fragmented message waiting for its FIN); past it:
    #: close 1008. Bounds how long a connection holds a partial message.
    message_timeout: float = 10.0

    #: Inbound frames per connection (data, continuation and control frames
    #: alike), as a token bucket of ``inbound_burst`` frames refilled at
    #: ``inbound_rate`` per second once the connection has subscribed; before
    #: that, ``inbound_burst_unsubscribed`` frames refilled at
    #: ``inbound_rate_unsubscribed``. A client sends ``subscribe``, a
    #: ``refresh`` per token lifetime and perhaps a keepalive ping every ~20 s:
    #: a few frames a minute. Past the budget: close 1008 at once, having parsed
    #: no frame beyond it, so a flood costs at most ``burst`` frames of CPU per
    #: connection (docs/SECURITY.md).
    inbound_burst: int = 32
    inbound_rate: float = 1.0
    inbound_burst_unsubscribed: int = 8
    inbound_rate_unsubscribed: float = 0.2

    #: Browser origins allowed to connect (exact ``scheme://host[:port]``); an
    #: empty tuple allows any (development). Requests without ``Origin`` (not
    #: browsers) are allowed: the check is against cross-site hijacking.
    allowed_origins: tuple[str, ...] = ()

    #: On drain, each client is told to reconnect after a delay drawn uniformly
    #: from [0, drain_window) seconds and closed (1001) when its delay ends.
    drain_window: float = 30.0

    #: Seconds between link heartbeats published on the control channel.
    link_heartbeat_interval: float = 1.0

    #: Seconds between this server's figures published on the control channel
    #: (the app's admin page shows them; 0 turns them off).
    stats_interval: float = 5.0

    #: Without our own link heartbeat for this long the broker link is deaf: state
    #: ``degraded`` (clients told at once, ``/readyz`` fails).
    link_deaf_after: float = 3.0

    #: An app process heard within ``app_forget_after`` but not within this many
    #: seconds may be losing its pokes (its path to the broker is broken): state
    #: ``degraded`` until it is heard again. It heartbeats every second.
    app_deaf_after: float = 3.0

    #: An app not heard for this long is forgotten (it died without ``app_bye``):
    #: the longest a dead app keeps this server ``degraded`` and clients on the
    #: short poll interval. A partition longer than this looks like a dead app.
    app_forget_after: float = 30.0

    #: While an app is silent and its heartbeat named its Redis connections, the
    #: server asks Redis (CLIENT LIST) this often whether it still holds one; an
    #: app with none is gone and stops keeping the server ``degraded``.
    app_check_interval: float = 1.0

    #: An app found gone still keeps the server ``degraded`` until this long after
    #: it fell silent, so every client polls once after it died (a commit it made
    #: just before may never have been published). Set it to the app's short
    #: poll interval with jitter (``fallback_interval * (1 + jitter)``, 6 s by
    #: default); 0 ends the degraded state as soon as the app is found gone.
    app_gone_hold: float = 6.0

    #: Timeout of every broker command (version reads, heartbeat publishes).
    broker_timeout: float = 1.0

    #: Version reads for recovery are batched over this many seconds.
    recheck_delay: float = 0.05

    #: Projects per version read (one MGET).
    recheck_batch: int = 500

    #: Seconds between audits: while the broker link is healthy, every watched
    #: project's version key is read (``recheck_batch`` projects per MGET) and
    #: watchers behind it are poked (``recovery_pokes``). The net under a poke lost
    #: without any failure being detected (dropped between Redis and this server,
    #: or never published after its key was set): such a client is poked within
    #: this interval, not at its next long poll. A version this server already
    #: knows is not re-sent (the key tells it nothing new). Costs
    #: ``subscribed_projects / recheck_batch`` MGETs per interval (10,000 projects:
    #: 20 MGETs). The first audit comes at a random point of the first interval,
    #: so servers started together do not read in step. 0: off.
    audit_interval: float = 30.0

    #: Forward the events of full-push pokes (off: clients always poll for them).
    forward_events: bool = True

    #: SSE ``retry:`` field: EventSource's reconnect delay, seconds.
    sse_retry: float = 5.0

    #: Seconds a closing connection may take to flush its close before it is aborted.
    close_timeout: float = 2.0

    #: Seconds between hub ticks (heartbeats, token deadlines, slow consumers).
    tick_interval: float = 0.25

    #: Extra process-level state a deployment wants in logs (e.g. the host name).
    labels: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> PushSettings:
        return replace(self, **changes)  # type: ignore[arg-type]


def parse_origins(spec: str) -> tuple[str, ...]:
    """``TIDINGS_ALLOWED_ORIGINS``: comma-separated origins; empty or ``*`` allows any."""
    items = tuple(o.strip().rstrip("/") for o in spec.split(",") if o.strip())
    return () if items == ("*",) else items


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> PushSettings:
    """Settings from ``TIDINGS_*`` variables (see docs/OPERATIONS.md), then overrides."""
    env = os.environ if env is None else env
    settings = PushSettings(allowed_origins=parse_origins(env.get("TIDINGS_ALLOWED_ORIGINS", "")))
    numeric = {
        "TIDINGS_PUSH_MAX_CONNECTIONS": ("max_connections", int),
        "TIDINGS_PUSH_HEARTBEAT": ("heartbeat_interval", float),
        "TIDINGS_PUSH_DRAIN_WINDOW": ("drain_window", float),
        "TIDINGS_PUSH_IP_RATE": ("ip_rate", float),
        "TIDINGS_PUSH_IP_BURST": ("ip_burst", int),
        "TIDINGS_PUSH_MAX_PENDING": ("max_pending", int),
        "TIDINGS_PUSH_MAX_PENDING_PER_IP": ("max_pending_per_ip", int),
        "TIDINGS_PUSH_SIO_PING_INTERVAL": ("sio_ping_interval", float),
        "TIDINGS_PUSH_SIO_PING_TIMEOUT": ("sio_ping_timeout", float),
        "TIDINGS_PUSH_SIO_MAX_PAYLOAD": ("sio_max_payload", int),
        "TIDINGS_PUSH_SEND_BUFFER": ("send_buffer_bytes", int),
        "TIDINGS_PUSH_SLOW_TIMEOUT": ("slow_consumer_timeout", float),
        "TIDINGS_PUSH_TOKEN_TTL": ("max_token_lifetime", float),
        "TIDINGS_PUSH_HANDSHAKE_TIMEOUT": ("handshake_timeout", float),
        "TIDINGS_PUSH_APP_DEAF_AFTER": ("app_deaf_after", float),
        "TIDINGS_PUSH_APP_FORGET_AFTER": ("app_forget_after", float),
        "TIDINGS_PUSH_APP_CHECK_INTERVAL": ("app_check_interval", float),
        "TIDINGS_PUSH_APP_GONE_HOLD": ("app_gone_hold", float),
        "TIDINGS_PUSH_AUDIT_INTERVAL": ("audit_interval", float),
        "TIDINGS_PUSH_MAX_FRAGMENTS": ("max_message_fragments", int),
        "TIDINGS_PUSH_MESSAGE_TIMEOUT": ("message_timeout", float),
        "TIDINGS_PUSH_INBOUND_BURST": ("inbound_burst", int),
        "TIDINGS_PUSH_INBOUND_RATE": ("inbound_rate", float),
        "TIDINGS_PUSH_INBOUND_BURST_UNSUBSCRIBED": ("inbound_burst_unsubscribed", int),
        "TIDINGS_PUSH_INBOUND_RATE_UNSUBSCRIBED": ("inbound_rate_unsubscribed", float),
    }
    changes: dict[str, object] = {}
    for var, (name, kind) in numeric.items():
        if var in env:
            changes[name] = kind(env[var])
    changes.update(overrides)
    return replace(settings, **changes)  # type: ignore[arg-type]

"""The simulated app: project versions and events, poll answers, push tokens.

It answers with the real shapes: poll bodies from ``tidings.protocol.poll`` (events
encoded with orjson as the store keeps them), the real headers, real signed push
tokens. It has no database and no queueing: each request costs a fixed service
time (``AppModel``), so the request rates it reports are the load a real app
would have to carry, not what one could.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tidings.client import inputs as i
from tidings.domain import commands as c
from tidings.domain import project as domain
from tidings.domain.decide import Actor, decide
from tidings.protocol.advice import Advice
from tidings.protocol.poke import Poke, encode_poke
from tidings.protocol.poll import DEFAULT_LIMIT, answer_body, version_headers
from tidings.protocol.tokens import KeyRing, sign_push_token


@dataclass(frozen=True, slots=True)
class AppModel:
    #: Server time of an up-to-date poll (bench/results/poll_path.json, PostgreSQL,
    #: server CPU per request: 208 us).
    service_poll: float = 0.0002
    #: Server time of a poll that reads events (same file, ``events_10``: 2.4 ms).
    service_events: float = 0.0024
    #: Server time of a push token, a snapshot or a telemetry post.
    service_other: float = 0.001
    #: HTTP response bytes besides the body and the tidings headers (status line,
    #: Date, Server, Content-Type, Content-Length), as uvicorn writes them.
    http_overhead: int = 125
    #: A request's head besides its request line and If-None-Match (Host, Accept,
    #: Authorization with a bearer token, as bench/lib/crowd.py sends them).
    request_headers: int = 110
    #: Bytes of a push token request and answer together, and of a telemetry
    #: post's request and answer besides its body.
    token_exchange_bytes: int = 700
    telemetry_overhead_bytes: int = 330
    #: Bytes of a project snapshot (only sent when a client must reload one).
    snapshot_bytes: int = 20_000
    #: Push token lifetime, seconds (the app's default).
    token_ttl: float = 600.0
    #: Events per poll page (the clients' default ``limit``).
    page: int = DEFAULT_LIMIT


def sample_event_body() -> dict[str, Any]:
    """A typical change (a story moved to ``started``) made by the real domain code."""
    state = domain.empty(1)
    state["members"] = [{"user_id": 1, "role": "owner", "name": "Ada"}]
    actor = Actor(1, c.Role.OWNER)
    create = c.CreateStory(type="create_story", title="Write the release notes")
    made = decide(state, create, actor)
    event = {"version": 1, "type": made.type, "data": made.data, "actor": 1, "ts": 0.0}
    domain.apply_in_place(state, event)
    assert made.created_id is not None
    update = c.UpdateStory(
        type="update_story", story_id=made.created_id, state=c.StoryState.STARTED
    )
    changed = decide(state, update, actor)
    return {"type": changed.type, "data": changed.data, "actor": 1}


class SimApp:
    """Every project starts at version ``initial_version``; ``commit`` appends one event."""

    def __init__(
        self,
        projects: int,
        advice: Advice,
        keys: KeyRing,
        model: AppModel,
        *,
        full_push: bool,
        initial_version: int = 1,
    ) -> None:
        self.model = model
        self.advice = advice
        self.full_push = full_push
        self._keys = keys
        self._template = sample_event_body()
        # Project ids are 1..projects; index 0 is unused.
        self.versions = [initial_version] * (projects + 1)
        self._first = initial_version
        #: Events kept per project: the whole run (bounded by edits x duration).
        self._events: list[list[dict[str, Any]]] = [[] for _ in range(projects + 1)]

    def commit(self, project: int, now: float) -> Poke:
        """One change: bump the version, keep the event, return the poke to publish."""
        version = self.versions[project] + 1
        self.versions[project] = version
        event = {"version": version, **self._template, "ts": now}
        self._events[project].append(event)
        events = (event,) if self.full_push else None
        return Poke(project, version, now, events)

    def poke_bytes(self, poke: Poke) -> int:
        return len(encode_poke(poke))

    def poll_request_bytes(self, project: int, since: int) -> int:
        line = f"GET /api/projects/{project}/events?since={since}&limit={self.model.page} HTTP/1.1"
        return len(line) + 2 + len(f'If-None-Match: "{since}"') + 2 + self.model.request_headers

    def poll(self, project: int, since: int) -> tuple[i.PollResult, int, float]:
        """The answer, its size in bytes on the wire, and the server time it took."""
        version = self.versions[project]
        headers = self.model.http_overhead + _header_bytes(version, self.advice)
        if since == version:
            # The client sends If-None-Match with the version held: 304, headers only.
            return (
                i.PollResult(project, version, (), False, None, self.advice),
                headers,
                (self.model.service_poll),
            )
        body = answer_body(project, version, since, self.advice)
        if since > version:
            body["reload"] = "ahead"
            events: tuple[dict[str, Any], ...] = ()
        else:
            start = since - self._first
            page = self._events[project][start : start + self.model.page]
            events = tuple(page)
            body["events"] = page
            body["has_more"] = bool(page) and page[-1]["version"] < version
        size = headers + len(orjson.dumps(body))
        result = i.PollResult(
            project, version, events, bool(body["has_more"]), body["reload"], self.advice
        )
        return result, size, self.model.service_events

    def token(self, user: int, projects: list[int], now: float) -> i.TokenFetched:
        token, claims = sign_push_token(
            self._keys, user, projects, now=now, ttl=self.model.token_ttl
        )
        return i.TokenFetched(token, claims.expires_at)


def _header_bytes(version: int, advice: Advice) -> int:
    return sum(len(k) + len(v) + 4 for k, v in version_headers(version, advice).items())

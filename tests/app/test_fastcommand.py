"""The commands' fast path answers the requests it can read exactly as the route
would, and hands every other one, body intact, to the framework."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from tests.app.conftest import Stack, StackFactory
from tidings.app.fastcommand import FastCommands


class Framework:
    """Stands where the framework sits: records what reaches it, echoes the body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def test_valid_commands_skip_the_framework_and_the_rest_reach_it_whole(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack: Stack = await make_stack(sqlite_url)
    _owner, token = await stack.user("fast@x.io")
    async with stack.client(token) as http:
        pid = (await http.post("/api/projects", json={"name": "Fast"})).json()["project"]
    framework = Framework()
    fast = FastCommands(framework, stack.services, limit=1000, headers=[(b"x-secure", b"1")])
    transport = httpx.ASGITransport(app=fast)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/projects/{pid}/commands"
    async with httpx.AsyncClient(
        transport=transport, base_url="http://app", headers=headers
    ) as http:
        done = await http.post(url, json={"command": {"type": "create_story", "title": "a"}})
        assert done.status_code == 200 and done.json()["version"] == 2
        assert done.headers["x-secure"] == "1"
        stale: dict[str, Any] = {"command": {"type": "create_story", "title": "b"}}
        refused = await http.post(url, json={**stale, "expected_version": 1})
        assert refused.status_code == 409 and refused.json()["version"] == 2
        assert framework.bodies == []
        handed = [
            b"{not json",
            b'{"command": {"type": "explode"}}',
            b'{"command": {"type": "create_story", "title": "c"}, "extra": 1}',
            b'{"command": {"type": "create_story", "title": "NaN"}, "expected_version": NaN}',
        ]
        for body in handed:
            r = await http.post(url, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 299 and r.content == body
        long_key = {"Idempotency-Key": "k" * 201}
        r = await http.post(
            url, json={"command": {"type": "create_story", "title": "d"}}, headers=long_key
        )
        assert r.status_code == 299
        r = await http.post(
            "/api/projects/0/commands", json={"command": {"type": "create_story", "title": "e"}}
        )
        assert r.status_code == 299
        # Bodies the layers behind it rule on: not declared JSON, over the limit,
        # chunked (no Content-Length).
        json_body = b'{"command": {"type": "create_story", "title": "f"}}'
        as_text = {"Content-Type": "text/plain"}
        r = await http.post(url, content=json_body, headers=as_text)
        assert r.status_code == 299
        big = b'{"command": {"type": "create_story", "title": "' + b"g" * 1000 + b'"}}'
        r = await http.post(url, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 299 and r.content == big

        async def chunks() -> AsyncIterator[bytes]:
            yield json_body

        r = await http.post(url, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 299 and r.content == json_body
        assert len(framework.bodies) == len(handed) + 5
        # Other routes pass through untouched.
        r = await http.get(url)
        assert r.status_code == 299


async def test_a_fast_answer_is_the_framework_s_header_for_header(
    make_stack: StackFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """The same commands on two apps, one with the fast path and one without: the
    same status, headers (security headers included) and body, small and large
    (compressed) answers alike."""
    answers: dict[bool, list[tuple[int, list[tuple[str, str]], bytes]]] = {}
    for fast in (True, False):
        url = f"sqlite+aiosqlite:///{tmp_path}/{'fast' if fast else 'framework'}.db"
        stack = await make_stack(url, fast_commands=fast, fast_poll=fast)
        _owner, token = await stack.user("same@x.io")
        answers[fast] = []
        async with stack.client(token) as http:
            pid = (await http.post("/api/projects", json={"name": "Same"})).json()["project"]
            commands: list[dict[str, Any]] = [
                {"type": "create_story", "title": "small"},
                {"type": "create_story", "title": "large", "description": "d" * 5000},
                {"type": "update_story", "story_id": 1, "title": "renamed"},
            ]
            for n, command in enumerate(commands):
                gzip = {"Accept-Encoding": "gzip"} if n % 2 else {"Accept-Encoding": "identity"}
                r = await http.post(
                    f"/api/projects/{pid}/commands", json={"command": command}, headers=gzip
                )
                assert r.status_code == 200
                event = r.json()["event"]
                # The project's id and the event's time differ between the two
                # apps; nothing else may.
                body = r.content.replace(str(event["ts"]).encode(), b"TS")
                body = body.replace(str(pid).encode(), b"PID")
                headers = [(k, v) for k, v in r.headers.multi_items() if k != "content-length"]
                answers[fast].append((r.status_code, headers, body))
    for a, b in zip(answers[True], answers[False], strict=True):
        assert a[0] == b[0] and a[1] == b[1], (a[1], b[1])
        assert a[2] == b[2], (a[2][:300], b[2][:300])
    assert answers[True] == answers[False]
    large = answers[True][1][1]
    assert ("content-encoding", "gzip") in large
    assert "content-security-policy" in dict(answers[True][0][1])

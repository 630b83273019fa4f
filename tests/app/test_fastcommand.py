"""The commands' fast path answers the requests it can read exactly as the route
would, and hands every other one, body intact, to the framework."""

from __future__ import annotations

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
    fast = FastCommands(framework, stack.services)
    transport = httpx.ASGITransport(app=fast)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/projects/{pid}/commands"
    async with httpx.AsyncClient(
        transport=transport, base_url="http://app", headers=headers
    ) as http:
        done = await http.post(url, json={"command": {"type": "create_story", "title": "a"}})
        assert done.status_code == 200 and done.json()["version"] == 2
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
        assert len(framework.bodies) == len(handed) + 2
        # Other routes pass through untouched.
        r = await http.get(url)
        assert r.status_code == 299

"""The Node publisher example (examples/node-publisher/publish.mjs, the npm ``redis``
and ``jsonwebtoken`` packages) against the real stack: a push server takes the
token it signs, and the poke it publishes after its compare-and-set reaches a
subscribed WebSocket; a poke below the version key is stale and not sent."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis

from tidings.testing.clients import RawWebSocket
from tidings.testing.stack import Stack

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "examples" / "node-publisher" / "publish.mjs"
#: One run of the script (Node start-up, a Redis connection); one wait for a message.
RUN_TIMEOUT = 20.0
WAIT = 10.0


def node() -> str:
    found = shutil.which("node")
    if found is None or not all(
        (ROOT / "node_modules" / name).is_dir() for name in ("redis", "jsonwebtoken")
    ):
        pytest.fail("node and the npm packages redis and jsonwebtoken (npm ci) are needed")
    return found


async def publish_mjs(stack: Stack, *args: str) -> str:
    """Run the example with the stack's keys and Redis; its stdout, stripped."""
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(SCRIPT),
        *args,
        env={
            "PATH": stack.env.get("PATH", ""),
            "TIDINGS_PUSH_KEYS": stack.env["TIDINGS_PUSH_KEYS"],
            "REDIS_URL": stack.redis_url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"publish.mjs {args}: exit {proc.returncode}\n{err.decode()}"
    return out.decode().strip()


async def until(ws: RawWebSocket, wanted: Callable[[dict[str, Any]], bool], what: str) -> Any:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
            message = await ws.message()
        seen.append(message)
        if wanted(message):
            return message
    raise AssertionError(f"no {what} within {WAIT} s; saw {seen}")


async def test_a_token_and_a_poke_from_the_node_example_reach_a_subscribed_client(
    stack: Stack,
) -> None:
    # A fresh project id: a channel and version key no other run touches.
    project, _ = await stack.new_project("node publisher")
    token = await publish_mjs(stack, "token", "1", str(project))
    port = urlsplit(stack.push_url).port
    assert port is not None
    ws = await RawWebSocket.connect(port)
    try:
        assert ws.status == 101
        ws.send_json({"type": "subscribe", "token": token, "projects": {str(project): 1}})
        subscribed = await until(ws, lambda m: m["type"] == "subscribed", "subscribed")
        assert str(project) in subscribed["projects"], subscribed

        before = time.time()
        assert await publish_mjs(stack, "poke", str(project), "7") == "published"
        poke = await until(ws, lambda m: m["type"] == "poke", "poke")
        assert (poke["project"], poke["version"]) == (project, 7), poke
        assert before - 1 <= poke["ts"] <= time.time() + 1, poke

        # Below the version key: nothing is sent, and the key never goes backwards.
        assert await publish_mjs(stack, "poke", str(project), "6") == "stale"
        client = redis.from_url(stack.redis_url)
        try:
            assert await client.get(f"tidings:version:{{{project}}}") == b"7"
        finally:
            await client.aclose()
        assert await publish_mjs(stack, "poke", str(project), "8", "1700000000.5") == "published"
        poke = await until(ws, lambda m: m["type"] == "poke", "the next poke")
        assert poke == {"type": "poke", "project": project, "version": 8, "ts": 1700000000.5}, (
            json.dumps(poke)
        )
    finally:
        ws.close()

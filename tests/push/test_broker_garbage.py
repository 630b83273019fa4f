"""A real ``python -m tidings push`` on real Redis, fed every kind of garbage a publisher
on Redis can send: a subscribed client still gets every later real poke (with its events
when they are valid, without them when not), the server stays ok, its version reader keeps
recovering, and its log does not grow with the flood.

Project ids are random and large (see test_redis_integration.py); keys are deleted after.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
import websockets

from tidings.broker.redis_publisher import RedisPublisher
from tidings.protocol.channels import CONTROL_CHANNEL, project_channel, version_key
from tidings.protocol.poke import MAX_BROKER_MESSAGE_BYTES, Poke, encode_poke
from tidings.testing.processes import start_push_any_port, stop_async

from .conftest import KEYS
from .test_redis_integration import next_of, project_ids, recv_json, subscribe_msg

pytestmark = pytest.mark.redis

TIMEOUT = 10.0
HTML = '<img src=x onerror="alert(1)">'


def poke(project: int, version: object, **extra: Any) -> bytes:
    return orjson.dumps(
        {"type": "poke", "project": project, "version": version, "ts": 1.0, **extra}
    )


def event(version: int, **data: Any) -> dict[str, Any]:
    body = {"story_id": 3, **data}
    return {"version": version, "type": "story_deleted", "data": body, "actor": 1, "ts": 1.0}


def story(version: int, **fields: Any) -> dict[str, Any]:
    created = {
        "id": 3,
        "title": "t",
        "description": "",
        "story_type": "feature",
        "state": "unscheduled",
        "estimate": None,
        "owner_id": None,
        "labels": [],
        **fields,
    }
    data = {"story": created, "before_id": None, "next_id": 4}
    return {"version": version, "type": "story_created", "data": data, "actor": 1, "ts": 1.0}


def garbage(p: int) -> dict[str, bytes]:
    """Messages on project p's channel that must change nothing (v: a version not yet used)."""
    return {
        "version 2^64-1": poke(p, 2**64 - 1),
        "version 2^53+1": poke(p, 2**53 + 1),
        "version 10^30": b'{"type":"poke","project":%d,"version":%s,"ts":1}'
        % (p, b"1" + b"0" * 30),
        "version negative": poke(p, -1),
        "version float": poke(p, 1e18),
        "version string": poke(p, "99"),
        "version bool": poke(p, True),
        "project of another channel": poke(p + 1, 10**6),
        "ts huge": b'{"type":"poke","project":%d,"version":1000000,"ts":1e300}' % p,
        "oversized": poke(p, 10**6, pad="x" * MAX_BROKER_MESSAGE_BYTES),
        "invalid UTF-8": b'{"type":"poke","project":%d,"version":1000000,"ts":1,"x":"\xff\xfe"}'
        % p,
        "not JSON": b"poke 1000000",
        "JSON array": b"[1, 2, 3]",
        "empty": b"",
        "deep nesting": b"[" * 100_000,
        "wrong type": b'{"type":"revoke","user":1,"project":%d,"at":1}' % p,
    }


def hostile_events(v: int) -> dict[str, list[Any] | object]:
    """Events that must be dropped from a poke at version v (the poke itself still goes out)."""
    return {
        "html in story_type": [story(v, story_type=HTML)],
        "html in an unknown field": [story(v, html=HTML)],
        "id as a string": [event(v, story_id="3")],
        "unknown type": [{**event(v), "type": HTML}],
        "not ending at the version": [event(v - 1)],
        "not consecutive": [event(v - 2), event(v)],
        "not a list": {"0": event(v)},
        "title too long": [story(v, title="x" * 201)],
    }


class PushProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        #: Its log (stderr) lines so far, read as they come.
        self.log: list[str] = []
        self._reader = asyncio.create_task(self._read_log())

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    async def logged(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(text in line for line in self.log):
            assert time.monotonic() < deadline, f"never logged {text!r}: {self.log[-5:]}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await stop_async(self.proc, 15)
        await asyncio.wait_for(self._reader, 5)

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def counter(self, name: str) -> float:
        text = self.get("/metrics")[1]
        match = re.search(rf"^tidings_push_{name}_total (\S+)$", text, re.M)
        assert match, name
        return float(match.group(1))


@pytest.fixture
async def push(redis_url: str) -> AsyncIterator[PushProcess]:
    running = PushProcess(*await start_push_any_port(redis_url, KEYS.spec()))
    try:
        yield running
    finally:
        await running.stop()


async def test_garbage_on_redis_changes_nothing_for_a_subscribed_client(
    push: PushProcess, redis_url: str
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while push.get("/readyz")[0] != 200:
        assert time.monotonic() < deadline, f"never ready: {push.log[-5:]}"
        await asyncio.sleep(0.05)
    p, q = project_ids(2)
    raw = redis.Redis.from_url(redis_url)
    app = RedisPublisher.from_url(redis_url)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{push.port}/ws") as ws:
            await ws.send(subscribe_msg({p: 0, q: 0}))
            await next_of(lambda: recv_json(ws), "subscribed")

            # p's version key is never set: every poke of p comes from its publish,
            # none from a version read racing it (that one would carry no events).
            async def real(version: int, events: tuple[dict[str, Any], ...] | None) -> None:
                await app.publish(project_channel(p), encode_poke(Poke(p, version, 1.0, events)))

            # The subscription is live once a real poke comes through.
            version = 1
            deadline = time.monotonic() + TIMEOUT
            while True:
                await real(version, None)
                try:
                    got = await next_of(lambda: recv_json(ws), "poke", 0.5)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "the first poke never arrived"
            assert (got["project"], got["version"]) == (p, 1)

            for name, message in garbage(p).items():
                await raw.publish(project_channel(p), message)
                await raw.publish(CONTROL_CHANNEL, message)
                version += 1
                await real(version, (event(version),))
                got = await next_of(lambda: recv_json(ws), "poke")
                assert (got["version"], got.get("events")) == (version, [event(version)]), name

            for name, events in hostile_events(version + 1).items():
                version += 1
                await raw.publish(project_channel(p), poke(p, version, events=events))
                got = await next_of(lambda: recv_json(ws), "poke")
                assert (got["version"], "events" in got) == (version, False), name
                version += 1
                await real(version, (event(version),))
                got = await next_of(lambda: recv_json(ws), "poke")
                assert (got["version"], got.get("events")) == (version, [event(version)]), name

            # A version key above 2^64 (it once killed the version reader): a new
            # watcher of q makes the server read it; then the key rises with no poke,
            # and the next watcher's read still pokes both (recovery works).
            url = f"ws://127.0.0.1:{push.port}/ws"
            await raw.set(version_key(q), "1" + "0" * 25)
            async with websockets.connect(url) as second:
                await second.send(subscribe_msg({q: 0}))
                await next_of(lambda: recv_json(second), "subscribed")
                await push.logged("version_key_invalid")
                await raw.set(version_key(q), "7")
                async with websockets.connect(url) as third:
                    await third.send(subscribe_msg({q: 0}))
                    for client in (ws, second, third):
                        got = await next_of(functools.partial(recv_json, client), "poke")
                        assert (got["project"], got["version"]) == (q, 7)
            # The app's next write replaces a garbage key (compare-and-set from -1).
            await raw.set(version_key(q), "1" + "0" * 25)
            await app.set_version(q, 8)
            assert await app.get_versions([q]) == {q: 8}

            assert push.get("/healthz")[0] == 200
            # Pub/sub is shared by everything on this Redis: an app process of another
            # test that stops without goodbye degrades every push server for a moment
            # (logged); otherwise the server is still ready.
            if not any("state=degraded" in line for line in push.log):
                assert push.get("/readyz")[0] == 200, (push.get("/readyz"), push.log[-5:])
                assert 'tidings_push_state{state="ok"} 1.0' in push.get("/metrics")[1]
            invalid = push.counter("broker_invalid")
            assert invalid >= len(garbage(p)) - 1 + len(hostile_events(1))
            assert push.proc.returncode is None
    finally:
        await raw.delete(version_key(p), version_key(q))
        await raw.aclose()
        await app.close()
    await push.stop()
    lines = [x for x in push.log if "event=broker_invalid" in x]
    # About 25 refusals within a few seconds: one log line per 10 s interval.
    assert 1 <= len(lines) <= 3, lines

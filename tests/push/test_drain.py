"""Drain of a real ``tidings push`` process (SIGTERM): every client hears ``draining`` at
once, then its reconnect delay; meanwhile the listener still answers the load
balancer (/healthz 200, /readyz 503 ``draining``) and refuses each new client with
something it can act on (WebSocket 101 then 1013, HTTP 503 with a JSON body)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from functools import partial
from typing import Any

import orjson
import websockets

from tidings.protocol.errors import CloseCode
from tidings.testing.processes import start_push_any_port, stop_async

from .conftest import KEYS, token
from .test_redis_integration import next_of, project_ids, recv_json, subscribe_msg
from .test_server import get, request

#: Long enough that some client is still connected while the checks run (8 delays
#: uniform in [0, 6) all under 0.6 s: probability 1e-8), short for CI.
WINDOW = 6.0
CLIENTS = 8


async def test_a_draining_process_answers_health_checks_and_refuses_new_clients(
    redis_url: str,
) -> None:
    proc, port = await start_push_any_port(redis_url, KEYS.spec(), "--drain-window", str(WINDOW))
    try:
        url = f"ws://127.0.0.1:{port}/ws"
        (p,) = project_ids(1)
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(websockets.connect(url)) for _ in range(CLIENTS)
            ]
            for ws in clients:
                await ws.send(subscribe_msg({p: 0}))
                await next_of(partial(recv_json, ws), "subscribed")  # ok may come first
            proc.send_signal(signal.SIGTERM)
            for ws in clients:
                before: list[dict[str, Any]] = []
                while (told := await recv_json(ws))["type"] != "drain":
                    before.append(told)
                assert 0 <= told["reconnect_after"] < WINDOW
                # The state at once (the next heartbeat round is 25 s away), just before.
                assert before[-1:] == [{"type": "heartbeat", "state": "draining"}], before

            status, _, body = await request(port, get("/healthz"))
            assert (status, orjson.loads(body)) == (200, {"status": "ok"})
            status, _, body = await request(port, get("/readyz"))
            assert status == 503 and orjson.loads(body)["status"] == "draining"
            status, _, body = await request(port, get("/metrics"))
            assert b"tidings_push_draining 1.0" in body
            assert b'tidings_push_state{state="draining"} 1.0' in body

            async with websockets.connect(url) as late:  # the upgrade is accepted...
                with contextlib.suppress(websockets.ConnectionClosed):
                    await asyncio.wait_for(late.recv(), 5)
            assert late.close_code == CloseCode.TRY_AGAIN_LATER  # ...then closed with 1013
            for path in (
                f"/sse?token={token(projects=[p])}&p={p}",
                "/socket.io/?EIO=4&transport=polling",
            ):
                status, headers, body = await request(port, get(path))
                assert status == 503 and "retry-after" in headers, path
                assert orjson.loads(body)["error"] == "unavailable", path

            for ws in clients:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), WINDOW + 5)
                assert ws.close_code == CloseCode.GOING_AWAY
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await stop_async(proc)

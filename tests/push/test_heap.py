"""A ``tidings push`` process freezes what is alive once it has started out of the
garbage collector's walks (tidings/heap.py), and says so in /metrics beside the
collector's own counts."""

from __future__ import annotations

import re

from tidings.testing.processes import start_push_any_port, stop_async

from .conftest import KEYS
from .test_server import get, request


def gauge(body: bytes, name: str) -> float:
    found = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.M)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


async def test_a_serving_push_process_freezes_its_start_up_objects(redis_url: str) -> None:
    proc, port = await start_push_any_port(redis_url, KEYS.spec())
    try:
        status, _, body = await request(port, get("/metrics"))
        assert status == 200
        # Modules, routes, settings: tens of thousands of objects never walked again.
        assert gauge(body, "tidings_push_gc_frozen_objects") > 10_000
        assert b'python_gc_collections_total{generation="2"}' in body
    finally:
        await stop_async(proc)

"""The serving process freezes its start-up objects out of the garbage collector's
walks (tidings/heap.py); an app built without the setting (tests, the demo) does not."""

from __future__ import annotations

import gc

import pytest

from tests.app.conftest import StackFactory
from tidings.app import asgi
from tidings.heap import YOUNG_THRESHOLD


async def test_a_serving_app_freezes_what_is_alive_once_started(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    gc.unfreeze()
    threshold = gc.get_threshold()
    try:
        await make_stack(sqlite_url)
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold
        await make_stack(sqlite_url, freeze_heap=True)
        # Modules, routes and schemas: tens of thousands of objects, never walked again.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_the_asgi_factory_serves_with_a_frozen_heap(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    app = asgi.create_from_env()
    assert app.state.services.settings.freeze_heap

"""The route table: exact paths first, then prefix mounts in declared order, else 404."""

from __future__ import annotations

import pytest

from tidings.push.http import HttpConnection, Request
from tidings.push.routes import Endpoint, Mount, Route, Router


def named(name: str, calls: list[str]) -> Endpoint:
    def endpoint(request: Request, conn: HttpConnection) -> None:
        calls.append(name)

    return endpoint


def test_exact_paths_win_then_mounts_match_their_prefix_or_bare_name() -> None:
    calls: list[str] = []
    router = Router(
        [
            Route("/ws", named("ws", calls)),
            Mount("/socket.io/", named("sio", calls)),
            Mount("/socket.io/special/", named("never", calls)),
            Route("/socket.io/exact", named("exact", calls)),
        ]
    )
    found = {
        path: router.endpoint(path)
        for path in ("/ws", "/socket.io/", "/socket.io", "/socket.io/x", "/socket.io/exact")
    }
    for endpoint in found.values():
        assert endpoint is not None
        endpoint(None, None)  # type: ignore[arg-type]
    assert calls == ["ws", "sio", "sio", "sio", "exact"]
    assert router.endpoint("/socket.io/special/x") is found["/socket.io/x"]  # first mount wins
    for path in ("/ws/", "/wsx", "/socket.iox", "/", ""):
        assert router.endpoint(path) is None, path


def test_a_path_declared_twice_or_a_bad_prefix_fails_at_start() -> None:
    calls: list[str] = []
    with pytest.raises(ValueError, match="declared twice"):
        Router([Route("/ws", named("a", calls)), Route("/ws", named("b", calls))])
    with pytest.raises(ValueError, match="declared twice"):
        Router([Mount("/m/", named("a", calls)), Mount("/m/", named("b", calls))])
    with pytest.raises(ValueError, match="starts and ends"):
        Mount("/socket.io", named("a", calls))

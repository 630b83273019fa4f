"""Every response carries the security headers: pages, API answers, errors and the
poll fast path; the policy lets the board reach its push servers and nothing else."""

from __future__ import annotations

import pytest

from tests.app.conftest import Stack, StackFactory
from tests.app.test_api import make_project
from tidings.app.headers import (
    PAGES,
    content_security_policy,
    inline_script_hashes,
    push_origins,
)
from tidings.app.settings import PushUrls

#: The board page's one inline script (it starts the snapshot's request), by hash.
BOARD_INLINE = inline_script_hashes(PAGES[0].read_text("utf-8"))


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_secured(headers: object, what: str) -> dict[str, list[str]]:
    get = headers.get  # type: ignore[attr-defined]
    assert get("x-content-type-options") == "nosniff", what
    assert get("x-frame-options") == "DENY", what
    assert get("referrer-policy") == "no-referrer", what
    policy = get("content-security-policy")
    assert policy, what
    csp = directives(policy)
    assert csp["frame-ancestors"] == ["'none'"], what
    return csp


async def test_every_kind_of_response_has_the_headers(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["member"]) as http:
        answers = {
            "board page": await http.get("/"),
            "script": await http.get("/js/board.js"),
            "api": await http.get("/api/me"),
            "poll": await http.get(f"/api/projects/{pid}/events?since=4"),
            "multi-poll": await http.get(f"/api/poll?p={pid}:0"),
            "bad poll": await http.get(f"/api/projects/{pid}/events?since=-1"),
            "not found": await http.get("/api/nowhere"),
            "too large": await http.post("/api/projects", content=b"x" * (65 * 1024)),
            "metrics": await http.get("/metrics"),
        }
    async with stack.client() as anonymous:
        answers["unauthorized"] = await anonymous.get("/api/me")
        answers["sign-in refused"] = await anonymous.post(
            "/api/session", json={"email": "nobody@x.io", "password": "wrong"}
        )
    expected = {"too large": 413, "not found": 404, "bad poll": 400, "unauthorized": 401}
    expected["sign-in refused"] = 401
    for what, r in answers.items():
        assert r.status_code == expected.get(what, 200), (what, r.text)
        csp = assert_secured(r.headers, what)
        assert csp["script-src"] == ["'self'", *BOARD_INLINE], what
        assert "'unsafe-inline'" not in csp["style-src"], what
        # The board's push servers (TIDINGS_PUSH_URL), over HTTP and WebSocket.
        assert csp["connect-src"] == ["'self'", "http://push.test", "ws://push.test"], what


async def test_api_reference_pages_get_the_policy_their_viewer_needs(stack: Stack) -> None:
    async with stack.client() as http:
        docs = await http.get("/docs")
    assert docs.status_code == 200
    csp = assert_secured(docs.headers, "docs")
    assert "https://cdn.jsdelivr.net" in csp["script-src"]
    assert "cdn.jsdelivr.net" in docs.text


@pytest.mark.parametrize(
    ("base", "origins"),
    [
        ("https://push.example.com", ["https://push.example.com", "wss://push.example.com"]),
        ("http://127.0.0.1:8001", ["http://127.0.0.1:8001", "ws://127.0.0.1:8001"]),
    ],
)
def test_push_origins_cover_websocket_sse_and_socketio(base: str, origins: list[str]) -> None:
    assert push_origins(PushUrls.from_base(base)) == origins
    csp = directives(content_security_policy(PushUrls.from_base(base)))
    assert csp["connect-src"] == ["'self'", *origins]


def test_without_push_only_this_origin_is_reachable() -> None:
    assert directives(content_security_policy(PushUrls()))["connect-src"] == ["'self'"]


async def test_https_deployments_send_hsts(make_stack: StackFactory, sqlite_url: str) -> None:
    stack = await make_stack(sqlite_url, secure_cookies=True)
    async with stack.client() as http:
        r = await http.get("/api/me")
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_the_policy_names_exactly_the_board_pages_inline_script() -> None:
    assert len(BOARD_INLINE) == 1
    html = "<p>x</p><script>let a = 1;</script><script src=/js/x.js></script>"
    # echo -n 'let a = 1;' | openssl dgst -sha256 -binary | base64
    assert inline_script_hashes(html) == ["'sha256-xY6QKfH9PRsQnLz56nj6MBwiK5oHg+im1Jkpdp1x/Ck='"]

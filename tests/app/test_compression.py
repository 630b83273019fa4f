"""The snapshot and the pages' files go out gzip-compressed; the files are cached by
revalidation (ETag, Last-Modified, ``Cache-Control: no-cache``) and answer 304 while
unchanged, compressed or not."""

from __future__ import annotations

import copy
from collections.abc import Callable

import orjson
import pytest
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.app.conftest import Stack
from tests.app.test_api import make_project
from tidings.app.compression import LEVEL, MINIMUM_BYTES, Compression, accepts_gzip

IDENTITY = {"Accept-Encoding": "identity"}


async def test_the_snapshot_is_gzipped_for_clients_that_accept_it(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["owner"]) as http:
        for n in range(30):
            r = await http.post(
                f"/api/projects/{pid}/commands",
                json={
                    "command": {
                        "type": "create_story",
                        "title": f"Story {n}",
                        "description": "As a user I want it." * 5,
                    }
                },
            )
            assert r.status_code == 200, r.text
        plain = await http.get(f"/api/projects/{pid}", headers=IDENTITY)
        packed = await http.get(f"/api/projects/{pid}", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == packed.status_code == 200
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    # httpx decoded it: the same document; on the wire, a fraction of its size.
    assert orjson.loads(packed.content) == orjson.loads(plain.content)
    wire = int(packed.headers["content-length"])
    assert wire < len(plain.content) / 4, (wire, len(plain.content))
    # The compressed copy is kept by version: after a change it is the new document.
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "create_story", "title": "One more"}},
        )
        assert r.status_code == 200, r.text
        packed = await http.get(f"/api/projects/{pid}", headers={"Accept-Encoding": "gzip"})
        plain = await http.get(f"/api/projects/{pid}", headers=IDENTITY)
    assert packed.headers["content-encoding"] == "gzip"
    assert orjson.loads(packed.content) == orjson.loads(plain.content)
    assert orjson.loads(plain.content)["stories"][-1]["title"] == "One more"


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, GZIP;q=0.5")
    assert accepts_gzip("*")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("")


async def test_small_answers_are_sent_as_they_are(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["member"]) as http:
        me = await http.get("/api/me", headers={"Accept-Encoding": "gzip"})
        poll = await http.get(
            f"/api/projects/{p['pid']}/events?since=4", headers={"Accept-Encoding": "gzip"}
        )
    for r in (me, poll):
        assert r.status_code == 200
        assert len(r.content) < MINIMUM_BYTES
        assert "content-encoding" not in r.headers


async def test_page_files_are_compressed_and_revalidated(stack: Stack) -> None:
    async with stack.client() as http:
        for path in ("/", "/js/board.js", "/css/app.css"):
            first = await http.get(path, headers={"Accept-Encoding": "gzip"})
            assert first.status_code == 200, path
            assert first.headers["content-encoding"] == "gzip", path
            assert first.headers["cache-control"] == "no-cache", path
            etag = first.headers["etag"]
            assert etag.startswith('W/"'), (path, etag)
            again = await http.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
            assert again.status_code == 304, path
            assert again.content == b""
            assert again.headers["cache-control"] == "no-cache", path
            since = await http.get(
                path, headers={"If-Modified-Since": first.headers["last-modified"]}
            )
            assert since.status_code == 304, path
            plain = await http.get(path, headers=IDENTITY)
            assert "content-encoding" not in plain.headers, path
            assert plain.headers["etag"] == etag.removeprefix("W/"), path
            assert plain.content == first.content, path


# -- the layer against Starlette's middleware alone ------------------------------


class _StarletteOnly:
    """Starlette's GZipMiddleware with the ETag weakened: what ``Compression`` must send."""

    def __init__(self, app: ASGIApp) -> None:
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_BYTES, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def weak_etag(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if any(k.lower() == b"content-encoding" for k, _ in headers):
                    message["headers"] = [
                        (k, b"W/" + v if k.lower() == b"etag" and not v.startswith(b"W/") else v)
                        for k, v in headers
                    ]
            await send(message)

        await self.gzip(scope, receive, weak_etag)


async def _sent(
    make: Callable[[ASGIApp], ASGIApp],
    status: int,
    headers: list[tuple[bytes, bytes]],
    bodies: list[bytes],
    accept: bytes | None,
) -> tuple[list[Message], list[int]]:
    """The messages ``make(app)`` sends, and how many had gone out as each of the
    app's own sends returned (a start held back, or sent at once)."""
    messages: list[Message] = []
    progress: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        progress.append(len(messages))
        for n, body in enumerate(bodies):
            more = n < len(bodies) - 1
            await send({"type": "http.response.body", "body": body, "more_body": more})
            progress.append(len(messages))

    async def send(message: Message) -> None:
        messages.append(copy.deepcopy(message))

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    sent_headers = [] if accept is None else [(b"accept-encoding", accept)]
    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": sent_headers}
    await make(app)(scope, receive, send)
    return messages, progress


SMALL = b'{"ok": true}'
LARGE = orjson.dumps({"stories": [{"title": f"story {n}"} for n in range(200)]})
JSON_TYPE = (b"content-type", b"application/json")
ETAG = (b"etag", b'"7"')


@pytest.mark.parametrize(
    ("status", "headers", "bodies"),
    [
        (200, [ETAG, JSON_TYPE], [SMALL]),
        (200, [ETAG, JSON_TYPE], [LARGE]),
        (200, [ETAG, JSON_TYPE], [LARGE[:500], LARGE[500:]]),
        (200, [JSON_TYPE], [SMALL[:4], SMALL[4:]]),
        (200, [JSON_TYPE], [b""]),
        (200, [], [LARGE]),
        (404, [ETAG, JSON_TYPE], [LARGE]),
        (206, [JSON_TYPE], [LARGE]),
        (200, [ETAG, JSON_TYPE, (b"content-encoding", b"gzip")], [LARGE]),
        (200, [(b"content-type", b"text/event-stream; charset=utf-8")], [LARGE, LARGE]),
        (200, [(b"content-type", b"image/png")], [LARGE]),
        (200, [(b"content-type", b"video/mp4")], [LARGE]),
        (200, [(b"content-type", b"application/grpc+proto")], [LARGE]),
        (200, [(b"content-type", b"Text/HTML; charset=utf-8")], [LARGE]),
    ],
)
@pytest.mark.parametrize("accept", [b"gzip, br", b"identity", None])
async def test_what_goes_out_is_what_starlette_alone_sends(
    status: int, headers: list[tuple[bytes, bytes]], bodies: list[bytes], accept: bytes | None
) -> None:
    ours = await _sent(Compression, status, headers, bodies, accept)
    theirs = await _sent(_StarletteOnly, status, headers, bodies, accept)
    assert ours == theirs

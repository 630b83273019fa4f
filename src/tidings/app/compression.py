"""Responses the app builds go out gzip-compressed when the client accepts it.

The snapshot (``GET /api/projects/{id}``) is the big one: a project's every story,
comment and task as JSON, which gzip shrinks about tenfold. Its route compresses
it once per version (store/snapshots.py keeps the result), and this middleware
passes a body that already names its encoding. The pages' scripts and
styles go the same way. It sits inside the poll's fast path (``FastPoll``), so an
up-to-date poll, a few hundred bytes, never meets it; answers under
``MINIMUM_BYTES`` are sent as they are.

A compressed response is a different representation of the same resource, so a
strong ``ETag`` becomes weak (``W/"..."``); the static files' revalidation strips
the ``W/`` when it compares, so the browser's ``If-None-Match`` still gets a 304.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Bodies shorter than this are not worth a gzip header and the CPU.
MINIMUM_BYTES = 1024
#: zlib's level. bench/snapshot_gzip.py, 10,000 stories (7.5 MB raw): level 4 sends 1.43 MB
#: (x5.3), level 6 1.20 MB (x6.3) for about twice the CPU, 9 no smaller than 6 for four times.
LEVEL = 4


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value admits gzip (``gzip;q=0`` refuses it)."""
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


class Compression:
    def __init__(self, app: ASGIApp) -> None:
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_BYTES, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.gzip.app(scope, receive, send)
            return

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

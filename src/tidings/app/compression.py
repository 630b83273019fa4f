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

from starlette.middleware.gzip import GZipMiddleware, GZipResponder, IdentityResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Bodies shorter than this are not worth a gzip header and the CPU.
MINIMUM_BYTES = 1024
#: zlib's level. bench/snapshot_gzip.py, 10,000 stories (7.5 MB raw): level 4 sends 1.43 MB
#: (x5.3), level 6 1.20 MB (x6.3) for about twice the CPU, 9 no smaller than 6 for four times.
LEVEL = 4
#: Distinct Content-Type values whose verdict is kept (the app sends a handful).
MAX_SEEN_TYPES = 64


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value admits gzip (``gzip;q=0`` refuses it)."""
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


class Compression:
    """Starlette's gzip rules, without its per-request set-up for small answers.

    Most answers (a command's, an error, a poll with events) are one body message
    under ``MINIMUM_BYTES``, which Starlette's responder sends unchanged; building
    that responder (it re-normalizes its excluded content types each time) was a
    visible part of a command's CPU. This layer holds the start message, sends
    such an answer as it is, and hands anything else (a larger or streamed body,
    a file sent by path) to Starlette's responder, fed the same messages in the
    same order, so what goes out is what Starlette alone would send. Answers it
    never compresses (already encoded, partial, an excluded type) go through at
    once, as Starlette sends them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_BYTES, compresslevel=LEVEL)
        self._excluded = frozenset(self.gzip.exclude_content_types)
        #: Content-Type values met so far, and whether each is excluded.
        self._seen: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        through = False
        responder: GZipResponder | IdentityResponder | None = None

        async def respond(message: Message) -> None:
            nonlocal held, through, responder
            if through:
                await send(message)
            elif responder is not None:
                await responder.send_with_compression(message)
            elif held is None:  # the start
                message.setdefault("headers", [])
                if self._passes_through(message):
                    through = True
                    _weaken_etag(message)
                    await send(message)
                else:
                    held = message
            elif (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and len(message.get("body", b"")) < MINIMUM_BYTES
            ):
                through = True
                await send(held)
                await send(message)
            else:
                responder = self._responder(scope, send)
                await responder.send_with_compression(held)
                await responder.send_with_compression(message)

        await self.app(scope, receive, respond)

    def _passes_through(self, start: Message) -> bool:
        """Starlette's test for an answer it never compresses: already encoded,
        partial (206), or of an excluded media type."""
        if start["status"] == 206:
            return True
        content_type = None
        for name, value in start["headers"]:
            if name == b"content-encoding":
                return True
            if name == b"content-type" and content_type is None:
                content_type = value
        if content_type is None:
            return False
        excluded = self._seen.get(content_type)
        if excluded is None:
            excluded = self._excluded_type(content_type)
            if len(self._seen) < MAX_SEEN_TYPES:
                self._seen[content_type] = excluded
        return excluded

    def _excluded_type(self, content_type: bytes) -> bool:
        media = content_type.decode("latin-1").partition(";")[0].strip().lower()
        if media.startswith("application/grpc+"):
            return True
        return media in self._excluded or media.partition("/")[0] + "/*" in self._excluded

    def _responder(self, scope: Scope, send: Send) -> GZipResponder | IdentityResponder:
        gzip = self.gzip
        accept = next((v for k, v in scope["headers"] if k == b"accept-encoding"), b"")
        responder: GZipResponder | IdentityResponder
        if b"gzip" in accept:
            responder = GZipResponder(
                gzip.app,
                gzip.minimum_size,
                compresslevel=gzip.compresslevel,
                thread_minimum_size=gzip.thread_minimum_size,
                exclude_content_types=gzip.exclude_content_types,
            )
        else:
            responder = IdentityResponder(
                gzip.app, gzip.minimum_size, exclude_content_types=gzip.exclude_content_types
            )
        responder.send = _weakening(send)
        return responder


def _weaken_etag(start: Message) -> None:
    """An encoded answer's strong ETag becomes weak (a different representation)."""
    headers = start.get("headers", [])
    if any(k.lower() == b"content-encoding" for k, _ in headers):
        start["headers"] = [
            (k, b"W/" + v if k.lower() == b"etag" and not v.startswith(b"W/") else v)
            for k, v in headers
        ]


def _weakening(send: Send) -> Send:
    async def weakened(message: Message) -> None:
        if message["type"] == "http.response.start":
            _weaken_etag(message)
        await send(message)

    return weakened

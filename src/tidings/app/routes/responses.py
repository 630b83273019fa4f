"""Pre-encoded JSON responses and the error bodies documented for each route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tidings.app.schemas import ErrorBody
from tidings.protocol.advice import VERSION_HEADER


class JSON(Response):
    """orjson-encoded JSON (events are stored pre-encoded and spliced in as fragments)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


_VERSION = VERSION_HEADER.lower().encode("latin-1")


class VersionedJSON(JSON):
    """A JSON body at a project version: what ``JSON(body, headers=version_headers(v))``
    sends, header for header, with the header list built directly (a command's
    answer; Starlette's generic set-up was a measurable part of its CPU)."""

    def __init__(self, body: bytes, version: int, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        v = str(version).encode()
        self.raw_headers = [
            (b"etag", b'"' + v + b'"'),
            (_VERSION, v),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer."""
    return {status: {"model": ErrorBody, "description": "Error"} for status in statuses}

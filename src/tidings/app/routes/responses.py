"""Pre-encoded JSON responses and the error bodies documented for each route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tidings.app.schemas import ErrorBody


class JSON(Response):
    """orjson-encoded JSON (events are stored pre-encoded and spliced in as fragments)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer."""
    return {status: {"model": ErrorBody, "description": "Error"} for status in statuses}

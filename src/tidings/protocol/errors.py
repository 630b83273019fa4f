"""One error hierarchy, mapped to HTTP statuses and WebSocket close codes here only.

Every error body on the wire is ``{"error": code, "detail": text, ...extra}``.
WebSocket close codes 4000-4999 are application codes (RFC 6455 7.4.2); each
one a client may see is listed in docs/PROTOCOL.md.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CloseCode:
    """WebSocket / Socket.IO disconnect codes sent by push servers."""

    NORMAL = 1000
    GOING_AWAY = 1001  # draining: reconnect after the advertised delay
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007  # a text frame that is not UTF-8 (RFC 6455 8.1)
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013  # full: reconnect later, poll meanwhile
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401  # token missing, invalid or expired: fetch a new one
    FORBIDDEN = 4403  # project not in token, origin refused
    SLOW_CONSUMER = 4408  # send buffer stayed full past the limit
    RATE_LIMITED = 4429


class TidingsError(Exception):
    """Base of every error that reaches a client.

    A subclass gives its mapping where it is declared, in class keywords
    (``status``, ``code``, ``close_code``); what it leaves out it inherits.
    """

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    close_code: ClassVar[int] = CloseCode.BAD_REQUEST

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        code: str | None = None,
        close_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code
        if close_code is not None:
            cls.close_code = close_code

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class BadRequest(TidingsError):
    """A request that does not follow the API (the base's mapping: 400, 4400)."""


class BadMessage(TidingsError, code="bad_message", close_code=CloseCode.UNSUPPORTED_DATA):
    """A broker or push message that does not follow docs/PROTOCOL.md."""


class Unauthorized(
    TidingsError, status=401, code="unauthorized", close_code=CloseCode.UNAUTHORIZED
):
    """No credentials, or ones that are not valid."""


class BadToken(Unauthorized, code="bad_token"):
    """A push token that is missing, invalid or expired: fetch a new one."""


class Forbidden(TidingsError, status=403, code="forbidden", close_code=CloseCode.FORBIDDEN):
    """Valid credentials that do not reach this project or origin."""


class NotFound(TidingsError, status=404, code="not_found"):
    """No such resource."""


class Conflict(TidingsError, status=409, code="version_conflict"):
    """``expected_version`` was stale; the body carries ``version`` (the current one)."""


class Invalid(TidingsError, status=422, code="invalid"):
    """A well-formed request that the domain refuses (an unknown story, a bad move)."""


class TooLarge(TidingsError, status=413, code="too_large", close_code=CloseCode.TOO_BIG):
    """A body or message past its size limit."""


class UnsupportedMediaType(TidingsError, status=415, code="unsupported_media_type"):
    """An HTTP request body that is not labelled as JSON."""


class RateLimited(TidingsError, status=429, code="rate_limited", close_code=CloseCode.RATE_LIMITED):
    """Too many requests or messages."""


class Unavailable(
    TidingsError, status=503, code="unavailable", close_code=CloseCode.TRY_AGAIN_LATER
):
    """The push server is full or draining: reconnect later (to another server), poll meanwhile."""

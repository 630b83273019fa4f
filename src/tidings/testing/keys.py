"""The push-token keys every test and benchmark server runs with, and tokens signed
by them. Fixed and public: for servers on loopback only, never a deployment."""

from __future__ import annotations

from typing import Any

from tidings.protocol.tokens import KeyRing, sign_push_token

KEYS = KeyRing({"k1": b"a" * 32, "k2": b"b" * 32})


def token(user: int = 1, projects: list[int] | None = None, **kw: Any) -> str:
    """A push token for ``user`` watching ``projects`` (default 7 and 9)."""
    value, _ = sign_push_token(KEYS, user, projects or [7, 9], **kw)
    return value

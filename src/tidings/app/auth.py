"""Who is calling: the session cookie (browsers) or a bearer API token (programs).

Resolved credentials are cached per process for ``ttl`` seconds so the
up-to-date poll touches no database; signing out removes the credential at
once in this process and within ``ttl`` elsewhere. Cookie-authenticated
requests that change state must echo the CSRF cookie in a header
(double-submit), which a cross-site page cannot read.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from tidings.protocol.errors import Forbidden, Unauthorized
from tidings.store.accounts import Accounts, User

SESSION_COOKIE = "tidings_session"
CSRF_COOKIE = "tidings_csrf"
CSRF_HEADER = "X-Tidings-CSRF"

#: Credentials cached per process, at most (least recently used dropped first).
MAX_CACHED_CREDENTIALS = 50_000

#: Secrets longer than this are refused without a lookup.
MAX_SECRET_LENGTH = 256

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    via_cookie: bool


class Authenticator:
    def __init__(
        self,
        accounts: Accounts,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = accounts
        self._ttl = ttl
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[User, float]] = OrderedDict()

    async def _resolve(self, secret: str, kind: str) -> User | None:
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        key = (kind, secret)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[1] < self._ttl:
            self._cache.move_to_end(key)
            return hit[0]
        user = await self._accounts.resolve(secret, kind)
        if user is None:
            self._cache.pop(key, None)
            return None
        self._cache[key] = (user, now)
        while len(self._cache) > MAX_CACHED_CREDENTIALS:
            self._cache.popitem(last=False)
        return user

    def forget(self, secret: str) -> None:
        for kind in ("session", "api"):
            self._cache.pop((kind, secret), None)

    async def principal(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer":
                raise Unauthorized("Authorization must be 'Bearer <token>'")
            user = await self._resolve(secret.strip(), "api")
            if user is None:
                raise Unauthorized("unknown or expired API token")
            return Principal(user, via_cookie=False)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return None
        user = await self._resolve(cookie, "session")
        if user is None:
            return None
        return Principal(user, via_cookie=True)

    async def require(self, request: Request) -> Principal:
        principal = await self.principal(request)
        if principal is None:
            raise Unauthorized("sign in first (session cookie or bearer token)")
        if principal.via_cookie and request.method not in SAFE_METHODS:
            check_csrf(request)
        return principal


def check_csrf(request: Request) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie, header):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header (copy the {CSRF_COOKIE} cookie)")

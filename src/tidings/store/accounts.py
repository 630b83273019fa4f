"""Users, browser sessions and API tokens. Secrets are stored only as SHA-256
digests (they are random 256-bit values, so a fast hash is enough); passwords
with argon2id.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.exc import IntegrityError

from tidings.protocol.errors import Invalid
from tidings.store import schema as t
from tidings.store.engine import Engines


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str
    is_admin: bool


_T = TypeVar("_T")


class Offload(Protocol):
    """Runs a blocking call (an argon2 hash, ~190 ms) somewhere other than the event loop."""

    def __call__(self, fn: Callable[[], _T]) -> Awaitable[_T]: ...


async def _inline(fn: Callable[[], _T]) -> _T:
    return fn()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_secret() -> str:
    """32 random bytes, URL-safe, never starting with ``-``: a command line takes
    it as the value of ``--token`` (one in 64 would otherwise read as an option,
    and ``tidings watch --token $T`` would stop at its usage line)."""
    while True:
        secret = secrets.token_urlsafe(32)
        if not secret.startswith("-"):
            return secret


class Accounts:
    def __init__(
        self,
        engines: Engines,
        *,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
        offload: Offload = _inline,
    ) -> None:
        self._engines = engines
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._offload = offload
        # Verifying against this keeps unknown-email sign-ins as slow as wrong passwords.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(8))

    async def create_user(
        self, email: str, name: str, password: str, *, is_admin: bool = False
    ) -> User:
        email = email.strip().lower()
        if len(password) < 8:
            raise Invalid("password must be at least 8 characters", field="password")
        password_hash = await self._offload(lambda: self._hasher.hash(password))
        try:
            async with self._engines.writer.begin() as conn:
                user_id = (
                    await conn.execute(
                        insert(t.users)
                        .values(
                            email=email,
                            name=name,
                            password_hash=password_hash,
                            is_admin=is_admin,
                            created_at=self._clock(),
                        )
                        .returning(t.users.c.id)
                    )
                ).scalar_one()
        except IntegrityError:
            raise Invalid("a user with that email exists", field="email") from None
        return User(int(user_id), email, name, is_admin)

    async def by_email(self, email: str) -> User | None:
        async with self._engines.reader.connect() as conn:
            row = (
                await conn.execute(select(t.users).where(t.users.c.email == email.strip().lower()))
            ).first()
        return None if row is None else User(int(row.id), row.email, row.name, bool(row.is_admin))

    async def by_id(self, user_id: int) -> User | None:
        async with self._engines.reader.connect() as conn:
            row = (await conn.execute(select(t.users).where(t.users.c.id == user_id))).first()
        return None if row is None else User(int(row.id), row.email, row.name, bool(row.is_admin))

    async def check_password(self, email: str, password: str) -> User | None:
        async with self._engines.reader.connect() as conn:
            row = (
                await conn.execute(select(t.users).where(t.users.c.email == email.strip().lower()))
            ).first()
        stored = row.password_hash if row else self._dummy_hash
        try:
            await self._offload(lambda: self._hasher.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        return User(int(row.id), row.email, row.name, bool(row.is_admin))

    async def issue(self, user_id: int, kind: str, *, ttl: float | None, name: str = "") -> str:
        """Create a session (``kind="session"``) or API token (``"api"``); return its secret."""
        secret = new_secret()
        now = self._clock()
        async with self._engines.writer.begin() as conn:
            await conn.execute(
                insert(t.credentials).values(
                    secret_hash=_digest(secret),
                    user_id=user_id,
                    kind=kind,
                    name=name,
                    created_at=now,
                    expires_at=None if ttl is None else now + ttl,
                )
            )
        return secret

    async def resolve(self, secret: str, kind: str) -> User | None:
        now = self._clock()
        async with self._engines.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(t.users)
                    .join(t.credentials, t.credentials.c.user_id == t.users.c.id)
                    .where(
                        and_(
                            t.credentials.c.secret_hash == _digest(secret),
                            t.credentials.c.kind == kind,
                            or_(
                                t.credentials.c.expires_at.is_(None),
                                t.credentials.c.expires_at > now,
                            ),
                        )
                    )
                )
            ).first()
        return None if row is None else User(int(row.id), row.email, row.name, bool(row.is_admin))

    async def revoke(self, secret: str) -> None:
        async with self._engines.writer.begin() as conn:
            await conn.execute(
                delete(t.credentials).where(t.credentials.c.secret_hash == _digest(secret))
            )

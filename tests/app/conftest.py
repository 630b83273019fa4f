"""An app on a real database, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from tidings.app.main import build_services, create_app
from tidings.app.services import Services
from tidings.app.settings import AppSettings, PushUrls
from tidings.store.accounts import User
from tidings.testing.database import offset_project_ids

PASSWORD = "correct horse battery"

#: argon2id with minimal cost: the tests create many users; production keeps the defaults.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Stack:
    app: FastAPI
    services: Services
    settings: AppSettings

    def client(self, token: str | None = None, *, address: str = "127.0.0.1") -> httpx.AsyncClient:
        """A client calling from ``address`` (what the app sees as the client's IP)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://app", headers=headers)

    async def user(self, email: str, *, admin: bool = False) -> tuple[User, str]:
        """A user and an API token for it."""
        user = await self.services.accounts.create_user(
            email, email.split("@")[0].title(), PASSWORD, is_admin=admin
        )
        token = await self.services.accounts.issue(user.id, "api", ttl=None)
        return user, token


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    contexts = []

    async def make(
        database_url: str, *, hasher: PasswordHasher = CHEAP_HASHER, **overrides: object
    ) -> Stack:
        settings = AppSettings(
            database_url=database_url,
            push_urls=PushUrls.from_base("http://push.test"),
            **overrides,  # type: ignore[arg-type]
        )
        services = build_services(settings, hasher=hasher)
        app = create_app(settings, services=services)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        if settings.migrate:
            await offset_project_ids(services.engines)
        return Stack(app, services, settings)

    yield make
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


@pytest.fixture(params=[True, False], ids=["fast-paths", "framework"])
async def stack(make_stack: StackFactory, sqlite_url: str, request: pytest.FixtureRequest) -> Stack:
    """The app on SQLite, with and without the poll's and the commands' fast paths
    and the commands on the stdlib sqlite3 module (they must agree)."""
    return await make_stack(
        sqlite_url,
        fast_poll=request.param,
        fast_commands=request.param,
        sqlite_commands=request.param,
    )

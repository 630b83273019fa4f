"""An app on a real database, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import text

from tidings.app.main import build_services, create_app
from tidings.app.services import Services
from tidings.app.settings import AppSettings, PushUrls
from tidings.store.accounts import User
from tidings.store.engine import Engines

PASSWORD = "correct horse battery"

#: argon2id with minimal cost: the tests create many users; production keeps the defaults.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Stack:
    app: FastAPI
    services: Services
    settings: AppSettings

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://app", headers=headers
        )

    async def user(self, email: str, *, admin: bool = False) -> tuple[User, str]:
        """A user and an API token for it."""
        user = await self.services.accounts.create_user(
            email, email.split("@")[0].title(), PASSWORD, is_admin=admin
        )
        token = await self.services.accounts.issue(user.id, "api", ttl=None)
        return user, token


StackFactory = Callable[..., Awaitable[Stack]]


async def offset_project_ids(engines: Engines) -> None:
    """Start project ids at a random point: tests share one Redis, whose channels
    and version keys are named by project id, so ids must not collide across tests.
    """
    start = random.randrange(10**6, 10**12)
    async with engines.writer.begin() as conn:
        if (await conn.execute(text("SELECT count(*) FROM projects"))).scalar_one():
            return
        if engines.is_sqlite:
            # A placeholder row: SQLite hands out max(id) + 1 next.
            await conn.execute(
                text(
                    "INSERT INTO projects (id, name, version, pruned_through, snapshot, created_at)"
                    " VALUES (:id, '', 0, 0, '{}', 0)"
                ),
                {"id": start},
            )
        else:
            await conn.execute(
                text("SELECT setval(pg_get_serial_sequence('projects', 'id'), :id)"),
                {"id": start},
            )


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    contexts = []

    async def make(database_url: str, **overrides: object) -> Stack:
        settings = AppSettings(
            database_url=database_url,
            push_urls=PushUrls.from_base("http://push.test"),
            **overrides,  # type: ignore[arg-type]
        )
        services = build_services(settings, hasher=CHEAP_HASHER)
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


@pytest.fixture(params=[True, False], ids=["fast-poll", "framework-poll"])
async def stack(make_stack: StackFactory, sqlite_url: str, request: pytest.FixtureRequest) -> Stack:
    """The app on SQLite, with and without the poll fast path (they must agree)."""
    return await make_stack(sqlite_url, fast_poll=request.param)

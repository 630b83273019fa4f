"""An app on a real database, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from tidings.app.main import build_services, create_app
from tidings.app.services import Services
from tidings.app.settings import AppSettings, PushUrls
from tidings.store.accounts import User

PASSWORD = "correct horse battery"


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


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    contexts = []

    async def make(database_url: str, **overrides: object) -> Stack:
        settings = AppSettings(
            database_url=database_url,
            push_urls=PushUrls.from_base("http://push.test"),
            **overrides,  # type: ignore[arg-type]
        )
        services = build_services(settings)
        app = create_app(settings, services=services)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        return Stack(app, services, settings)

    yield make
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


@pytest.fixture
async def stack(make_stack: StackFactory, sqlite_url: str) -> Stack:
    return await make_stack(sqlite_url)

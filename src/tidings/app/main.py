"""Building the app: services from settings, routes, error handling, lifespan.

``create_app`` takes its collaborators explicitly (a broker may be passed in so
``tidings demo`` can share one in-process broker with its push server).
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from argon2 import PasswordHasher
from fastapi import FastAPI
from starlette.types import ASGIApp

from tidings import __version__
from tidings.app import errors
from tidings.app.auth import Authenticator
from tidings.app.compression import Compression
from tidings.app.fastcommand import FastCommands
from tidings.app.fastpoll import FastPoll
from tidings.app.fleet import PushFleet
from tidings.app.headers import SecurityHeaders, security_headers
from tidings.app.metrics import Metrics
from tidings.app.passwords import PasswordPool
from tidings.app.polling import Poller
from tidings.app.publisher import PokePublisher
from tidings.app.ratelimit import SignInLimiter, TelemetryLimiter
from tidings.app.routes import admin, ops, poll, projects, push, session, telemetry
from tidings.app.services import Services
from tidings.app.settings import AppSettings
from tidings.app.static_files import StaticPages
from tidings.app.sweeper import Sweeper
from tidings.app.versions import MembershipCache, VersionCache
from tidings.broker.base import Publisher, Subscriber
from tidings.broker.memory import MemoryBroker
from tidings.broker.redis_publisher import RedisPublisher
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.heap import freeze_startup_objects
from tidings.protocol.channels import app_client_name
from tidings.publish.advice import push_off_for_all
from tidings.store import migrate
from tidings.store.accounts import Accounts
from tidings.store.engine import create_engines
from tidings.store.events import EventStore
from tidings.store.flags import FlagCache, FlagStore

STATIC = Path(__file__).with_name("static")


def build_services(
    settings: AppSettings,
    broker: Publisher | None = None,
    *,
    hasher: PasswordHasher | None = None,
) -> Services:
    """Everything the app needs; ``hasher`` lets tests use cheap argon2 parameters."""
    engines = create_engines(settings.database_url, sqlite_commands=settings.sqlite_commands)
    store = EventStore(engines)
    passwords = PasswordPool(settings.password_workers, settings.password_queue)
    accounts = Accounts(engines, hasher=hasher, offload=passwords.run)
    metrics = Metrics()
    app_id = secrets.token_hex(8)
    # Named only where this process makes the connections (push/apps.py).
    client_name: str | None = None
    redis_config = settings.redis_config()
    if broker is None:
        if redis_config is not None:
            client_name = app_client_name(app_id)
            broker = RedisPublisher.from_config(redis_config, client_name=client_name)
        else:
            broker = MemoryBroker()
    control: Subscriber
    if isinstance(broker, MemoryBroker):
        control = broker.subscriber()
    elif redis_config is not None:
        control = RedisSubscriber(redis_config, client_name="tidings-app")
    else:  # pragma: no cover - a custom broker without a subscriber side
        control = MemoryBroker().subscriber()
    versions = VersionCache(store, broker, metrics, shared=settings.redis_url is not None)
    flags = FlagStore(engines)
    flag_cache = FlagCache(flags, ttl=settings.flag_cache_ttl)

    async def push_switched_off() -> bool:
        return push_off_for_all(await flag_cache.get())

    services = Services(
        settings=settings,
        engines=engines,
        store=store,
        accounts=accounts,
        auth=Authenticator(accounts, ttl=settings.auth_cache_ttl),
        flags=flags,
        flag_cache=flag_cache,
        versions=versions,
        members=MembershipCache(store, metrics),
        broker=broker,
        pokes=PokePublisher(
            broker,
            versions,
            metrics,
            full_push=settings.full_push,
            token_lifetime=settings.push_token_ttl,
            push_off=push_switched_off,
            app_id=app_id,
            client_name=client_name,
        ),
        # On the same publisher as the pokes: the in-process broker in the demo
        # (which a restart empties, so its first pass re-pokes the recent window).
        sweeper=Sweeper(store, broker, metrics, interval=settings.sweep_interval),
        metrics=metrics,
        signin_limiter=SignInLimiter(settings.signin_limits),
        passwords=passwords,
        telemetry_limiter=(
            TelemetryLimiter(settings.telemetry_limits) if settings.limit_telemetry else None
        ),
        fleet=PushFleet(control),
    )
    services.poller = Poller(services)
    return services


def create_app(settings: AppSettings, *, services: Services | None = None) -> FastAPI:
    services = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate:
            await migrate.upgrade(services.engines)
        services.pokes.start()
        services.sweeper.start()
        services.fleet.start()
        if settings.freeze_heap:
            freeze_startup_objects()
        try:
            yield
        finally:
            await services.fleet.close()
            await services.sweeper.close()
            await services.pokes.close()
            await services.broker.close()
            await services.engines.dispose()
            services.passwords.close()

    app = App(
        title="tidings app",
        version=__version__,
        summary="An event-sourced project tracker with a polling API and push tokens.",
        lifespan=lifespan,
        # Our own Prometheus metrics cover the app; the framework's OpenTelemetry
        # hooks cost ~30 us per request (environment and provider lookups).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    errors.install(app)
    for router in (
        session.router,
        projects.router,
        poll.router,
        push.router,
        admin.router,
        telemetry.router,
    ):
        app.include_router(router)
    app.include_router(ops.router)
    if STATIC.is_dir():
        app.mount("/", StaticPages(directory=STATIC, html=True), name="static")
    # Inside the poll's fast path: the snapshot and the pages' files are compressed,
    # an up-to-date poll never pays for it.
    app.add_middleware(Compression)
    if settings.fast_poll:
        app.add_middleware(FastPoll, services=services)
    app.add_middleware(errors.BodyRules, limit=settings.max_body_bytes)
    # Added last, so outermost: every response gets the headers.
    app.add_middleware(SecurityHeaders, push_urls=settings.push_urls, https=settings.secure_cookies)
    if settings.fast_commands:
        app.commands = functools.partial(
            FastCommands,
            services=services,
            limit=settings.max_body_bytes,
            headers=security_headers(settings.push_urls, settings.secure_cookies),
        )
    return app


class App(FastAPI):
    """The framework's app, with the commands' fast path (app/fastcommand.py) in
    front of its whole middleware stack when ``commands`` is set."""

    commands: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.commands is None else self.commands(stack)

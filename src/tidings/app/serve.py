"""Running the app under uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import uvicorn

from tidings.app.main import create_app
from tidings.app.settings import AppSettings
from tidings.environment import flag
from tidings.store import migrate
from tidings.store.engine import create_engines

ACCESS_LOG = flag(os.environ, "TIDINGS_ACCESS_LOG", False)


def uvicorn_config(app: object, host: str, port: int, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        loop="auto",
        http="auto",
        access_log=ACCESS_LOG,
        log_level="info",
        timeout_graceful_shutdown=10,
        **extra,  # type: ignore[arg-type]
    )


async def _migrate(url: str) -> None:
    engines = create_engines(url)
    try:
        await migrate.upgrade(engines)
    finally:
        await engines.dispose()


def serve_app(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.db:
        os.environ["TIDINGS_DATABASE_URL"] = args.db
    if args.workers > 1:
        if not os.environ.get("REDIS_URL"):
            raise SystemExit("--workers > 1 needs REDIS_URL: the in-process broker is per process")
        if not os.environ.get("TIDINGS_PUSH_KEYS"):
            raise SystemExit("--workers > 1 needs TIDINGS_PUSH_KEYS shared by every process")
        settings = AppSettings.from_env()
        if settings.migrate:
            # Once, here: workers starting together must not race on migrations.
            asyncio.run(_migrate(settings.database_url))
            os.environ["TIDINGS_MIGRATE"] = "0"
        uvicorn.run(
            "tidings.app.asgi:create_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=ACCESS_LOG,
        )
        return 0
    app = create_app(AppSettings.from_env(freeze_heap=True))
    uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()
    return 0

"""``tidings push``: run one push-server process on Redis until SIGTERM/SIGINT, then drain.

Configuration comes from the command line and the environment (``REDIS_URL``,
``TIDINGS_REDIS_CLUSTER`` and ``TIDINGS_REDIS_SHARDED`` as broker/redis_config.py
reads them, ``TIDINGS_PUSH_KEYS``, ``TIDINGS_ALLOWED_ORIGINS`` and the
``TIDINGS_PUSH_*`` limits of settings.py); cli.py only wires it in.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from tidings.broker.redis_config import RedisConfig
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.heap import freeze_startup_objects
from tidings.protocol.tokens import KeyRing
from tidings.push.logs import emit
from tidings.push.settings import from_env

log = logging.getLogger("tidings.push")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8001, help="port (0: any free port)")
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: several processes share the port, the kernel spreads connections",
    )
    parser.add_argument("--redis-url", default=None, help="default: $REDIS_URL")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="refuse (503/1013) past this"
    )
    parser.add_argument(
        "--drain-window", type=float, default=None, help="seconds to spread reconnects over"
    )
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        keys = KeyRing.from_env(os.environ)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    overrides: dict[str, object] = {}
    if args.max_connections is not None:
        overrides["max_connections"] = args.max_connections
    if args.drain_window is not None:
        overrides["drain_window"] = args.drain_window
    try:
        settings = from_env(None, **overrides)
        redis_config = RedisConfig.from_env(os.environ, args.redis_url)
    except ValueError as exc:
        print(f"tidings push: {exc}", file=sys.stderr)
        return 2

    async def serve() -> int:
        # Here, not at the top: ``tidings --help`` works without the push extra.
        from tidings.push.server import PushServer

        server = PushServer(settings, RedisSubscriber(redis_config), keys)
        await server.start(args.host, args.port, reuse_port=args.reuse_port)
        freeze_startup_objects()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"tidings push listening on {args.host}:{server.port}", flush=True)
        await stop.wait()
        emit(log, logging.INFO, "signal", action="drain")
        try:
            await server.drain()
        finally:
            await server.close()
        return 0

    return _run_loop(serve)


def _run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """uvloop when installed (measurably less CPU per write), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidings push")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

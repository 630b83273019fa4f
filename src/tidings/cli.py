"""The ``tidings`` command: demo, app, push, watch, and admin chores."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from tidings.app.admin_cli import add_arguments as admin_arguments
from tidings.client.watch import add_arguments as watch_arguments
from tidings.push.main import add_arguments as push_arguments
from tidings.sim.main import add_arguments as sim_arguments

Handler = Callable[[argparse.Namespace], int]


def _app(args: argparse.Namespace) -> int:
    from tidings.app.serve import serve_app

    return serve_app(args)


def _demo(args: argparse.Namespace) -> int:
    from tidings.demo import run_demo

    return run_demo(args)


def _push(args: argparse.Namespace) -> int:
    from tidings.push.main import run

    return int(run(args))


def _watch(args: argparse.Namespace) -> int:
    from tidings.client.watch import run

    return run(args)


def _sim(args: argparse.Namespace) -> int:
    from tidings.sim.main import run

    return run(args)


def _admin(args: argparse.Namespace) -> int:
    from tidings.app.admin_cli import run

    return asyncio.run(run(args))


def _add_server_args(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidings", description="Push for an event-sourced, polling web app."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="app and push server in one process on embedded defaults, with sample data"
    )
    _add_server_args(demo, 8000)
    demo.add_argument("--push-port", type=int, default=None, help="push port (default: port+1)")
    demo.add_argument("--db", default="tidings-demo.sqlite3", help="SQLite file (or a DB URL)")
    demo.add_argument("--fresh", action="store_true", help="start from an empty database")
    demo.add_argument(
        "--redis-url",
        default=None,
        help="use Redis and separate push processes instead of the in-process broker",
    )
    demo.add_argument(
        "--push-processes", type=int, default=2, help="push processes with --redis-url"
    )
    demo.set_defaults(handler=_demo)

    app = sub.add_parser("app", help="the app server (settings from TIDINGS_* and REDIS_URL)")
    _add_server_args(app, 8000)
    app.add_argument("--workers", type=int, default=1, help="worker processes (needs Redis)")
    app.add_argument("--db", default=None, help="database URL (default: TIDINGS_DATABASE_URL)")
    app.set_defaults(handler=_app)

    push = sub.add_parser("push", help="a push server (REDIS_URL, TIDINGS_PUSH_KEYS)")
    push_arguments(push)
    push.set_defaults(handler=_push)

    watch = sub.add_parser("watch", help="print a project's changes live")
    watch_arguments(watch)
    watch.set_defaults(handler=_watch)

    sim = sub.add_parser(
        "sim", help="simulate a fleet: steady, crash, deploy, or compare with a measured run"
    )
    sim_arguments(sim)
    sim.set_defaults(handler=_sim)

    admin_arguments(sub, _admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``tidings`` command: demo, app, push, watch, token, publish, and admin chores.

Each command belongs to a role, installed by an extra (pyproject.toml): ``app``
and the admin chores need ``tidings[app]``, ``push`` needs ``tidings[push]``,
``demo`` needs both (``tidings[demo]``); the rest run on the core install.
Building the parser imports no role's dependencies; a command whose role is
missing says which extra to install, in one line, before doing anything.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from collections.abc import Callable, Sequence

from tidings.app.admin_cli import add_arguments as admin_arguments
from tidings.client.watch import add_arguments as watch_arguments
from tidings.publish.cli import add_publish_arguments, add_token_arguments
from tidings.push.main import add_arguments as push_arguments
from tidings.sim.main import add_arguments as sim_arguments

Handler = Callable[[argparse.Namespace], int]

#: The extra of each role, and modules whose absence means it is not installed.
ROLES: dict[str, tuple[str, ...]] = {
    "push": ("prometheus_client", "httptools"),
    "app": ("fastapi", "starlette", "sqlalchemy", "alembic", "argon2", "uvicorn", "aiosqlite"),
}
ROLES["demo"] = ROLES["app"] + ROLES["push"]

#: Exit code when a command's role is not installed.
MISSING_ROLE = 2


def missing_role(extra: str, modules: Sequence[str] | None = None) -> str | None:
    """The one-line error for a role whose modules are not all importable, or None."""
    absent = [m for m in modules or ROLES[extra] if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (
        f"this command needs the {extra!r} extra: pip install 'tidings[{extra}]' "
        f"(missing: {', '.join(absent)})"
    )


def _role(extra: str, handler: Handler) -> Handler:
    """``handler``, refused with a one-line error when ``extra`` is not installed
    (checked first, and again for any module the role fails to import)."""

    def run(args: argparse.Namespace) -> int:
        refusal = missing_role(extra)
        if refusal is None:
            try:
                return handler(args)
            except ModuleNotFoundError as exc:
                if not exc.name or exc.name.partition(".")[0] == "tidings":
                    raise
                refusal = missing_role(extra, [exc.name])
                if refusal is None:  # importable now: not a missing extra
                    raise
        print(f"tidings {args.command}: {refusal}", file=sys.stderr)
        return MISSING_ROLE

    return run


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


def _token(args: argparse.Namespace) -> int:
    from tidings.publish.cli import run_token

    return run_token(args)


def _publish(args: argparse.Namespace) -> int:
    from tidings.publish.cli import run_publish

    return run_publish(args)


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
    demo.set_defaults(handler=_role("demo", _demo))

    app = sub.add_parser("app", help="the app server (settings from TIDINGS_* and REDIS_URL)")
    _add_server_args(app, 8000)
    app.add_argument("--workers", type=int, default=1, help="worker processes (needs Redis)")
    app.add_argument("--db", default=None, help="database URL (default: TIDINGS_DATABASE_URL)")
    app.set_defaults(handler=_role("app", _app))

    push = sub.add_parser("push", help="a push server (REDIS_URL, TIDINGS_PUSH_KEYS)")
    push_arguments(push)
    push.set_defaults(handler=_role("push", _push))

    watch = sub.add_parser("watch", help="print a project's changes live")
    watch_arguments(watch)
    watch.set_defaults(handler=_watch)

    sim = sub.add_parser(
        "sim", help="simulate a fleet: steady, crash, deploy, or compare with a measured run"
    )
    sim_arguments(sim)
    sim.set_defaults(handler=_sim)

    token = sub.add_parser(
        "token", help="mint a push token for testing (key from TIDINGS_PUSH_KEYS)"
    )
    add_token_arguments(token)
    token.set_defaults(handler=_token)

    publish = sub.add_parser(
        "publish", help="publish one poke: the version key's compare-and-set, then PUBLISH"
    )
    add_publish_arguments(publish)
    publish.set_defaults(handler=_publish)

    admin_arguments(sub, _role("app", _admin))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

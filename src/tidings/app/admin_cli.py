"""Admin chores from the command line: migrations, users, API tokens, push flags."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any


def add_arguments(sub: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    def db_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--db",
            default=os.environ.get("TIDINGS_DATABASE_URL", "sqlite:///tidings.sqlite3"),
            help="database URL (default: TIDINGS_DATABASE_URL)",
        )
        parser.set_defaults(handler=handler)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_arg(db_sub.add_parser("upgrade", help="apply migrations"))
    rebuild = db_sub.add_parser(
        "rebuild", help="rebuild the read model (stories, members) from the event log"
    )
    rebuild.add_argument(
        "--project", type=int, default=None, help="only this project (default: every project)"
    )
    db_arg(rebuild)

    users = sub.add_parser("users", help="user accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create a user")
    add.add_argument("email")
    add.add_argument("name")
    add.add_argument("--password", required=True)
    add.add_argument("--admin", action="store_true")
    db_arg(add)

    tokens = sub.add_parser("tokens", help="API tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tokens_sub.add_parser("create", help="print a new API token for a user")
    create.add_argument("email")
    create.add_argument("--name", default="cli")
    db_arg(create)

    events = sub.add_parser("events", help="event history")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    prune = events_sub.add_parser(
        "prune", help="drop a project's old events (polls from before them must reload)"
    )
    prune.add_argument("project_id", type=int)
    prune.add_argument("--keep", type=int, required=True, help="newest versions to keep")
    db_arg(prune)

    flags = sub.add_parser("flags", help="push kill switch, rollout and project overrides")
    flags_sub = flags.add_subparsers(dest="flags_command", required=True)
    db_arg(flags_sub.add_parser("show", help="print the flags as JSON"))
    enable = flags_sub.add_parser("push", help="the global kill switch")
    enable.add_argument("state", choices=["on", "off"])
    db_arg(enable)
    rollout = flags_sub.add_parser("rollout", help="percentage of users with push")
    rollout.add_argument("percent", type=int, choices=range(0, 101), metavar="0..100")
    db_arg(rollout)
    project = flags_sub.add_parser("project", help="override push for one project")
    project.add_argument("project_id", type=int)
    project.add_argument("state", choices=["on", "off", "default"])
    db_arg(project)


async def run(args: argparse.Namespace) -> int:
    # Imported here: `tidings push` and `tidings watch` need none of the database stack.
    from tidings.protocol.errors import NotFound
    from tidings.store import migrate
    from tidings.store.accounts import Accounts
    from tidings.store.engine import create_engines
    from tidings.store.events import EventStore
    from tidings.store.flags import PROJECT_PREFIX, PUSH_ENABLED, PUSH_ROLLOUT, FlagStore

    engines = create_engines(args.db)
    try:
        await migrate.upgrade(engines)
        if args.command == "db" and args.db_command == "rebuild":
            log = EventStore(engines)
            pids = [args.project] if args.project is not None else await log.project_ids()
            for pid in pids:
                try:
                    version = await log.rebuild(pid)
                except NotFound:
                    raise SystemExit(f"no project {pid}") from None
                print(json.dumps({"project": pid, "version": version}))
        elif args.command == "db":
            print("database is at the latest schema")
        elif args.command == "users":
            accounts = Accounts(engines)
            user = await accounts.create_user(
                args.email, args.name, args.password, is_admin=args.admin
            )
            print(json.dumps({"id": user.id, "email": user.email, "is_admin": user.is_admin}))
        elif args.command == "tokens":
            accounts = Accounts(engines)
            found = await accounts.by_email(args.email)
            if found is None:
                raise SystemExit(f"no user {args.email!r}")
            print(await accounts.issue(found.id, "api", ttl=None, name=args.name))
        elif args.command == "events":
            through = await EventStore(engines).prune(args.project_id, args.keep)
            print(json.dumps({"project": args.project_id, "pruned_through": through}))
        elif args.command == "flags":
            store = FlagStore(engines)
            if args.flags_command == "push":
                await store.set(PUSH_ENABLED, args.state == "on")
            elif args.flags_command == "rollout":
                await store.set(PUSH_ROLLOUT, args.percent)
            elif args.flags_command == "project":
                value = None if args.state == "default" else args.state == "on"
                await store.set(f"{PROJECT_PREFIX}{args.project_id}", value)
            print(json.dumps((await store.load()).to_json()))
    finally:
        await engines.dispose()
    return 0

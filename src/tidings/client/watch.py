"""``tidings watch PROJECT``: follow projects live and print one line per change.

For operators and tests: it shows what a client sees (each applied event, each
reload, each status change) with the same controller the browser runs.
src/tidings/cli.py adds the subcommand with ``add_arguments`` and calls ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from tidings.client.actions import Status
from tidings.client.driver import ClientOptions, SyncClient, Transport
from tidings.domain.project import Snapshot

#: Characters of an event's data printed before it is cut.
MAX_DATA_CHARS = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("projects", metavar="PROJECT", type=int, nargs="+", help="project id")
    parser.add_argument(
        "--url",
        default=os.environ.get("TIDINGS_URL", "http://127.0.0.1:8000"),
        help="the app's base URL (default: $TIDINGS_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TIDINGS_TOKEN"),
        help="API token (default: $TIDINGS_TOKEN)",
    )
    parser.add_argument(
        "--transport",
        choices=[t.value for t in Transport],
        default=Transport.WS.value,
        help="push transport (default: ws)",
    )
    parser.add_argument(
        "--push-url", default=None, help="push endpoint (default: from /api/client-config)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until interrupted)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")


class Printer:
    """Formats what the client reports, one line each, flushed at once."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def _line(self, record: dict[str, Any], text: str) -> None:
        if self.as_json:
            self.out.write(orjson.dumps({"t": round(time.time(), 3), **record}).decode() + "\n")
        else:
            self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.out.flush()

    def applied(self, project: int, events: Sequence[dict[str, Any]], _: Snapshot | None) -> None:
        for e in events:
            data = orjson.dumps(e.get("data", {})).decode()
            if len(data) > MAX_DATA_CHARS:
                data = data[: MAX_DATA_CHARS - 3] + "..."
            record = {"kind": "event", "project": project, "event": e}
            text = f"project {project} v{e['version']} {e['type']} by {e.get('actor')} {data}"
            self._line(record, text)

    def reloaded(self, project: int, snapshot: Snapshot) -> None:
        stories = len(snapshot.get("stories", []))
        record = {"kind": "snapshot", "project": project, "version": snapshot["version"]}
        text = (
            f"project {project} loaded at v{snapshot['version']}: "
            f"{snapshot.get('name', '')!r}, {stories} stories"
        )
        self._line(record, text)

    def status(self, status: Status) -> None:
        self._line({"kind": "status", "status": str(status)}, f"status {status}")


async def watch(args: argparse.Namespace, out: TextIO) -> None:
    printer = Printer(out, args.json)
    options = ClientOptions(
        url=args.url,
        projects=args.projects,
        api_token=args.token,
        transport=Transport(args.transport),
        push_url=args.push_url,
    )
    client = SyncClient(
        options,
        on_apply=printer.applied,
        on_reload=printer.reloaded,
        on_status=printer.status,
    )
    if args.duration is None:
        await client.run()
        return
    runner = asyncio.ensure_future(client.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(runner), args.duration)
    client.stop()
    await runner


def run(args: argparse.Namespace) -> int:
    """Run until interrupted (or ``--duration``); 0 on a clean stop, 2 without a token."""
    if not args.token:
        print("tidings watch: an API token is needed (--token or $TIDINGS_TOKEN)", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(args, sys.stdout))
    return 0

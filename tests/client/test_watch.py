"""``tidings watch``: its arguments and its output lines."""

from __future__ import annotations

import argparse
import io
import json

from tidings.client.actions import Status
from tidings.client.watch import Printer, add_arguments, run, watch


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_arguments() -> None:
    args = parse("7", "9", "--url", "http://app", "--token", "t", "--transport", "sse")
    assert args.projects == [7, 9]
    assert (args.url, args.token, args.transport, args.json) == ("http://app", "t", "sse", False)


def test_without_a_token_it_says_so_and_fails() -> None:
    args = parse("7", "--url", "http://app")
    args.token = None
    assert run(args) == 2


def test_one_line_per_event_and_status() -> None:
    out = io.StringIO()
    printer = Printer(out, as_json=False)
    snapshot = {"id": 7, "name": "Website", "version": 42, "stories": [{}, {}]}
    printer.reloaded(7, snapshot)
    printer.applied(
        7, [{"version": 43, "type": "project_renamed", "data": {"name": "Shop"}, "actor": 1}], None
    )
    printer.status(Status.LIVE)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("project 7 loaded at v42: 'Website', 2 stories")
    assert lines[1].endswith('project 7 v43 project_renamed by 1 {"name":"Shop"}')
    assert lines[2].endswith("status live")


def test_json_lines() -> None:
    out = io.StringIO()
    Printer(out, as_json=True).status(Status.OFFLINE)
    record = json.loads(out.getvalue())
    assert record["kind"] == "status" and record["status"] == "offline"


async def test_an_unreachable_app_shows_offline_and_stops_on_time() -> None:
    args = parse("7", "--url", "http://127.0.0.1:9", "--token", "t", "--duration", "0.3")
    out = io.StringIO()
    await watch(args, out)
    statuses = [line.split()[-1] for line in out.getvalue().splitlines()]
    assert statuses == ["polling_push_off", "offline"]

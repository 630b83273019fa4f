"""``tidings watch`` as an operator runs it, against the real stack: it prints a
change live."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

from tidings.testing.stack import Stack

#: Start-up of a fresh Python process on a busy machine, then client-config,
#: snapshot, token and subscription.
GO_LIVE = 30.0
#: From the commit to the printed line.
PRINTED_WITHIN = 1.0


async def read_until(
    stream: asyncio.StreamReader, within: float, wanted: Any, seen: list[dict[str, Any]]
) -> dict[str, Any]:
    """Read JSON lines until one satisfies ``wanted``; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing wanted printed within {within} s: {seen}")
        try:
            line = await asyncio.wait_for(stream.readline(), remaining)
        except TimeoutError:
            continue
        if not line:
            raise AssertionError(f"tidings watch ended early: {seen}")
        record: dict[str, Any] = json.loads(line)
        seen.append(record)
        if wanted(record):
            return record


async def test_watch_prints_a_change_live(stack: Stack) -> None:
    project, version = await stack.new_project("watched")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidings",
        "watch",
        str(project),
        "--url",
        stack.app_url,
        "--token",
        stack.admin_token,
        "--json",
        "--duration",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        snapshot = {"kind": "snapshot", "project": project, "version": version}
        live = {"kind": "status", "status": "live"}

        def ready(_: dict[str, Any]) -> bool:
            # The snapshot and the push connection load concurrently: either may
            # be printed first, and the change must come after both.
            printed = [{k: v for k, v in r.items() if k != "t"} for r in seen]
            return snapshot in printed and live in printed

        try:
            await read_until(proc.stdout, GO_LIVE, ready, seen)
        except AssertionError as exc:
            # What the process said on its way out, for whoever reads the failure.
            assert proc.stderr is not None
            said = await asyncio.wait_for(proc.stderr.read(), 10)
            tail = said.decode(errors="replace")[-3000:]
            raise AssertionError(f"{exc}; stderr: {tail}") from None
        new_version, committed = await stack.change(project, "Printed live")
        record = await read_until(
            proc.stdout, PRINTED_WITHIN + 1.0, lambda r: r["kind"] == "event", seen
        )
        printed = time.time()
        assert record["project"] == project
        assert record["event"]["version"] == new_version
        assert record["event"]["data"]["story"]["title"] == "Printed live"
        latency = printed - committed
        assert latency < PRINTED_WITHIN, f"printed {latency:.3f} s after the commit"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

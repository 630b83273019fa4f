"""Bounded waits on a running system: a condition, a port, an HTTP answer.

Every wait has a deadline and says what it waited for when it runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: str,
    *,
    step: float = 0.05,
    wake: asyncio.Event | None = None,
    detail: Callable[[], str] | None = None,
) -> float:
    """Wait until ``check()`` is true (it may be a coroutine); the seconds it took.

    Fails with an AssertionError naming ``what`` (and ``detail()``, if given)
    after ``within`` seconds. ``check`` runs every ``step`` seconds, or sooner
    when ``wake`` is set: pass the event a callback sets so a wait ends as
    soon as the state it watches moves.
    """
    start = time.monotonic()
    while True:
        ok = check()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return time.monotonic() - start
        remaining = start + within - time.monotonic()
        if remaining <= 0:
            extra = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {within:.2f} s waiting for {what}{extra}")
        if wake is None:
            await asyncio.sleep(min(step, remaining))
        else:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(step, remaining))


async def answers(url: str, status: int = 200) -> bool:
    """Whether ``GET url`` answers ``status`` within a second."""
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            return (await http.get(url)).status_code == status
    except httpx.HTTPError:
        return False


async def port_open(port: int) -> bool:
    """Whether 127.0.0.1:``port`` accepts a connection within a second."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def wait_http_ok(
    url: str,
    proc: subprocess.Popen[bytes],
    deadline: float,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Return once ``url`` answers 200; raise with the process's output if it exits
    or ``deadline`` (a ``time.monotonic()`` value) passes first."""
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 in time:\n{output()[-3000:]}")
        time.sleep(0.1)


def wait_port(port: int, proc: subprocess.Popen[Any], seconds: float = 30) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; raise if ``proc`` exits
    or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {port} within {seconds} s")

"""Waiting for a real process under test to answer, with a deadline."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx


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

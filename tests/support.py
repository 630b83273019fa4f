"""What many tests need and none owns: the rule for a missing service (skip
locally, fail in CI), and, from the shared harness (tidings.testing), a free
port and a bounded wait on a condition.

Fixtures stay in conftest.py; this module holds plain functions so that
harnesses outside pytest's fixture graph can import them too.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

from tidings.testing.processes import free_port
from tidings.testing.waiting import until

__all__ = ["free_port", "require_service", "unavailable", "until"]


def unavailable(message: str, ci_hint: str = "") -> NoReturn:
    """Skip on a developer's machine; fail under ``CI``, where nothing may skip silently.

    ``ci_hint`` (added to the failure only) says what CI does to provide it.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{message}{ci_hint}")
    pytest.skip(message)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Return if ``host:port`` accepts a connection; otherwise :func:`unavailable`."""
    if not _answers(host, port):
        unavailable(
            f"{name} is not answering on {host}:{port}",
            " (CI must run this test; .ci/run starts it)",
        )

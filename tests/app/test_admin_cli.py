"""The admin commands, run as an operator would (a real process, a real database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def tidings(db: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        env={**os.environ, "TIDINGS_DATABASE_URL": db},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_users_tokens_flags_and_pruning(sqlite_url: str) -> None:
    tidings(sqlite_url, "db", "upgrade")
    user = json.loads(
        tidings(sqlite_url, "users", "add", "op@x.io", "Op", "--password", "password1", "--admin")
    )
    assert user["is_admin"] is True
    assert len(tidings(sqlite_url, "tokens", "create", "op@x.io")) >= 40
    assert json.loads(tidings(sqlite_url, "flags", "push", "off"))["enabled"] is False
    assert json.loads(tidings(sqlite_url, "flags", "rollout", "25"))["rollout_percent"] == 25
    flags = json.loads(tidings(sqlite_url, "flags", "project", "7", "on"))
    assert flags["projects"] == {"7": True}
    assert json.loads(tidings(sqlite_url, "flags", "project", "7", "default"))["projects"] == {}
    assert json.loads(tidings(sqlite_url, "flags", "show"))["enabled"] is False


@pytest.mark.parametrize("args", [["flags", "rollout", "101"], ["users", "add", "x@y.z"]])
def test_bad_arguments_are_refused(sqlite_url: str, args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        env={**os.environ, "TIDINGS_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "usage:" in out.stderr

"""``tidings app --workers 2``: several processes sharing Redis, as deployed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from tests.conftest import free_port
from tidings.testing.waiting import wait_http_ok


def test_two_workers_start_migrate_once_and_serve(sqlite_url: str, redis_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": sqlite_url,
        "REDIS_URL": redis_url,
        "TIDINGS_PUSH_KEYS": "k1:" + "s" * 40,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings", "app", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc, time.monotonic() + 60)
        answers = {httpx.get(f"http://127.0.0.1:{port}/api/me").status_code for _ in range(20)}
        assert answers == {401}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    log = out.decode()
    assert log.count("Application startup complete") == 2, log
    assert "died" not in log, log


def test_workers_without_redis_are_refused(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["TIDINGS_DATABASE_URL"] = sqlite_url
    out = subprocess.run(
        [sys.executable, "-m", "tidings", "app", "--port", str(free_port()), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "REDIS_URL" in out.stderr

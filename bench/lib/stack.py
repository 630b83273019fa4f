"""The real parts a system benchmark runs against: a private Redis, a fresh
PostgreSQL database, ``tidings app`` and ``tidings push`` processes (pinned to a
core), and crowd processes of lean clients (bench/lib/crowd.py). Every wait has
a timeout; every process started here is stopped by the same object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from tidings.testing.database import create_database, drop_database
from tidings.testing.processes import (
    cpu_seconds,
    free_port,
    free_port_pair,
    pinned,
    stop_popen,
    tidings_cli,
    tidings_process,
)
from tidings.testing.redis import RedisServer
from tidings.testing.waiting import wait_port

__all__ = [
    "cpu_seconds",
    "free_port",
    "free_port_pair",
    "pinned",
    "stop_process",
    "tidings_cli",
    "wait_port",
]

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("TIDINGS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CROWD = Path(__file__).resolve().parent / "crowd.py"
#: Bound on a ``tidings app`` or ``tidings push`` process answering once started.
READY_TIMEOUT = 60.0


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    stop_popen(proc, sig, timeout=20)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Redis(RedisServer):
    """A private redis-server: other work on the machine shares no channel or key."""

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.start()


class Postgres:
    """A fresh database, dropped on stop."""

    def __init__(self) -> None:
        self.url = asyncio.run(create_database(PG_ADMIN, prefix="bench"))

    def stop(self) -> None:
        asyncio.run(drop_database(PG_ADMIN, self.url))


def database(store: str) -> tuple[str, Postgres | None]:
    if store == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='tidings-bench-')}/bench.sqlite3", None
    pg = Postgres()
    return pg.url, pg


class Process:
    """A ``tidings app`` or ``tidings push`` process on a free port (pinned to
    ``core``), ready when it answers; its output is dropped."""

    def __init__(
        self,
        kind: str,
        env: dict[str, str],
        core: int | None,
        extra: list[str],
        port: int | None = None,
    ) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = tidings_process(
            kind, [kind, "--port", str(self.port), *extra], env, None, core
        )
        self.process.start()
        path = "/healthz" if kind == "app" else "/readyz"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + path, timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline or not self.process.alive:
                self.process.stop()
                raise RuntimeError(f"tidings {kind} did not become ready")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value for every sample of ``GET /metrics``."""
        text = httpx.get(self.base + "/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def kill(self) -> None:
        """kill -9: no drain, no goodbye."""
        if self.process.alive:
            self.process.signal(signal.SIGKILL)
        if self.process.popen is not None:
            self.process.popen.wait(timeout=10)
        self.process.forget()

    def stop(self) -> None:
        self.process.stop(timeout=20)


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """One sample from ``Process.metrics()`` (0 when absent)."""
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return values.get(f"{name}{{{inner}}}", 0.0)
    return values.get(name, 0.0)


def sum_metric(values: dict[str, float], name: str) -> dict[str, float]:
    """Every label value of a one-label series."""
    found: dict[str, float] = {}
    pattern = re.compile(re.escape(name) + r'\{\w+="([^"]*)"\}$')
    for key, value in values.items():
        match = pattern.match(key)
        if match:
            found[match.group(1)] = value
    return found


class Crowd:
    """A crowd process: lean clients on the real controller (bench/lib/crowd.py)."""

    def __init__(self, spec: dict[str, Any], core: int | None, work: Path) -> None:
        self.spec_path = work / f"crowd-{uuid.uuid4().hex[:8]}.json"
        self.spec_path.write_text(json.dumps(spec))
        self.proc = subprocess.Popen(
            pinned([sys.executable, str(CROWD), str(self.spec_path)], core),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(work / "crowd.stderr", "ab"),  # noqa: SIM115 (closed with the process)
            text=True,
            bufsize=1,
        )
        self.progress: dict[str, Any] = {}
        self.replies: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "progress" in message:
                    self.progress = message["progress"]
                else:
                    self.replies.append(message)
                self._cond.notify_all()

    def send(self, cmd: dict[str, Any], reply: str, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.replies:
                    if reply in message:
                        self.replies.remove(message)
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"crowd did not answer {cmd} within {timeout} s")
                self._cond.wait(min(left, 0.5))

    def mark(self, name: str, at: float | None = None) -> None:
        """Snapshot the crowd's counters; ``at`` (the driver's clock when the event
        happened) dates the mark, since a busy crowd reads the command late."""
        self.send({"cmd": "mark", "name": name, "at": at}, "marked")

    def report(self, path: Path) -> dict[str, Any]:
        self.send({"cmd": "report", "path": str(path)}, "reported", timeout=120)
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_until(predicate: Any, timeout: float, what: str, step: float = 0.2) -> float:
    """Poll ``predicate`` until true; the seconds it took. RuntimeError past ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def source_addresses(count: int, base: int = 20) -> list[str]:
    """Client source addresses across 127.0.0.0/8, one per 2,000 clients (ephemeral ports)."""
    return [f"127.{base + n}.0.1" for n in range(max(1, (count + 1999) // 2000))]

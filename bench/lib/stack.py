"""The real parts a system benchmark runs against: a private Redis, a fresh
PostgreSQL database, ``tidings app`` and ``tidings push`` processes (pinned to a
core), and crowd processes of lean clients (bench/lib/crowd.py). Every wait has
a timeout; every process started here is stopped by the same object.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("TIDINGS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TICKS = os.sysconf("SC_CLK_TCK")
CROWD = Path(__file__).resolve().parent / "crowd.py"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], core: int | None) -> list[str]:
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) <= core:
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {port} within {seconds} s")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def tidings_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


class Redis:
    """A private redis-server: other work on the machine shares no channel or key."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(work)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.proc)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc)


class Postgres:
    """A fresh database, dropped on stop."""

    def __init__(self) -> None:
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        subprocess.run(
            ["psql", PG_ADMIN, "-qc", f"CREATE DATABASE {self.name}"], check=True, timeout=60
        )
        self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.name

    def stop(self) -> None:
        subprocess.run(
            ["psql", PG_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"],
            check=False,
            timeout=60,
            capture_output=True,
        )


def database(store: str) -> tuple[str, Postgres | None]:
    if store == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='tidings-bench-')}/bench.sqlite3", None
    pg = Postgres()
    return pg.url, pg


class Process:
    """A ``tidings app`` or ``tidings push`` process on a free port, ready when it answers."""

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
        cmd = [sys.executable, "-m", "tidings", kind, "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(
            pinned(cmd, core), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        path = "/healthz" if kind == "app" else "/readyz"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + path, timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                stop_process(self.proc)
                raise RuntimeError(f"tidings {kind} did not become ready")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

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
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)


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

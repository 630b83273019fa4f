"""Processes under test: ``tidings app``/``tidings push`` and the services around them.

A :class:`Process` writes its output to a log file (or nowhere), is stopped by
its owner, and is killed at interpreter exit and (Linux) when the process that
started it dies, so a crashed test run leaves nothing listening.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidings.testing.waiting import wait_http_ok

#: Bound on process start-up (imports are slow on a busy 2-core machine).
START_TIMEOUT = 40.0
#: Bound on a process ending once asked (SIGTERM), then once killed.
STOP_TIMEOUT = 10.0

_live: set[subprocess.Popen[bytes]] = set()


def _kill_leftovers() -> None:
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    _live.clear()


atexit.register(_kill_leftovers)


def die_with_parent() -> None:
    """In the child: SIGKILL it if its parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 (TCP, or UDP with ``socket.SOCK_DGRAM``) free a moment ago."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port p with p and p + 1 both free a moment ago (``tidings demo`` puts its push
    server on p + 1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _bindable(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its ``TIDINGS_*`` and ``REDIS_*`` settings,
    plus ``extra``: a child is configured by its caller only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "REDIS_"))}
    env.update(extra)
    return env


def tidings_argv(*args: str) -> list[str]:
    """``tidings ARGS`` as this interpreter runs it."""
    return [sys.executable, "-m", "tidings", *args]


def tidings_cli(*args: str, env: dict[str, str], timeout: float = 120.0) -> str:
    """Run ``tidings ARGS`` to completion; its stdout, stripped."""
    out = subprocess.run(
        tidings_argv(*args), env=env, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"tidings {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout.strip()


def pinned(argv: list[str], core: int | None) -> list[str]:
    """``argv`` run on one CPU core (``taskset``), when there is such a core and a taskset."""
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) <= core:
        return argv
    return ["taskset", "-c", str(core), *argv]


def stop_popen(
    popen: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> None:
    """Send ``sig`` and wait; SIGKILL after ``timeout`` seconds."""
    if popen.poll() is None:
        popen.send_signal(sig)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=timeout)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    """One long-running process, its output appended to ``log_path`` (None: dropped).

    Restarts append to the same log, each after a ``--- start`` line.
    """

    name: str
    argv: list[str]
    log_path: Path | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        if self.log_path is None:
            self._spawn(subprocess.DEVNULL)
        else:
            with self.log_path.open("ab") as log:
                log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
                log.flush()
                self._spawn(log.fileno())
        assert self.popen is not None
        _live.add(self.popen)

    def _spawn(self, out: int) -> None:
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the running process (an AssertionError if it is not)."""
        assert self.popen is not None and self.alive, f"{self.name} is not running"
        self.popen.send_signal(sig)

    async def wait_exit(self, within: float) -> int | None:
        """The exit code once the process has ended, or None if it is still running."""
        deadline = time.monotonic() + within
        while self.popen is not None and self.popen.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return None if self.popen is None else self.popen.returncode

    async def kill(self) -> None:
        """SIGKILL (no drain, no goodbye), and wait until it is gone."""
        if self.alive:
            self.signal(signal.SIGKILL)
        code = await self.wait_exit(STOP_TIMEOUT)
        assert not self.alive, f"{self.name} survived SIGKILL ({code})"
        self.forget()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Blocking stop: SIGTERM (after SIGCONT: a paused process cannot handle it),
        then SIGKILL after ``timeout``."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
        stop_popen(self.popen, timeout=timeout)
        self.forget()

    def forget(self) -> None:
        """No longer kill it at exit (it has ended, or its owner took it over)."""
        if self.popen is not None:
            _live.discard(self.popen)

    def current_log(self) -> str:
        """The log of the latest start only."""
        text = self._log()
        return text[text.rfind("--- start ") :]

    def log_tail(self, chars: int = 3000) -> str:
        return self._log()[-chars:]

    def _log(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def tidings_process(
    name: str, args: list[str], env: dict[str, str], log_path: Path | None, core: int | None = None
) -> Process:
    """A ``tidings ARGS`` process (not started), pinned to ``core`` if given."""
    return Process(name, pinned(tidings_argv(*args), core), log_path, env)


async def set_push_with_cli(database_url: str, enabled: bool) -> None:
    """The kill switch as an operator flips it: ``tidings flags push on|off``.

    It writes the database only: an app sees it when its flag cache expires."""
    out = await asyncio.to_thread(
        tidings_cli,
        *("flags", "push", "on" if enabled else "off"),
        env=clean_env(TIDINGS_DATABASE_URL=database_url),
        timeout=START_TIMEOUT,
    )
    assert json.loads(out.splitlines()[-1])["enabled"] is enabled, out


@contextlib.contextmanager
def serving(process: Process, url: str, within: float = START_TIMEOUT) -> Iterator[Process]:
    """``process`` started and answering 200 at ``url`` (within ``within`` seconds,
    else a RuntimeError with its log) until the block ends; then stopped."""
    process.start()
    try:
        assert process.popen is not None
        wait_http_ok(url, process.popen, time.monotonic() + within, process.log_tail)
        yield process
    finally:
        process.stop()


async def start_push_any_port(
    redis_url: str, keys: str, *args: str, **env: str
) -> tuple[asyncio.subprocess.Process, int]:
    """``tidings push ARGS`` on a port the kernel picks (stdout and stderr piped),
    and that port, read from the line it prints once listening (within
    START_TIMEOUT).

    ``env`` adds to this process's environment; Origin checks are off unless it
    sets ``TIDINGS_ALLOWED_ORIGINS``."""
    argv = tidings_argv("push", "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        *args,
        env={
            **os.environ,
            "REDIS_URL": redis_url,
            "TIDINGS_PUSH_KEYS": keys,
            "TIDINGS_ALLOWED_ORIGINS": "",
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)).decode()
        return proc, int(line.rsplit(":", 1)[1])
    except BaseException:
        await stop_async(proc)
        raise


async def stop_async(proc: asyncio.subprocess.Process, within: float = STOP_TIMEOUT) -> None:
    """SIGTERM and wait; SIGKILL after ``within`` seconds."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), within)
        except TimeoutError:
            proc.kill()
            await proc.wait()

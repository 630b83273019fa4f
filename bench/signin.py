"""Sign-ins against everyone else: another user's ``GET /api/me`` while people sign in.

A real ``tidings app`` (SQLite, not pinned) with argon2id at the library's
defaults (about 190 ms and 64 MiB a check). One probe requests ``/api/me``
every 10 ms with an API token; first alone, then while four loops sign in
correctly as fast as they are answered (each loop from its own source address,
rotating over its own accounts, so the sign-in limits do not refuse them: this
is many different users signing in, not an attack). Two configurations side
by side in one run: passwords checked on the event loop
(``TIDINGS_PASSWORD_THREADS=0``, as before) and on the default thread pool.
Writes bench/results/signin.json and .png.

    .venv/bin/python bench/signin.py [--duration 15] [--loops 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from lib.stack import Process, log, percentile
from machine import describe
from report import finish, pyplot, save

from tidings.store import migrate
from tidings.store.accounts import Accounts
from tidings.store.engine import create_engines

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "bench sign-in password"
#: Seconds between the probe's requests.
PROBE_EVERY = 0.010
#: (name, TIDINGS_PASSWORD_THREADS)
CONFIGS = (("on the event loop", "0"), ("thread pool", "2"))
#: The threads' goal: the probe's median while the loops sign in, at most this
#: many times its median alone (a ratio: the machine may be busy with other work).
GOAL_SLOWDOWN = 3.0


class OneHash(PasswordHasher):
    """argon2id at the library's defaults, hashing the one bench password once: every
    account stores an equally costly hash without paying for 33 of them."""

    def __init__(self) -> None:
        super().__init__()
        self._hash = super().hash(PASSWORD)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        return self._hash if password == PASSWORD else super().hash(password, salt=salt)


async def make_users(url: str, loops: int, per_loop: int) -> tuple[str, list[list[str]]]:
    """The probe's API token, and each loop's emails (argon2 at production cost)."""
    engines = create_engines(url)
    try:
        await migrate.upgrade(engines)
        accounts = Accounts(engines, hasher=OneHash())
        prober = await accounts.create_user("probe@bench.io", "Probe", PASSWORD)
        token = await accounts.issue(prober.id, "api", ttl=None)
        emails = [[f"loop{n}-{i}@bench.io" for i in range(per_loop)] for n in range(loops)]
        for email in (e for group in emails for e in group):
            await accounts.create_user(email, "Bench", PASSWORD)
        return token, emails
    finally:
        await engines.dispose()


def probe(base: str, token: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        while True:  # at least once, however late the thread starts
            started = time.perf_counter()
            r = http.get("/api/me", timeout=30)
            out.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
            if stop.wait(PROBE_EVERY):
                return


def sign_in_loop(
    base: str, address: str, emails: list[str], stop: threading.Event, out: Counter[int]
) -> None:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base, transport=transport) as http:
        n = 0
        while n == 0 or not stop.is_set():
            email = emails[n % len(emails)]
            n += 1
            r = http.post("/api/session", json={"email": email, "password": PASSWORD}, timeout=60)
            out[r.status_code] += 1


def phase(
    base: str, token: str, emails: list[list[str]], loops: int, duration: float
) -> dict[str, Any]:
    stop = threading.Event()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    threads = [threading.Thread(target=probe, args=(base, token, stop, latencies))]
    for n in range(loops):
        address = f"127.0.9.{n + 1}"
        args = (base, address, emails[n], stop, statuses)
        threads.append(threading.Thread(target=sign_in_loop, args=args))
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join(timeout=90)
    return {
        "sign_in_loops": loops,
        "probe_requests": len(latencies),
        "me_ms_p50": statistics.median(latencies),
        "me_ms_p99": percentile(latencies, 99),
        "me_ms_max": max(latencies),
        "sign_ins_per_s": statuses[200] / duration,
        "sign_in_statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def run_config(
    name: str, threads: str, url: str, token: str, emails: list[list[str]], args: Any
) -> dict[str, Any]:
    env = {**os.environ, "TIDINGS_DATABASE_URL": url, "TIDINGS_PASSWORD_THREADS": threads}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
    app = Process("app", env, None, ["--host", "127.0.0.1"])
    try:
        log(f"{name}: probe alone for {args.duration} s")
        idle = phase(app.base, token, emails, 0, args.duration)
        log(f"{name}: probe with {args.loops} sign-in loops for {args.duration} s")
        loaded = phase(app.base, token, emails, args.loops, args.duration)
    finally:
        app.stop()
    return {"password_threads": int(threads), "idle": idle, "signing_in": loaded}


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    names = list(results["configs"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.2
    bars = (
        ("idle", "me_ms_p50", "alone, p50"),
        ("idle", "me_ms_p99", "alone, p99"),
        ("signing_in", "me_ms_p50", "sign-ins, p50"),
        ("signing_in", "me_ms_p99", "sign-ins, p99"),
    )
    for n, (phase_name, key, label) in enumerate(bars):
        xs = [j + n * width for j in range(len(names))]
        ys = [results["configs"][c][phase_name][key] for c in names]
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks([j + 1.5 * width for j in range(len(names))], names)
    ax.set_yscale("log")
    ax.set_ylabel("GET /api/me latency, ms (log)")
    ax.legend()
    loops = results["params"]["loops"]
    ax.set_title(f"tidings: another user's /api/me while {loops} loops sign in (argon2id)")
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--loops", type=int, default=4, help="concurrent sign-in loops")
    parser.add_argument(
        "--accounts-per-loop", type=int, default=8, help="each loop rotates over this many"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "signin")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "signin",
        "machine": describe(),
        "params": {
            "duration_s": args.duration,
            "loops": args.loops,
            "accounts_per_loop": args.accounts_per_loop,
            "probe_every_ms": PROBE_EVERY * 1000,
        },
        "configs": {},
    }
    with tempfile.TemporaryDirectory(prefix="tidings-signin-") as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        log(f"creating {args.loops * args.accounts_per_loop + 1} users (argon2id defaults)")
        token, emails = asyncio.run(make_users(url, args.loops, args.accounts_per_loop))
        for name, threads in CONFIGS:
            results["configs"][name] = run_config(name, threads, url, token, emails, args)
    print(
        f"\n{'passwords checked':<20} {'phase':<12} {'me p50 ms':>10} {'me p99 ms':>10} "
        f"{'me max ms':>10} {'sign-ins/s':>11}  statuses"
    )
    for name, r in results["configs"].items():
        for phase_name in ("idle", "signing_in"):
            p = r[phase_name]
            print(
                f"{name:<20} {phase_name:<12} {p['me_ms_p50']:>10.1f} {p['me_ms_p99']:>10.1f} "
                f"{p['me_ms_max']:>10.1f} {p['sign_ins_per_s']:>11.1f}  {p['sign_in_statuses']}"
            )
    inline, pooled = (results["configs"][name]["signing_in"] for name, _ in CONFIGS)
    ratio = inline["me_ms_p50"] / max(pooled["me_ms_p50"], 0.001)
    print(f"\n/api/me median while signing in: on the loop / thread pool = {ratio:.1f}x")
    results["ratio_p50_loop_over_pool"] = ratio
    alone = results["configs"][CONFIGS[1][0]]["idle"]["me_ms_p50"]
    slowdown = pooled["me_ms_p50"] / max(alone, 0.001)
    met = slowdown <= GOAL_SLOWDOWN
    goal = f"thread pool: /api/me median while signing in <= {GOAL_SLOWDOWN:.0f}x alone"
    results["goals"] = [{"goal": goal, "slowdown": slowdown, "met": met}]
    print(f"goal: {goal}: {slowdown:.1f}x  {'met' if met else 'MISSED'}")
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

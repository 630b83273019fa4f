"""Hostile clients against one push server, each attack at full size, side by side
with a quiet baseline in one run.

Starts one ``tidings push`` process on a private Redis (default settings but no
per-IP limit: the attackers stand for many addresses) and, for each attack, a
legitimate subscribed WebSocket client that is poked every 20 ms over Redis as
the app would, a ``/healthz`` probe every 200 ms, and ``--attackers`` attacker
connections in ``--procs`` separate processes (so that attacking costs the
measuring process nothing), each reconnecting as soon as it is closed, for
``--seconds``. Reports per attack: the server's RSS before / peak / after, its
CPU, the legitimate client's poke latency p50 / p99, lost pokes, ``degraded``
heard, ``/healthz`` failures, and what the attackers got: connections, bytes
sent and read, time until closed, close codes. The attacks are the ones of
tests/push/hostile (its harness does the work); docs/SECURITY.md has the table.

    PYTHONPATH=src .venv/bin/python bench/hostile.py [--seconds 20] [--attackers 12]
    PYTHONPATH=src .venv/bin/python bench/hostile.py --quick   # CI's size: one server

``--server-src DIR`` runs the server from another source tree (an older commit's
``src``, to show what an attack did before its bound).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from report import finish, pyplot, save  # noqa: E402

from tidings.push.wsframe import OP_CONT, OP_PING, OP_PONG, OP_TEXT  # noqa: E402
from tidings.testing.hostile import (  # noqa: E402
    Attack,
    PushProcess,
    Watch,
    attack_socket,
    flood,
    hold_open,
    masked,
    private_redis,
    project_id,
    push_processes,
    repeat,
)

RESULTS = ROOT / "bench" / "results"
WS = "/ws"
SIO = "/socket.io/?EIO=4&transport=websocket"

#: name -> (what it does, path, frame blob, subscribed first?, first frame)
ATTACKS: dict[str, tuple[str, str, bytes, bool, bytes]] = {
    "pong-flood": (
        "125-byte pings, never reading (/ws)",
        WS,
        masked(OP_PING, b"p" * 125),
        False,
        b"",
    ),
    "pong-flood-subscribed": (
        "the same with a valid token",
        WS,
        masked(OP_PING, b"p" * 125),
        True,
        b"",
    ),
    "pong-flood-socketio": (
        "the same on a Socket.IO WebSocket",
        SIO,
        masked(OP_PING, b"p" * 125),
        False,
        b"",
    ),
    "continuations": (
        "'{' then empty continuations forever (subscribed)",
        WS,
        masked(OP_CONT, b"", fin=False),
        True,
        masked(OP_TEXT, b"{", fin=False),
    ),
    "tiny-frames": (
        "empty PONGs (6 bytes) as fast as possible (/ws)",
        WS,
        masked(OP_PONG),
        False,
        b"",
    ),
    "tiny-frames-subscribed": ("the same with a valid token", WS, masked(OP_PONG), True, b""),
    "tiny-frames-socketio": (
        "Engine.IO noop '6' (7 bytes)",
        SIO,
        masked(OP_TEXT, b"6"),
        False,
        b"",
    ),
    "namespace-flood-socketio": (
        "Socket.IO CONNECT to namespace '/a' ('40/a,', 11 bytes)",
        SIO,
        masked(OP_TEXT, b"40/a,"),
        False,
        b"",
    ),
    "pong-packets-socketio": (
        "unsolicited Engine.IO pongs '3' (7 bytes)",
        SIO,
        masked(OP_TEXT, b"3"),
        False,
        b"",
    ),
    "unfinished": (
        "half a message, then silence (subscribed)",
        WS,
        b"",
        True,
        masked(OP_TEXT, b'{"type":' + b" " * 8000, fin=False),
    ),
}


# -- the attacker processes -------------------------------------------------------


async def attacker_loop(port: int, name: str, seconds: float) -> list[Attack]:
    _, path, frame, subscribe, first_frame = ATTACKS[name]
    project = project_id() if subscribe else None

    async def once() -> Attack:
        sock, first = await attack_socket(port, path, subscribe=project)
        if not frame:
            await asyncio.get_running_loop().sock_sendall(sock, first_frame)
            return await hold_open(sock, 30.0, first=first)
        blob = frame * max(1, 16384 // len(frame))
        return await flood(sock, blob, seconds, prefix=first_frame, first=first)

    return await repeat(once, seconds)


async def attackers(port: int, name: str, count: int, seconds: float) -> list[Attack]:
    runs = await asyncio.gather(*(attacker_loop(port, name, seconds) for _ in range(count)))
    return [a for run in runs for a in run]


def attacker_main(spec: str) -> int:
    port, name, count, seconds = json.loads(spec)
    # Every connection ends within its flood (or hold) plus its drain; this is
    # the bound on the whole process, whatever the server does.
    got = asyncio.run(asyncio.wait_for(attackers(port, name, count, seconds), seconds + 60))
    print(json.dumps([asdict(a) for a in got]))
    return 0


def spawn_attackers(
    port: int, name: str, count: int, procs: int, seconds: float
) -> list[subprocess.Popen[str]]:
    out = []
    for k in range(procs):
        share = count // procs + (1 if k < count % procs else 0)
        if share:
            spec = json.dumps([port, name, share, seconds])
            cmd = [sys.executable, __file__, "--attacker", spec]
            # Its stderr too into the pipe read here: a child must not hold the
            # bench's own output open after the bench has gone.
            out.append(
                subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
                )
            )
    return out


async def collect(procs: list[subprocess.Popen[str]], seconds: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    try:
        for proc in procs:
            stdout, _ = await asyncio.to_thread(proc.communicate, timeout=seconds + 90)
            assert proc.returncode == 0, stdout[-2000:]
            got.extend(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return got


# -- one run ----------------------------------------------------------------------


def summarize(name: str, watch: Watch, got: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    r = watch.report
    closed = [a["closed_after"] for a in got if a["closed_after"] is not None]
    codes = collections.Counter(
        f"{a['close_code']} {a['close_reason']}" if a["close_code"] else "none" for a in got
    )
    return {
        "attack": name,
        "what": ATTACKS[name][0] if name in ATTACKS else "no attack",
        "seconds": round(r.seconds, 2),
        "rss_before_kb": r.rss_before_kb,
        "rss_peak_kb": r.rss_peak_kb,
        "rss_after_kb": r.rss_after_kb,
        "rss_growth_kb": r.rss_growth_kb,
        "server_cpu_share": round(r.cpu_seconds / r.seconds, 3) if r.seconds else 0.0,
        "pokes": len(r.latencies),
        "p50_ms": round(r.p50 * 1000, 2),
        "p99_ms": round(r.p99 * 1000, 2),
        "max_ms": round(max(r.latencies, default=0) * 1000, 2),
        "lost": len(r.lost),
        "states": sorted(set(r.states)),
        "state_after": r.state_after,
        "broker_reconnects": r.reconnects,
        "healthz_max_ms": round(max(r.healthz, default=0) * 1000, 1),
        "healthz_failures": r.healthz_failures,
        "connections": len(got),
        "connections_per_s": round(len(got) / seconds, 1) if seconds else 0.0,
        "sent_bytes": sum(a["sent_bytes"] for a in got),
        "read_bytes_max": max((a["read_bytes"] for a in got), default=0),
        "closed": len(closed),
        "closed_after_median_s": round(statistics.median(closed), 4) if closed else None,
        "closed_after_max_s": round(max(closed), 4) if closed else None,
        "close_codes": dict(codes.most_common()),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {
        "machine": describe(),
        "seconds": args.seconds,
        "attackers": args.attackers,
        "procs": args.procs,
        "server_src": str(args.server_src) if args.server_src else "this tree",
        "rows": [],
    }
    extra = {"PYTHONPATH": str(args.server_src)} if args.server_src else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with private_redis(work) as url:
            async with push_processes(url, work) as start:
                push: PushProcess | None = None
                for name in ["none", *args.attacks]:
                    print(f"[{time.strftime('%H:%M:%S')}] {name}: starting", flush=True)
                    if push is None or args.restart:
                        # A fresh server per attack: each starts from the same RSS.
                        push = await start(**extra)
                    async with Watch(push) as watch:
                        if name == "none":
                            await asyncio.sleep(args.seconds)
                            got: list[dict[str, Any]] = []
                        else:
                            procs = spawn_attackers(
                                push.port, name, args.attackers, args.procs, args.seconds
                            )
                            got = await collect(procs, args.seconds)
                    row = summarize(name, watch, got, args.seconds)
                    data["rows"].append(row)
                    print(
                        f"{name:24s} p50 {row['p50_ms']:7.1f} p99 {row['p99_ms']:7.1f} ms, lost "
                        f"{row['lost']}, RSS +{row['rss_growth_kb'] / 1024:.1f} MB, CPU "
                        f"{row['server_cpu_share']:.0%}, {row['connections']} conns, closed after "
                        f"{row['closed_after_median_s']} s, {row['close_codes']}",
                        flush=True,
                    )
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return data


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    rows = data["rows"]
    names = [r["attack"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    series = (
        ("p99_ms", "legitimate client: poke latency p99, ms (bound 250)", 250),
        ("rss_growth_kb", "server RSS growth (peak - before), MB", None),
        ("server_cpu_share", "server CPU, share of one core", None),
    )
    for ax, (key, title, bound) in zip(axes, series, strict=True):
        scale = 1 / 1024 if key == "rss_growth_kb" else 1
        ax.barh(names, [r[key] * scale for r in rows])
        if bound:
            ax.axvline(bound, color="red", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
    title = (
        f"hostile clients: {data['attackers']} attacker connections per attack, reconnecting, "
        f"{data['seconds']} s each; server {data['server_src']}"
    )
    finish(fig, path, title, data["machine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="per attack (default 20)")
    parser.add_argument("--attackers", type=int, default=None, help="connections (default 12)")
    parser.add_argument("--procs", type=int, default=None, help="attacker processes (default 3)")
    parser.add_argument("--attacks", default=None, help="comma-separated (default: all)")
    parser.add_argument("--server-src", type=Path, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="2 attacks, 1 s each, 3 attackers, one server"
    )
    parser.add_argument("--attacker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "hostile")
    args = parser.parse_args(argv)
    if args.attacker:
        return attacker_main(args.attacker)
    explicit_attacks = args.attacks is not None
    args.attacks = [a for a in (args.attacks or ",".join(ATTACKS)).split(",") if a]
    unknown = set(args.attacks) - ATTACKS.keys()
    if unknown:
        parser.error(f"unknown attacks: {sorted(unknown)}")
    args.seconds = args.seconds or (1.0 if args.quick else 20.0)
    args.attackers = args.attackers or (3 if args.quick else 12)
    args.procs = args.procs or (1 if args.quick else 3)
    if args.quick and not explicit_attacks:
        args.attacks = ["pong-flood", "tiny-frames-socketio"]
    args.restart = not args.quick
    data = asyncio.run(run(args))
    save(data, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

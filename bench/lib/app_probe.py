"""``tidings app`` with a probe for stalls: every garbage collection (generation,
wall and CPU time, from ``gc.callbacks``) and the event loop's lag (a 5 ms timer,
how late it fires). On SIGUSR1 it writes what it saw since the last signal to
``$TIDINGS_PROBE_OUT`` as JSON and starts over. ``TIDINGS_PROBE_UNFREEZE=1``
undoes tidings/heap.py (the start-up freeze and the young generation's threshold,
back to CPython's defaults), to measure what it saves.

    python bench/lib/app_probe.py app --port 8000      # then kill -USR1 <pid>
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import time
from typing import Any

import uvicorn.server

#: The lag timer's period (seconds).
TICK = 0.005

#: CPython's own collector thresholds, restored by TIDINGS_PROBE_UNFREEZE=1.
DEFAULT_THRESHOLDS = (700, 10, 10)

gcs: list[tuple[int, float, float]] = []  # generation, wall ms, CPU ms
lags: list[float] = []  # ms late
_started = [0.0, 0.0]


def on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0], _started[1] = time.perf_counter(), time.thread_time()
    else:
        wall = (time.perf_counter() - _started[0]) * 1e3
        gcs.append((info["generation"], wall, (time.thread_time() - _started[1]) * 1e3))


def report() -> dict[str, Any]:
    by_gen: dict[str, Any] = {}
    for gen in (0, 1, 2):
        rows = [(w, c) for g, w, c in gcs if g == gen]
        by_gen[str(gen)] = {
            "count": len(rows),
            "cpu_ms_total": round(sum(c for _, c in rows), 1),
            "cpu_ms_max": round(max((c for _, c in rows), default=0.0), 1),
            "wall_ms_max": round(max((w for w, _ in rows), default=0.0), 1),
        }
    late = sorted(lags)
    return {
        "gc": by_gen,
        "loop_lag_ms": {
            "ticks": len(late),
            "p99": round(late[int(len(late) * 0.99)], 1) if late else None,
            "max": round(late[-1], 1) if late else None,
            "over_20ms": sum(1 for x in late if x > 20),
        },
        "frozen_objects": gc.get_freeze_count(),
        "tracked_objects": len(gc.get_objects()),
    }


def dump() -> None:
    with open(os.environ["TIDINGS_PROBE_OUT"], "w") as f:
        json.dump(report(), f)
    gcs.clear()
    lags.clear()


async def watch_lag() -> None:
    while True:
        start = time.perf_counter()
        await asyncio.sleep(TICK)
        lags.append(max(0.0, (time.perf_counter() - start - TICK) * 1e3))


_startup = uvicorn.server.Server.startup


async def startup(self: uvicorn.server.Server, *args: Any, **kwargs: Any) -> None:
    await _startup(self, *args, **kwargs)  # the app's lifespan (and its freeze) ran
    if os.environ.get("TIDINGS_PROBE_UNFREEZE") == "1":
        gc.unfreeze()
        gc.set_threshold(*DEFAULT_THRESHOLDS)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump)
    task = loop.create_task(watch_lag())
    self._probe_task = task  # type: ignore[attr-defined]  # kept alive


def main() -> int:
    gc.callbacks.append(on_gc)
    uvicorn.server.Server.startup = startup  # type: ignore[method-assign]
    from tidings.cli import main as tidings

    return tidings(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

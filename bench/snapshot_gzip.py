"""What gzip costs and saves on a project snapshot, level by level, side by side.

A snapshot shaped like the app's (``GET /api/projects/{id}``: every story with its
comments and tasks, encoded with orjson as the app does) of ``--stories`` stories
with tracker-like text, compressed at each zlib level: wire size, ratio and the
median CPU time of ``--repeat`` runs. The app's choice is ``tidings.app.compression.LEVEL``.
Beside it, at that level, the stream the app sends: runs of stories deflated
apart and kept (store/gzblocks.py), at several mean run lengths: its size against
the single stream's, the time to make every run (a project's first GET) and to
remake the stream after one story changed (a GET right after an update).
Writes bench/results/snapshot_gzip.json and .png.

    .venv/bin/python bench/snapshot_gzip.py [--stories 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe
from report import save

from tidings.app.compression import LEVEL
from tidings.store import gzblocks

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = [
    "as",
    "a",
    "user",
    "i",
    "want",
    "the",
    "board",
    "to",
    "show",
    "stories",
    "live",
    "so",
    "that",
    "my",
    "team",
    "sees",
    "changes",
    "without",
    "reloading",
    "push",
    "polling",
    "fallback",
    "export",
    "import",
    "label",
    "owner",
    "estimate",
    "release",
    "sign",
    "in",
    "password",
    "reset",
    "keyboard",
    "shortcut",
    "mobile",
    "layout",
    "dark",
    "mode",
]
STATES = ("unscheduled", "unstarted", "started", "finished", "delivered", "accepted")


def snapshot(stories: int, rng: random.Random) -> bytes:
    def text(n: int) -> str:
        return " ".join(rng.choices(WORDS, k=n))

    body = [
        {
            "id": i,
            "title": text(rng.randint(3, 8)).capitalize(),
            "description": text(rng.randint(0, 60)),
            "story_type": rng.choice(("feature", "feature", "bug", "chore")),
            "state": rng.choice(STATES),
            "estimate": rng.choice((None, 1, 2, 3, 5, 8)),
            "owner_id": rng.choice((None, 1, 2, 3)),
            "labels": rng.sample(("ui", "api", "auth", "perf", "infra", "docs"), rng.randint(0, 2)),
            "created_at": 1.7e9 + i * 37.5,
            "updated_at": 1.7e9 + i * 41.25,
            "comments": [
                {
                    "id": i * 100 + c,
                    "author_id": rng.randint(1, 3),
                    "text": text(rng.randint(3, 20)),
                    "created_at": 1.7e9,
                    "edited_at": None,
                }
                for c in range(rng.randint(0, 3))
            ],
            "tasks": [
                {"id": i * 100 + 50 + t, "text": text(4), "done": rng.random() < 0.4}
                for t in range(rng.randint(0, 4))
            ],
        }
        for i in range(1, stories + 1)
    ]
    members = [{"user_id": u, "role": "member", "name": f"User {u}"} for u in (1, 2, 3)]
    return orjson.dumps(
        {
            "id": 1,
            "name": "Bench",
            "version": stories * 3,
            "next_id": stories * 100,
            "members": members,
            "stories": body,
        }
    )


def blocks(raw: bytes, single: int, repeat: int, rng: random.Random) -> list[dict[str, Any]]:
    """The kept-runs stream of ``raw`` at the app's level, per mean run length."""
    doc = orjson.loads(raw)
    bodies = {story["id"]: orjson.dumps(story) for story in doc["stories"]}
    order = list(bodies)
    head = raw[: raw.index(b'"stories":[') + len(b'"stories":[')]
    tail = b"]}"
    assert head + b",".join(bodies.values()) + tail == raw
    rows = []
    for mean in (32, 64, gzblocks.MEAN_STORIES, 256):
        packer = gzblocks.Blocks(mean)
        started = time.perf_counter()
        packed = packer.gzip(head, order, bodies, tail, LEVEL)
        first_ms = (time.perf_counter() - started) * 1000
        times = []
        for n in range(max(repeat, 10)):
            sid = rng.choice(order)
            packer.forget([sid])
            bodies[sid] = bodies[sid].replace(b'"title":"', b'"title":"%d ' % n, 1)
            started = time.perf_counter()
            packed = packer.gzip(head, order, bodies, tail, LEVEL)
            times.append((time.perf_counter() - started) * 1000)
        row = {
            "mean_stories": mean,
            "bytes": len(packed),
            "vs_single_stream": round(len(packed) / single, 3),
            "first_ms": round(first_ms, 1),
            "after_update_median_ms": round(statistics.median(times), 2),
        }
        rows.append(row)
        print(
            f"runs of ~{mean} stories: {len(packed) / 1e6:.3f} MB ({row['vs_single_stream']}x the"
            f" single stream), all runs {row['first_ms']} ms, after an update"
            f" {row['after_update_median_ms']} ms"
        )
    return rows


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = results["levels"]
    xs = [row["level"] for row in levels]
    fig, (size_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 4))
    size_ax.bar(
        xs,
        [row["bytes"] / 1e6 for row in levels],
        color=["#2563eb" if x == results["app_level"] else "#94a3b8" for x in xs],
    )
    size_ax.set_xlabel("zlib level")
    size_ax.set_ylabel("MB on the wire")
    size_ax.set_title(f"{results['stories']} stories, {results['raw_bytes'] / 1e6:.2f} MB raw")
    time_ax.bar(
        xs,
        [row["median_ms"] for row in levels],
        color=["#2563eb" if x == results["app_level"] else "#94a3b8" for x in xs],
    )
    time_ax.set_xlabel("zlib level")
    time_ax.set_ylabel("ms to compress (median)")
    time_ax.set_title(f"the app's level: {results['app_level']} (blue)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "snapshot_gzip")
    args = parser.parse_args()
    raw = snapshot(args.stories, random.Random(7))
    levels = []
    for level in range(1, 10):
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            packed = zlib.compress(raw, level)
            times.append((time.perf_counter() - started) * 1000)
        row = {
            "level": level,
            "bytes": len(packed),
            "ratio": round(len(raw) / len(packed), 2),
            "median_ms": round(statistics.median(times), 1),
        }
        levels.append(row)
        print(
            f"level {level}: {len(packed) / 1e6:.3f} MB (x{row['ratio']}) in {row['median_ms']} ms"
        )
    single = next(row["bytes"] for row in levels if row["level"] == LEVEL)
    runs = blocks(raw, single, args.repeat, random.Random(11))
    results = {
        "benchmark": "snapshot_gzip",
        "machine": describe(),
        "stories": args.stories,
        "raw_bytes": len(raw),
        "app_level": LEVEL,
        "levels": levels,
        "kept_runs": runs,
    }
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

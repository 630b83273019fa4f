"""WAL per command by record type on PostgreSQL: which records, and how much of
them is full-page images, an ``update_story`` and a ``move_story`` write.

One project of ``--stories`` stories is grown in-process (``EventStore``, as
bench/write_path.py seeds), then ``--commands`` commands of each kind run on
random stories right after a ``CHECKPOINT`` (every page's first change logs it
whole) and then on the same stories again (moved to other places). Each
command's WAL range is read with ``pg_waldump`` and only the records of this
benchmark's own database (and its commits) are counted, so the shared server's
other traffic is out. Needs read access to the server's ``pg_wal`` (run it as
the database's owner or root, on the database's machine).

    .venv/bin/python bench/wal_records.py [--stories 3000] [--commands 40] \
        [--wal-compression off,lz4]

``--wal-compression`` runs the whole measurement once per value of the server's
``wal_compression`` (set on the benchmark's own database, so its sessions
compress the page images they log), each on a fresh database.

Writes bench/results/wal_records.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import glob
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import Postgres, log
from machine import describe
from report import finish, pyplot, save

RESULTS = Path(__file__).resolve().parent / "results"

_RECORD = re.compile(
    r"rmgr: (\w+)\s+len \(rec/tot\):\s+(\d+)/\s*(\d+), tx:\s+(\d+), lsn: \S+, prev \S+, "
    r"desc: (\S+)(.*)"
)


def waldump() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_waldump"))
    if found:
        return found[-1]
    return "pg_waldump"


def split(waldump_bin: str, pg_wal: str, start: str, end: str, dboid: int) -> dict[str, Any]:
    """The records of database ``dboid`` (and their commits) in [start, end)."""
    out = subprocess.run(
        [waldump_bin, "-p", pg_wal, "-s", start, "-e", end, "-b"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    records: list[list[Any]] = []
    for line in out.splitlines():
        m = _RECORD.match(line)
        if m:
            rm, rec, tot, tx, desc, rest = m.groups()
            records.append([rm, int(rec), int(tot), tx, desc, rest])
        elif records:
            records[-1][5] += line
    ours = f"/{dboid}/"
    txs = {r[3] for r in records if ours in r[5]}
    kinds: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    total = images = image_bytes = 0
    for rm, rec, tot, tx, desc, rest in records:
        if ours not in rest and not (rm == "Transaction" and tx in txs and tx != "0"):
            continue
        fpw = rest.count("FPW")
        key = f"{rm} {desc}" + (" +image" if fpw else "")
        kind = kinds[key]
        kind[0] += 1
        kind[1] += tot
        kind[2] += tot - rec if fpw else 0
        total += tot
        images += fpw
        image_bytes += tot - rec if fpw else 0
    return {"bytes": total, "images": images, "image_bytes": image_bytes, "kinds": dict(kinds)}


async def run(url: str, stories: int, commands: int, wal_compression: str) -> dict[str, Any]:
    from tidings.domain import commands as c
    from tidings.domain.decide import KnownUser
    from tidings.store.accounts import Accounts
    from tidings.store.engine import create_engines
    from tidings.store.events import EventStore
    from tidings.store.migrate import upgrade

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    name = await admin.fetchval("SELECT current_database()")
    # Sessions opened from here on (the store's) take it; the admin's own does not write.
    await admin.execute(f"ALTER DATABASE {name} SET wal_compression = '{wal_compression}'")
    engines = create_engines(url)
    try:
        dboid = await admin.fetchval(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        )
        pg_wal = str(Path(await admin.fetchval("SHOW data_directory")) / "pg_wal")
        await upgrade(engines)
        user = await Accounts(engines).create_user("wal@bench.io", "W", "password1")
        store = EventStore(engines)
        pid = (await store.create_project("wal", KnownUser(user.id, user.name))).project_id
        batch = [
            c.CreateStory(
                type="create_story", title=f"story {n}", description="x" * 200, labels=["bench"]
            )
            for n in range(500)
        ]
        for start in range(0, stories, 500):
            await store.execute_many(pid, user.id, batch[: min(500, stories - start)])
        log(f"seeded {stories} stories")
        rng = random.Random(1)
        picked = [rng.randint(1, stories) for _ in range(commands)]
        bin_ = waldump()
        out: dict[str, Any] = {}
        for kind in ("update_story", "move_story"):
            for window in ("after_checkpoint", "same_stories_again"):
                if window == "after_checkpoint":
                    await admin.execute("CHECKPOINT")
                per: list[dict[str, Any]] = []
                for n, sid in enumerate(picked):
                    if kind == "update_story":
                        cmd: Any = c.UpdateStory(
                            type="update_story", story_id=sid, title=f"edit {n:04d} {window[0]}"
                        )
                    else:
                        before = rng.randint(1, stories)
                        cmd = c.MoveStory(
                            type="move_story",
                            story_id=sid,
                            before_id=None if before == sid else before,
                        )
                    a = await admin.fetchval("SELECT pg_current_wal_insert_lsn()::text")
                    await store.execute(pid, user.id, cmd)
                    b = await admin.fetchval("SELECT pg_current_wal_insert_lsn()::text")
                    per.append(split(bin_, pg_wal, a, b, dboid))
                kinds: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0, 0])
                for p in per:
                    for key, (count, size, image) in p["kinds"].items():
                        kinds[key][0] += count / len(per)
                        kinds[key][1] += size / len(per)
                        kinds[key][2] += image / len(per)
                sizes = [p["bytes"] for p in per]
                got = out[f"{kind}/{window}"] = {
                    "bytes_median": statistics.median(sizes),
                    "bytes_min": min(sizes),
                    "bytes_max": max(sizes),
                    "images_median": statistics.median(p["images"] for p in per),
                    "image_bytes_median": statistics.median(p["image_bytes"] for p in per),
                    "per_command_by_record": {
                        k: {
                            "records": round(v[0], 2),
                            "bytes": round(v[1]),
                            "image_bytes": round(v[2]),
                        }
                        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][1])
                    },
                }
                median = got["bytes_median"] / 1024
                log(f"{kind} {window}: median {median:.1f} KB, images {got['images_median']}")
        return out
    finally:
        await admin.close()
        await engines.dispose()


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(data["windows"])
    images = [data["windows"][n]["image_bytes_median"] / 1024 for n in names]
    rest = [
        (data["windows"][n]["bytes_median"] - data["windows"][n]["image_bytes_median"]) / 1024
        for n in names
    ]
    ax.barh(names, rest, label="records")
    ax.barh(names, images, left=rest, label="full-page images")
    ax.axvline(8, color="red", linestyle="--", label="goal: 8 KB")
    ax.set_xlabel("WAL per command, KB (median)")
    ax.legend()
    finish(fig, path, f"WAL per command by record type, {data['stories']} stories", data["machine"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", type=int, default=3000)
    parser.add_argument("--commands", type=int, default=40)
    parser.add_argument(
        "--wal-compression", default="off", help="comma-separated wal_compression values"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "wal_records")
    args = parser.parse_args()
    machine = describe()
    windows: dict[str, Any] = {}
    for mode in args.wal_compression.split(","):
        pg = Postgres()
        try:
            got = asyncio.run(run(pg.url, args.stories, args.commands, mode))
        finally:
            pg.stop()
        suffix = "" if mode == "off" else f" wal_compression={mode}"
        windows.update({f"{key}{suffix}": value for key, value in got.items()})
    data = {
        "benchmark": "wal_records",
        "machine": machine,
        "stories": args.stories,
        "commands": args.commands,
        "windows": windows,
    }
    save(data, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The board at scale, in Chromium: first screen and remote-change paint, by project size.

One ``tidings demo`` (app and push server, SQLite, in-process broker). A project is grown
through the app's API (``create_story`` commands, as a user would make them; 60 % accepted,
25 % in the backlog, 10 % in the icebox, 5 % started) to each size in turn; at each size
bench/lib/board_probe.mjs loads the board ``--loads`` times (first screen: navigation start
to the first cards painted) and makes ``--changes`` title edits elsewhere (through the API,
not the page), timing each from its poke's arrival at the page to the new title painted.

With ``--before-rev REV`` the page's static files at that git revision are served to the
same browser, from the same server and data (the probe routes the page, /js/ and /css/ to
them), side by side with the current ones, served the same way and by the app.

Then, on the largest project (as many events as stories, and more from the changes), the
history endpoint's round trip: the activity feed's first page and one story's with
``story=``, and the app's time for a first load's requests (the snapshot, ``/api/me``, a
module's 304) (``--history-reads`` GETs each, one at a time).

Writes bench/results/board.json and .png.

    .venv/bin/python bench/board.py [--sizes 1000,3000,10000] [--before-rev REV]
        [--loads 3] [--changes 15] [--history-reads 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import free_port_pair, log
from machine import describe
from report import finish, print_goals, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROBE = Path(__file__).resolve().parent / "lib" / "board_probe.mjs"
STATIC = "src/tidings/app/static"
EMAIL, PASSWORD = "ada@example.com", "tidings-demo"
#: Story states of a grown project, in proportion: mostly done, as an old project is.
MIX = (("accepted", 12), ("unstarted", 5), ("unscheduled", 2), ("started", 1))
#: Commands in flight while growing (SQLite takes one write at a time; a few overlap the HTTP).
GROW_CONCURRENCY = 4
#: Seconds for the demo to answer; for one size's probe to finish.
STARTUP_TIMEOUT = 60.0
PROBE_TIMEOUT = 900.0


def start_demo(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port_pair()  # the push server takes port + 1
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    logf = (work / "demo.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidings",
            "demo",
            "--port",
            str(port),
            "--db",
            str(work / "db"),
            "--fresh",
        ],
        cwd=ROOT,
        env=env,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo did not start:\n{(work / 'demo.log').read_text()[-3000:]}")
        time.sleep(0.2)


def stop_demo(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Grower:
    """Adds stories to one project through the API, signed in as the demo's owner."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        r = self.http.post("/api/session", json={"email": EMAIL, "password": PASSWORD})
        r.raise_for_status()
        self.csrf = r.json()["csrf_token"]
        r = self.http.post("/api/projects", json={"name": "Board at scale"}, headers=self.headers)
        r.raise_for_status()
        self.project = int(r.json()["project"])
        self.count = 0
        cycle = [state for state, weight in MIX for _ in range(weight)]
        self.states = cycle

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Tidings-CSRF": self.csrf}

    def _create(self, n: int) -> None:
        command = {
            "type": "create_story",
            "title": f"Story {n}: {'abcdefgh'[n % 8] * (8 + n % 23)}",
            "story_type": ("feature", "bug", "chore")[n % 3],
            "state": self.states[n % len(self.states)],
            "estimate": (None, 1, 2, 3, 5)[n % 5],
            "labels": [("ui", "api", "perf")[n % 3]] if n % 4 == 0 else [],
        }
        path = f"/api/projects/{self.project}/commands"
        r = self.http.post(path, json={"command": command}, headers=self.headers)
        if r.status_code != 200:
            raise RuntimeError(f"create_story refused: {r.status_code} {r.text[:300]}")

    def grow_to(self, size: int) -> float:
        started = time.monotonic()
        with ThreadPoolExecutor(GROW_CONCURRENCY) as pool:
            list(pool.map(self._create, range(self.count, size)))
        self.count = size
        return time.monotonic() - started


#: GETs per history variant (one at a time, after the probe, on the largest project).
HISTORY_READS = 40


def history_reads(grower: Grower, reads: int) -> list[dict[str, Any]]:
    """Round trips of ``GET /api/projects/{id}/history`` at the project's size: the
    activity feed's first page, and one story's changes with ``story=`` (the newest
    story: found near the head; the oldest: not among the events a request scans, so
    the answer is empty with a ``next_before`` to page on)."""
    base = f"/api/projects/{grower.project}/history"
    oldest, newest = 1, grower.count
    cases = (
        ("feed, limit 50", {}),
        ("story=, newest story", {"story": newest}),
        ("story=, oldest story (scan of 1,000)", {"story": oldest}),
    )
    out = []
    for name, params in cases:
        times, events = [], 0
        for _ in range(reads):
            started = time.perf_counter()
            r = grower.http.get(base, params=params)
            times.append((time.perf_counter() - started) * 1000)
            r.raise_for_status()
            events = len(r.json()["events"])
        times.sort()
        out.append(
            {
                "case": name,
                "params": params,
                "events_returned": events,
                "median_ms": round(times[(len(times) - 1) // 2], 2),
                "p90_ms": round(times[int(len(times) * 0.9) - 1], 2),
            }
        )
        log(f"history {name}: median {out[-1]['median_ms']} ms, {events} events")
    return out


def page_requests(grower: Grower, reads: int) -> list[dict[str, Any]]:
    """The app's own time for a first load's requests, from Python (one at a time,
    keep-alive): the gzipped snapshot as kept, ``/api/me``, and a module's revalidation
    (a 304; the page makes ~30 of these per load)."""
    snapshot = f"/api/projects/{grower.project}"
    etag = grower.http.get("/js/board.js").headers["etag"]
    cases: tuple[tuple[str, str, dict[str, str]], ...] = (
        ("snapshot, gzip", snapshot, {"Accept-Encoding": "gzip"}),
        ("/api/me", "/api/me", {}),
        ("/js/board.js revalidated (304)", "/js/board.js", {"If-None-Match": etag}),
    )
    out = []
    for name, path, headers in cases:
        times, size = [], 0
        for _ in range(reads):
            started = time.perf_counter()
            with grower.http.stream("GET", path, headers=headers) as r:
                size = sum(len(chunk) for chunk in r.iter_raw())
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        out.append(
            {
                "case": name,
                "status": r.status_code,
                "bytes": size,
                "median_ms": round(times[(len(times) - 1) // 2], 2),
            }
        )
        log(f"{name}: median {out[-1]['median_ms']} ms, {size} bytes, HTTP {r.status_code}")
    return out


def static_at(rev: str, work: Path) -> Path:
    """The page's static files at git revision ``rev``, extracted under ``work``."""
    target = work / f"static-{rev[:12]}"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", rev, STATIC], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / STATIC


def probe(spec: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    path = work / "probe.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        ["node", str(PROBE), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )
    if done.returncode != 0:
        raise SystemExit(f"probe failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


#: The current page's files served by the probe, as an older revision's are.
PROBE_SERVED = "current, files from the probe"

#: The issue's goals: the first screen of the largest board, and every remote change's paint.
FIRST_SCREEN_GOAL_MS = 500.0
PAINT_GOAL_MS = 100.0


def first_screen(r: dict[str, Any]) -> float:
    """A variant's first screen: Chromium's Element Timing of the first card when it has
    one (the frame presented), else the task after the frame that drew it."""
    value = r.get("first_card_painted_median_ms") or r["first_screen_median_ms"]
    return float(value)


def after_poke(r: dict[str, Any]) -> float | None:
    """Poke to painted, by Element Timing when measured, else the task after the frame."""
    value = r.get("rendered_after_poke_median_ms") or r["paint_after_poke_median_ms"]
    return None if value is None else float(value)


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goals for the current page, on medians: met or missed."""
    current = [
        (row["stories"], r) for row in rows for r in row["variants"] if r["variant"] == "current"
    ]
    if not current:
        return []
    stories, biggest = max(current, key=lambda pair: pair[0])
    paints = [after_poke(r) for _, r in current]
    return [
        {
            "goal": f"first screen of {stories:,} stories <= {FIRST_SCREEN_GOAL_MS:.0f} ms",
            "value_ms": first_screen(biggest),
            "met": first_screen(biggest) <= FIRST_SCREEN_GOAL_MS,
        },
        {
            "goal": f"remote change painted <= {PAINT_GOAL_MS:.0f} ms after its poke, every size",
            "value_ms": max((v for v in paints if v is not None), default=None),
            "met": all(v is not None and v <= PAINT_GOAL_MS for v in paints),
        },
    ]


def plot(data: dict[str, Any], png: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    variants = sorted({r["variant"] for row in data["sizes"] for r in row["variants"]})
    for v in variants:
        rows = [
            (row["stories"], r)
            for row in data["sizes"]
            for r in row["variants"]
            if r["variant"] == v
        ]
        xs = [n for n, _ in rows]
        ax1.plot(xs, [first_screen(r) for _, r in rows], marker="o", label=v)
        ax2.plot(xs, [after_poke(r) or 0 for _, r in rows], marker="o", label=v)
    for ax, title, goal in (
        (ax1, "First screen (navigation start to cards painted)", FIRST_SCREEN_GOAL_MS),
        (ax2, "Remote change: poke arrived to painted", PAINT_GOAL_MS),
    ):
        ax.axhline(goal, color="grey", linestyle="--", linewidth=1, label=f"goal {goal:.0f} ms")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("stories in the project")
        ax.set_ylabel("median ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    finish(fig, png, "The board in Chromium", data["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,3000,10000", help="project sizes, ascending")
    parser.add_argument(
        "--before-rev", default=None, help="also measure the page at this git revision"
    )
    parser.add_argument("--loads", type=int, default=3, help="board loads per size and variant")
    parser.add_argument(
        "--changes", type=int, default=15, help="remote changes per size and variant"
    )
    parser.add_argument(
        "--history-reads", type=int, default=HISTORY_READS, help="GETs per history variant"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "board")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    machine = describe()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="board-bench-") as tmp:
        work = Path(tmp)
        variants: dict[str, str | None] = {"current": None}
        if args.before_rev:
            # The probe serves the older files from memory, without the app's revalidation
            # round trips; the current ones are measured that way too, for a like-for-like
            # pair, and as the app serves them (the goal's figure).
            variants = {
                f"before ({args.before_rev[:9]})": str(static_at(args.before_rev, work)),
                PROBE_SERVED: str(ROOT / STATIC),
                **variants,
            }
        demo, url = start_demo(work)
        try:
            grower = Grower(url)
            for size in sizes:
                took = grower.grow_to(size)
                log(f"grown to {size} stories through the API in {took:.1f} s; probing")
                spec = {
                    "url": url,
                    "project": grower.project,
                    "email": EMAIL,
                    "password": PASSWORD,
                    "loads": args.loads,
                    "changes": args.changes,
                    "variants": variants,
                }
                measured = probe(spec, work)
                for r in measured:
                    first, paint = r["first_screen_median_ms"], r["paint_after_poke_median_ms"]
                    log(
                        f"{size} stories, {r['variant']}: first screen {first:.0f} ms, "
                        f"{r['dom_nodes']} DOM nodes; poke to paint {paint} ms "
                        f"({len(r['paint_after_poke_ms'])} changes, {r['missed']} missed)"
                    )
                rows.append({"stories": size, "grow_s": round(took, 1), "variants": measured})
            history = history_reads(grower, args.history_reads)
            requests = page_requests(grower, args.history_reads)
        finally:
            stop_demo(demo)
    data = {
        "bench": "board",
        "params": {
            "sizes": sizes,
            "loads": args.loads,
            "changes": args.changes,
            "before_rev": args.before_rev,
            "mix": dict(MIX),
        },
        "revision": head.stdout.strip(),
        "machine": machine,
        "sizes": rows,
        "goals": goals(rows),
        "history": {"stories": sizes[-1], "reads": args.history_reads, "cases": history},
        "page_requests": {"stories": sizes[-1], "reads": args.history_reads, "cases": requests},
    }
    save(data, args.out, plot)
    print_goals(data)


if __name__ == "__main__":
    main()

"""The poll path under load: wrk against a real ``tidings app`` process, beside a floor.

Each store configuration (SQLite; PostgreSQL; PostgreSQL with the Redis version
cache) runs as its own app process, all started at once, with a bare-ASGI floor
beside them (bench/peers/poll_floor.py: the same server stack, a token and a
version from dicts, the same 304). The up-to-date poll (``If-None-Match`` as the
clients send it, so a 304) is measured in rounds, every target once per round in
a rotating order, and quoted as medians and as ratios to the floor and to the
same poll without Redis. Then, once per configuration: a poll returning 10
events, an up-to-date poll of 5 projects in one request, and a command. Every
server is pinned to core 0 and wrk to core 1; server CPU per request comes from
/proc. Writes bench/results/poll_path.json and .png.

    .venv/bin/python bench/poll_path.py [--duration 10] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import (
    Postgres,
    Redis,
    cpu_seconds,
    database,
    free_port,
    stop_process,
    tidings_cli,
    wait_port,
)
from machine import describe
from report import finish, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FLOOR = ROOT / "bench" / "peers" / "poll_floor.py"
PROBE = ROOT / "bench" / "lib" / "app_probe.py"
FLOOR_NAME = "asgi-floor"
BASELINE = "postgres"
PRODUCTION = "postgres+redis"

#: Events in the polled project; 10-event polls start at a random version among them.
EVENTS = 300

# Each request asks for 10 events from a different starting version, so concurrent
# requests rarely share a (project, since) and the single-flight cannot merge them:
# this measures the cost of one 10-event read, not of a herd.
EVENTS_LUA = """
math.randomseed(os.time())
request = function()
  local since = math.random(1, MAX_SINCE)
  return wrk.format(nil, PATH .. "?since=" .. since .. "&limit=10")
end
"""

COMMAND_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = '{"command": {"type": "rename_project", "name": "bench ' .. counter .. '"}}'
  return wrk.format(nil, nil, nil, body)
end
"""

#: Response headers uvicorn sets itself (the floor gets its own).
SERVER_HEADERS = frozenset({"date", "server", "content-length", "content-type"})


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_wrk(text: str) -> dict[str, Any]:
    def seconds(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    latency = {p: seconds(v) * 1000 for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.M)}
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {
        "requests": total,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),  # type: ignore[union-attr]
        "latency_ms_p50": latency.get("50"),
        "latency_ms_p99": latency.get("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        # Printed by a script that counts refusals (write_path.py's): "status body".
        "refused": {
            key: int(count) for count, key in re.findall(r"^Refused (\d+): (.*)$", text, re.M)
        },
    }


def wrk(
    url: str, headers: dict[str, str], duration: float, connections: int, script: str | None
) -> str:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s"]
    cmd.append("--latency")
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    # wrk runs its default GET when its script does not load, saying so only on stderr.
    if "requests in" not in done.stdout or done.stderr.strip():
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    return done.stdout


def measure(
    target: Target,
    url: str,
    headers: dict[str, str],
    duration: float,
    connections: int,
    script: str | None = None,
) -> dict[str, Any]:
    """Warm up, then one wrk run; the server's CPU over it per request (and what
    its probe saw, when probed)."""
    pid = target.server.proc.pid
    wrk(url, headers, min(2.0, duration), connections, script)
    target.read_probe()
    before = cpu_seconds(pid)
    out = wrk(url, headers, duration, connections, script)
    used = cpu_seconds(pid) - before
    parsed = parse_wrk(out)
    parsed["server_cpu_us_per_request"] = round(used / max(parsed["requests"], 1) * 1e6, 1)
    probed = target.read_probe()
    if probed is not None:
        parsed["probe"] = probed
    return parsed


def describe_run(name: str, scenario: str, r: dict[str, Any]) -> None:
    probe = ""
    if "probe" in r:
        full = r["probe"]["gc"]["2"]
        lag = r["probe"]["loop_lag_ms"]
        probe = (
            f"  full GCs {full['count']} ({full['cpu_ms_total']:.0f} ms CPU, "
            f"max {full['wall_ms_max']:.0f} ms)  loop lag max {lag['max']} ms"
        )
    log(
        f"{name:>16} {scenario:<20} {r['rps']:>8.0f} req/s  "
        f"p50 {r['latency_ms_p50']:.2f} ms  p99 {r['latency_ms_p99']:.2f} ms  "
        f"server {r['server_cpu_us_per_request']:.0f} us/req  non-2xx {r['non_2xx']}{probe}"
    )


class Server:
    """A server process pinned to core 0, listening on a free port."""

    def __init__(self, args: list[str], env: dict[str, str], ready_path: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, *args, str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.proc, 60)
        deadline = time.monotonic() + 60
        while httpx.get(f"{self.base}{ready_path}", timeout=5).status_code == 503:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not become ready")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)


class Target:
    """One configuration under test: its server, its token and the polled URLs."""

    def __init__(self, name: str, server: Server, token: str) -> None:
        self.name = name
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}
        self.up_to_date = ""
        self.version = 0
        self.others: dict[str, tuple[str, str | None]] = {}
        self.scripts: dict[str, str] = {}
        #: The 304's headers besides the version's own and the server's.
        self.static_headers: list[tuple[str, str]] = []
        #: Where the app's stall probe writes (bench/lib/app_probe.py), if probed.
        self.probe: Path | None = None

    def read_probe(self) -> dict[str, Any] | None:
        """What the probe saw since it was last read (it starts over)."""
        if self.probe is None:
            return None
        self.probe.unlink(missing_ok=True)
        os.kill(self.server.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not self.probe.exists() or not self.probe.stat().st_size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the probe did not answer")
            time.sleep(0.05)
        time.sleep(0.05)  # written in one call; let it finish
        data: dict[str, Any] = json.loads(self.probe.read_text())
        return data

    def poll_headers(self) -> dict[str, str]:
        return {**self.headers, "If-None-Match": f'"{self.version}"'}


def start_tidings(
    name: str, db_url: str, redis_url: str | None, probe: Path | None, unfreeze: bool
) -> Target:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    tidings_cli("users", "add", "bench@x.io", "Bench", "--password", "password1", env=env)
    token = tidings_cli("tokens", "create", "bench@x.io", env=env)
    command = ["-m", "tidings", "app", "--port"]
    if probe is not None:
        command = [str(PROBE), "app", "--port"]
        env["TIDINGS_PROBE_OUT"] = str(probe)
        env["TIDINGS_PROBE_UNFREEZE"] = "1" if unfreeze else "0"
    server = Server(command, env, "/healthz")
    target = Target(name, server, token)
    target.probe = probe
    with httpx.Client(base_url=server.base, headers=target.headers, timeout=30) as http:
        pids = [
            http.post("/api/projects", json={"name": f"p{n}"}).json()["project"] for n in range(5)
        ]
        for n in range(EVENTS):
            http.post(
                f"/api/projects/{pids[0]}/commands",
                json={
                    "command": {
                        "type": "create_story",
                        "title": f"story {n}",
                        "description": "x" * 200,
                        "labels": ["bench"],
                    }
                },
            ).raise_for_status()
        version = http.get(f"/api/projects/{pids[0]}").json()["version"]
        ten = http.get(f"/api/projects/{pids[0]}/events?since={version - 10}").json()
        assert len(ten["events"]) == 10, ten
        target.version = version
        target.up_to_date = f"{server.base}/api/projects/{pids[0]}/events?since={version}"
        check = http.get(target.up_to_date, headers=target.poll_headers())
        assert check.status_code == 304, (check.status_code, check.text)
        target.static_headers = [
            (k, v)
            for k, v in check.headers.items()
            if k.lower() not in SERVER_HEADERS | {"etag", "x-tidings-project-version"}
        ]
    multi = "&".join(f"p={p}:{version if p == pids[0] else 1}" for p in pids)
    target.others = {
        "events_10": (f"{server.base}/api/projects/{pids[0]}/events", "events"),
        "multi_5_up_to_date": (f"{server.base}/api/poll?{multi}", None),
        "command": (f"{server.base}/api/projects/{pids[1]}/commands", "command"),
    }
    target.scripts = {
        "command": COMMAND_LUA,
        "events": EVENTS_LUA.replace("MAX_SINCE", str(version - 10)).replace(
            "PATH", f'"/api/projects/{pids[0]}/events"'
        ),
    }
    return target


def start_floor(work: Path, like: Target) -> Target:
    """The bare-ASGI floor, answering for the same project at the same version
    with the same static headers as ``like``."""
    token = "floor-token-0123456789abcdef"
    project = int(like.up_to_date.split("/api/projects/")[1].split("/")[0])
    spec = work / "floor.json"
    spec.write_text(
        json.dumps(
            {
                "token": token,
                "versions": {str(project): like.version},
                "headers": like.static_headers,
            }
        )
    )
    server = Server([str(FLOOR), str(spec)], dict(os.environ), "/")
    target = Target(FLOOR_NAME, server, token)
    target.version = like.version
    target.up_to_date = f"{server.base}/api/projects/{project}/events?since={like.version}"
    check = httpx.get(target.up_to_date, headers=target.poll_headers())
    assert check.status_code == 304, check.status_code
    return target


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians of the up-to-date poll per target over the rounds, and ratios."""
    names = list(rounds[0])
    medians: dict[str, Any] = {}
    for name in names:
        runs = [r[name] for r in rounds]
        medians[name] = {
            key: round(statistics.median(run[key] for run in runs), 2)
            for key in ("server_cpu_us_per_request", "rps", "latency_ms_p50", "latency_ms_p99")
        }
        medians[name]["latency_ms_p99_max"] = max(run["latency_ms_p99"] for run in runs)
    ratios: dict[str, Any] = {}
    cpu = "server_cpu_us_per_request"
    if FLOOR_NAME in medians:
        for name in names:
            if name != FLOOR_NAME:
                ratios[f"{name}_cpu_vs_floor"] = round(
                    medians[name][cpu] / medians[FLOOR_NAME][cpu], 2
                )
    if BASELINE in medians and PRODUCTION in medians:
        ratios[f"{PRODUCTION}_cpu_vs_{BASELINE}"] = round(
            medians[PRODUCTION][cpu] / medians[BASELINE][cpu], 2
        )
    # Per round as well: both sides of a ratio ran minutes apart at most.
    per_round: dict[str, list[float]] = {}
    for r in rounds:
        for name in names:
            if FLOOR_NAME in r and name != FLOOR_NAME:
                per_round.setdefault(f"{name}_cpu_vs_floor", []).append(
                    round(r[name][cpu] / r[FLOOR_NAME][cpu], 2)
                )
        if BASELINE in r and PRODUCTION in r:
            per_round.setdefault(f"{PRODUCTION}_cpu_vs_{BASELINE}", []).append(
                round(r[PRODUCTION][cpu] / r[BASELINE][cpu], 2)
            )
    return {"medians": medians, "ratios": ratios, "ratios_per_round": per_round}


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    medians = results["up_to_date"]["medians"]
    names = list(medians)
    xs = range(len(names))
    axes[0].bar(xs, [medians[n]["server_cpu_us_per_request"] for n in names])
    axes[0].set_title("up-to-date poll (304): server CPU us/request\nmedian of rounds")
    axes[1].bar([x - 0.2 for x in xs], [medians[n]["latency_ms_p50"] for n in names], 0.4)
    axes[1].bar([x + 0.2 for x in xs], [medians[n]["latency_ms_p99"] for n in names], 0.4)
    axes[1].legend(["p50", "p99"])
    axes[1].set_title(f"up-to-date poll latency ms, wrk -c{results['connections']}")
    for ax in axes[:2]:
        ax.set_xticks(list(xs), names, rotation=15)
    configs = list(results["configs"])
    if configs:
        scenarios = list(results["configs"][configs[0]])
        width = 0.8 / len(configs)
        for i, config in enumerate(configs):
            data = results["configs"][config]
            axes[2].bar(
                [j + i * width for j in range(len(scenarios))],
                [data[s]["server_cpu_us_per_request"] for s in scenarios],
                width,
                label=config,
            )
        axes[2].set_xticks(
            [j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios, rotation=15
        )
        axes[2].set_yscale("log")
        axes[2].set_title("other scenarios: server CPU us/request (log)")
        axes[2].legend()
    fig.suptitle("tidings poll path, servers pinned to core 0, wrk to core 1")
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the up-to-date poll")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--configs", default="sqlite,postgres,postgres+redis", help="comma-separated"
    )
    parser.add_argument(
        "--no-others", action="store_true", help="only the up-to-date poll (no other scenarios)"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the apps under bench/lib/app_probe.py: GC pauses and event-loop lag per run",
    )
    parser.add_argument(
        "--unfrozen",
        action="store_true",
        help="with --probe: undo tidings/heap.py in the apps (to measure what it saves)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "poll_path")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "poll_path",
        "machine": describe(),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "probe": args.probe,
        "heap_frozen": not args.unfrozen,
        "configs": {},
    }
    work = Path(tempfile.mkdtemp(prefix="tidings-poll-path-"))
    cleanup: list[Postgres | Redis | Server] = []
    targets: list[Target] = []
    try:
        redis: Redis | None = None
        for config in args.configs.split(","):
            db_url, pg = database("postgres" if config.startswith("postgres") else "sqlite")
            if pg is not None:
                cleanup.append(pg)
            redis_url = None
            if config.endswith("+redis"):
                if redis is None:
                    redis = Redis(work)
                    cleanup.append(redis)
                redis_url = redis.url
            probe = work / f"probe-{len(targets)}.json" if args.probe else None
            target = start_tidings(config, db_url, redis_url, probe, args.unfrozen)
            cleanup.append(target.server)
            targets.append(target)
        floor = start_floor(work, targets[0])
        cleanup.append(floor.server)
        targets.append(floor)
        rounds: list[dict[str, dict[str, Any]]] = []
        for n in range(args.rounds):
            # A rotating order: no target always runs first (or last) in a round.
            order = targets[n % len(targets) :] + targets[: n % len(targets)]
            done: dict[str, dict[str, Any]] = {}
            for t in order:
                done[t.name] = measure(
                    t, t.up_to_date, t.poll_headers(), args.duration, args.connections
                )
                describe_run(t.name, f"up_to_date #{n + 1}", done[t.name])
            rounds.append({t.name: done[t.name] for t in targets})
        results["up_to_date"] = {"rounds": rounds, **summarize(rounds)}
        if not args.no_others:
            for t in targets:
                if t.name == FLOOR_NAME:
                    continue
                results["configs"][t.name] = {}
                for scenario, (url, script) in t.others.items():
                    lua = None
                    if script:
                        lua = str(work / f"{script}.lua")
                        Path(lua).write_text(t.scripts[script])
                    r = measure(t, url, t.headers, args.duration, args.connections, lua)
                    results["configs"][t.name][scenario] = r
                    describe_run(t.name, scenario, r)
    finally:
        for part in reversed(cleanup):
            part.stop()
    summary = results["up_to_date"]
    print("\nup-to-date poll, medians over rounds:")
    for name, m in summary["medians"].items():
        print(
            f"  {name:>16}: {m['server_cpu_us_per_request']:>6.1f} us/req  "
            f"p50 {m['latency_ms_p50']:.2f} ms  p99 {m['latency_ms_p99']:.2f} ms  "
            f"{m['rps']:.0f} req/s"
        )
    for name, ratio in summary["ratios"].items():
        print(f"  {name}: x{ratio}  (per round {summary['ratios_per_round'].get(name)})")
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

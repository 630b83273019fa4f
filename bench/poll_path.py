"""The poll path under load: wrk against a real ``tidings app`` process.

For each store configuration (SQLite; PostgreSQL; PostgreSQL with the Redis
version cache) it measures, side by side in one run: an up-to-date poll, a poll
returning 10 events, an up-to-date poll of 5 projects in one request, and a
command. The app is pinned to core 0 and wrk to core 1; server CPU per request
comes from /proc. Writes bench/results/poll_path.json and .png.

    .venv/bin/python bench/poll_path.py [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import tidings_cli
from machine import describe
from report import save

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("TIDINGS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TIDINGS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
TICKS = os.sysconf("SC_CLK_TCK")

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


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    }


def wrk(url: str, token: str, duration: float, connections: int, script: str | None) -> str:
    cmd = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    if script:
        cmd[7:7] = ["-s", script]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if "requests in" not in done.stdout:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    return done.stdout


class App:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                "-m",
                "tidings",
                "app",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the app did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def create_pg_database() -> tuple[str, str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", PG_ADMIN, "-qc", f"CREATE DATABASE {name}"], check=True, timeout=60)
    return name, PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(name: str) -> None:
    subprocess.run(
        ["psql", PG_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
        check=False,
        timeout=60,
    )


def run_config(
    name: str, db_url: str, redis_url: str | None, duration: float, connections: int
) -> dict[str, Any]:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    tidings_cli("users", "add", "bench@x.io", "Bench", "--password", "password1", env=env)
    token = tidings_cli("tokens", "create", "bench@x.io", env=env)
    app = App(env)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=app.base, headers=headers, timeout=30) as http:
            pids = [
                http.post("/api/projects", json={"name": f"p{n}"}).json()["project"]
                for n in range(5)
            ]
            for n in range(EVENTS):
                r = http.post(
                    f"/api/projects/{pids[0]}/commands",
                    json={
                        "command": {
                            "type": "create_story",
                            "title": f"story {n}",
                            "description": "x" * 200,
                            "labels": ["bench"],
                        }
                    },
                )
                r.raise_for_status()
            version = http.get(f"/api/projects/{pids[0]}").json()["version"]
            ten = http.get(f"/api/projects/{pids[0]}/events?since={version - 10}").json()
            assert len(ten["events"]) == 10, ten
        multi = "&".join(f"p={p}:{version if p == pids[0] else 1}" for p in pids)
        scenarios = {
            "up_to_date": (f"{app.base}/api/projects/{pids[0]}/events?since={version}", None),
            "events_10": (f"{app.base}/api/projects/{pids[0]}/events", "events"),
            "multi_5_up_to_date": (f"{app.base}/api/poll?{multi}", None),
            "command": (f"{app.base}/api/projects/{pids[1]}/commands", "command"),
        }
        scripts = {
            "command": COMMAND_LUA,
            "events": EVENTS_LUA.replace("MAX_SINCE", str(version - 10)).replace(
                "PATH", f'"/api/projects/{pids[0]}/events"'
            ),
        }
        results: dict[str, Any] = {}
        for scenario, (url, script) in scenarios.items():
            lua = None
            if script:
                script_path = Path(tempfile.mkstemp(suffix=".lua")[1])
                script_path.write_text(scripts[script])
                lua = str(script_path)
            wrk(url, token, 2, connections, lua)  # warm up
            before = cpu_seconds(app.proc.pid)
            out = wrk(url, token, duration, connections, lua)
            used = cpu_seconds(app.proc.pid) - before
            parsed = parse_wrk(out)
            parsed["server_cpu_us_per_request"] = round(used / max(parsed["requests"], 1) * 1e6, 1)
            results[scenario] = parsed
            log(
                f"{name:>16} {scenario:<20} {parsed['rps']:>8.0f} req/s  "
                f"p50 {parsed['latency_ms_p50']:.2f} ms  p99 {parsed['latency_ms_p99']:.2f} ms  "
                f"server {parsed['server_cpu_us_per_request']:.0f} us/req  "
                f"non-2xx {parsed['non_2xx']}"
            )
        return results
    finally:
        app.stop()


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(results["configs"])
    scenarios = list(next(iter(results["configs"].values())))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(configs)
    for i, config in enumerate(configs):
        xs = [j + i * width for j in range(len(scenarios))]
        data = results["configs"][config]
        axes[0].bar(xs, [data[s]["rps"] for s in scenarios], width, label=config)
        axes[1].bar(
            xs, [data[s]["server_cpu_us_per_request"] for s in scenarios], width, label=config
        )
    for ax, title in zip(
        axes,
        ("requests/s (higher is better)", "server CPU per request, us (lower is better)"),
        strict=True,
    ):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios, rotation=15)
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"tidings poll path, wrk -c{results['connections']}, app pinned to 1 core")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--configs", default="sqlite,postgres,postgres+redis", help="comma-separated"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "poll_path")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "poll_path",
        "machine": describe(),
        "duration_s": args.duration,
        "connections": args.connections,
        "configs": {},
    }
    for config in args.configs.split(","):
        if config == "sqlite":
            tmp = tempfile.mkdtemp()
            results["configs"][config] = run_config(
                config, f"sqlite:///{tmp}/bench.sqlite3", None, args.duration, args.connections
            )
        else:
            name, url = create_pg_database()
            try:
                redis_url = REDIS if config.endswith("+redis") else None
                results["configs"][config] = run_config(
                    config, url, redis_url, args.duration, args.connections
                )
            finally:
                drop_pg_database(name)
    print("\nratios (10-event poll vs up-to-date poll):")
    for config, data in results["configs"].items():
        up, ten = data["up_to_date"], data["events_10"]
        cpu_ratio = ten["server_cpu_us_per_request"] / up["server_cpu_us_per_request"]
        rps_ratio = up["rps"] / ten["rps"]
        results.setdefault("ratios", {})[config] = {
            "server_cpu_events10_vs_up_to_date": round(cpu_ratio, 2),
            "rps_up_to_date_vs_events10": round(rps_ratio, 2),
        }
        print(f"  {config:>16}: server CPU x{cpu_ratio:.2f}, requests/s x{rps_ratio:.2f}")
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Conformance against the real client: the npm ``socket.io-client`` 4.x, in Node
and in headless Chromium (the browser's own XHR and WebSocket).

All scenarios run at once against one harness (a few seconds of wall time
together), then each test checks its own transcript.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import unavailable
from tidings.push.sio.engineio import Closed, EngineConfig
from tidings.push.sio.session import Refresh, Subscribe

from .harness import Harness

ROOT = Path(__file__).resolve().parents[3]
CLIENT = Path(__file__).with_name("client.mjs")
BROWSER = Path(__file__).with_name("browser.mjs")
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core" / "package.json"
SOCKET_IO_CLIENT = ROOT / "node_modules" / "socket.io-client" / "package.json"
NODE_MODULES_WAIT = 120.0  # npm install may still be running on a fresh machine
RUN_TIMEOUT = 20.0
PROJECT_BASE = 100

# Short ping intervals so that every scenario lives through several pings; a
# generous pong timeout because a dozen Node processes and a browser start at
# once on two shared cores (a starved event loop must not read as a dead peer).
CONFIG = EngineConfig(ping_interval=0.25, ping_timeout=10.0, upgrade_timeout=10.0)

SCENARIOS = [
    ("upgrade", "auth"),
    ("upgrade", "event"),
    ("websocket", "auth"),
    ("websocket", "event"),
    ("polling", "auth"),
    ("polling", "event"),
    ("polling", "kick"),
    ("websocket", "kick"),
    ("upgrade", "badauth"),
    ("upgrade", "badns"),
    ("polling", "badns"),
]
BROWSER_SCENARIOS = [("upgrade", "auth"), ("websocket", "event"), ("polling", "event")]
BROWSER_PROJECT_BASE = 200


def _require_client() -> str:
    node = shutil.which("node")
    deadline = time.monotonic() + NODE_MODULES_WAIT
    while node and not SOCKET_IO_CLIENT.exists() and time.monotonic() < deadline:
        time.sleep(1.0)
    if not (node and SOCKET_IO_CLIENT.exists()):
        unavailable("node and node_modules/socket.io-client are needed (npm install)")
    assert node is not None
    return node


class Transcript:
    def __init__(self, code: int | None, stdout: str, stderr: str) -> None:
        self.code = code
        self.lines: list[dict[str, Any]] = [json.loads(x) for x in stdout.splitlines() if x]
        self.stderr = stderr
        # Only in the ("_", "events") transcript: the harness's events, one list per session.
        self.events: list[list[object]] = []

    def first(self, key: str) -> dict[str, Any]:
        for line in self.lines:
            if key in line:
                return line
        raise AssertionError(f"no {key!r} in {self.lines} (stderr: {self.stderr[-500:]})")

    def all(self, key: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if key in line]


async def _run_all(node: str, browser_available: bool) -> dict[tuple[str, str], Transcript]:
    async with Harness(CONFIG) as harness:
        url = f"http://127.0.0.1:{harness.port}"

        async def run(mode: str, how: str, project: int) -> Transcript:
            proc = await asyncio.create_subprocess_exec(
                node,
                str(CLIENT),
                url,
                mode,
                how,
                str(project),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
            except TimeoutError:
                proc.kill()
                out, err = await proc.communicate()
            return Transcript(proc.returncode, out.decode(), err.decode())

        # One project per scenario, so that each client sees only its own pokes.
        results = await asyncio.gather(
            *(run(mode, how, PROJECT_BASE + i) for i, (mode, how) in enumerate(SCENARIOS))
        )
        transcripts = dict(zip(SCENARIOS, results, strict=True))
        browser = await _run_browser(node, url, browser_available)
        # Let the clients' last packets reach the harness (bounded wait).
        for _ in range(100):
            if all(s.closed for s in harness.server.sessions.values()):
                break
            await asyncio.sleep(0.05)
        # Attribute the harness's events to scenarios by the session that logged them.
        by_session: dict[str, list[object]] = {}
        for sid, event in harness.events:
            by_session.setdefault(sid, []).append(event)
        # Sessions still open (a closing one may wait for its client's last GET).
        leftover = sum(not s.closed for s in harness.server.sessions.values())
    for transcript in transcripts.values():
        transcript.events = []
    transcripts[("_", "sessions")] = Transcript(0, json.dumps({"left": leftover}), "")
    transcripts[("_", "browser")] = browser
    transcripts[("_", "events")] = Transcript(0, "", "")
    transcripts[("_", "events")].events = list(by_session.values())
    return transcripts


async def _run_browser(node: str, url: str, available: bool) -> Transcript:
    """All browser scenarios in one Chromium; the transcript holds one result line each."""
    if not available:
        return Transcript(None, "", f"no browser: {CHROMIUM} and playwright-core are needed")
    specs = [
        [mode, how, BROWSER_PROJECT_BASE + i] for i, (mode, how) in enumerate(BROWSER_SCENARIOS)
    ]
    proc = await asyncio.create_subprocess_exec(
        node,
        str(BROWSER),
        url,
        json.dumps(specs),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT + 20)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    lines = "\n".join(json.dumps(r) for r in json.loads(out or b"[]"))
    return Transcript(proc.returncode, lines, err.decode())


@pytest.fixture(scope="module")
def transcripts() -> dict[tuple[str, str], Transcript]:
    node = _require_client()
    return asyncio.run(_run_all(node, CHROMIUM.exists() and PLAYWRIGHT.exists()))


@pytest.mark.parametrize(
    ("mode", "how"),
    [s for s in SCENARIOS if s[1] in ("auth", "event")],
)
def test_real_client_subscribes_and_receives_pokes(
    transcripts: dict[tuple[str, str], Transcript], mode: str, how: str
) -> None:
    t = transcripts[(mode, how)]
    assert t.code == 0, (t.lines, t.stderr[-1000:])
    expected_transport = "polling" if mode == "polling" else "websocket"
    if how == "event":
        assert t.first("ack") == {"ack": "subscribe", "args": []}
    assert t.first("subscribed")["subscribed"]["type"] == "subscribed"
    pokes = t.all("poke")
    assert len(pokes) == 2
    assert pokes[0]["poke"]["project"] == PROJECT_BASE + SCENARIOS.index((mode, how))
    assert pokes[1]["poke"]["version"] > pokes[0]["poke"]["version"]
    assert {"ack": "refresh"} in t.lines
    done = t.first("done")
    assert done["connected"] is True
    assert done["transport"] == expected_transport
    assert done["pings"] >= 2, "the session must live through several heartbeats"
    if mode == "upgrade":
        assert {"upgrade": "websocket"} in t.lines
    else:
        assert not t.all("upgrade")
    assert t.first("disconnect")["disconnect"] == "io client disconnect"


@pytest.mark.parametrize(("mode", "how"), BROWSER_SCENARIOS)
def test_real_client_in_a_browser_subscribes_and_receives_pokes(
    transcripts: dict[tuple[str, str], Transcript], mode: str, how: str
) -> None:
    browser = transcripts[("_", "browser")]
    if browser.code is None:
        unavailable(browser.stderr)
    assert browser.code == 0, browser.stderr[-2000:]
    [result] = [r for r in browser.lines if (r["mode"], r["how"]) == (mode, how)]
    t = Transcript(result["code"], "\n".join(json.dumps(x) for x in result["lines"]), "")
    assert t.code == 0 and not result["errors"], (t.lines, result["errors"])
    pokes = t.all("poke")
    assert len(pokes) == 2
    project = BROWSER_PROJECT_BASE + BROWSER_SCENARIOS.index((mode, how))
    assert pokes[0]["poke"]["project"] == project
    done = t.first("done")
    assert done["connected"] is True and done["pings"] >= 2
    assert done["transport"] == ("polling" if mode == "polling" else "websocket")
    assert (mode == "upgrade") == ({"upgrade": "websocket"} in t.lines)


@pytest.mark.parametrize("mode", ["polling", "websocket"])
def test_real_client_sees_io_server_disconnect_when_the_server_closes(
    transcripts: dict[tuple[str, str], Transcript], mode: str
) -> None:
    t = transcripts[(mode, "kick")]
    assert t.code == 0, (t.lines, t.stderr[-1000:])
    assert len(t.all("poke")) == 1
    assert t.first("disconnect")["disconnect"] == "io server disconnect"


def test_real_client_gets_connect_error_for_a_malformed_auth_payload(
    transcripts: dict[tuple[str, str], Transcript],
) -> None:
    t = transcripts[("upgrade", "badauth")]
    assert t.code == 0, (t.lines, t.stderr[-1000:])
    assert "non-negative" in t.first("connect_error")["connect_error"]


@pytest.mark.parametrize("mode", ["upgrade", "polling"])
def test_real_client_gets_invalid_namespace(
    transcripts: dict[tuple[str, str], Transcript], mode: str
) -> None:
    t = transcripts[(mode, "badns")]
    assert t.code == 0, (t.lines, t.stderr[-1000:])
    assert t.first("connect_error") == {"connect_error": "Invalid namespace"}


def test_harness_saw_subscribes_refreshes_and_every_session_closed(
    transcripts: dict[tuple[str, str], Transcript],
) -> None:
    sessions = transcripts[("_", "events")].events
    kinds = [
        [type(e).__name__ for e in events if type(e).__name__ != "Connected"] for events in sessions
    ]
    # Six full Node scenarios and the browser's: subscribe, refresh, then the
    # client's own disconnect.
    full = [k for k in kinds if k == ["Subscribe", "Refresh", "Closed"]]
    browser_ran = transcripts[("_", "browser")].code == 0
    assert len(full) == 6 + (len(BROWSER_SCENARIOS) if browser_ran else 0), kinds
    for events in sessions:
        closed = [e for e in events if isinstance(e, Closed)]
        assert len(closed) == 1, events
        if any(isinstance(e, Refresh) for e in events):
            assert closed[0].reason == "client namespace disconnect"
        elif any(isinstance(e, Subscribe) and e.token == "kick-me" for e in events):
            assert closed[0].reason == "kicked"
    assert transcripts[("_", "sessions")].lines == [{"left": 0}]

"""The browser client (tidings-client.js) in Node against the real stack, over
WebSocket and SSE at once (node_client.mjs): a change arrives by poke within a
fraction of a second; with the push servers killed, by poll within the short
interval, and by poke again once they are back; the kill switch turns push off
within one poll interval and back on."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.integration.test_python_client import (
    FALLBACK_BOUND,
    FLAG_OFF_BOUND,
    FLAG_ON_BOUND,
    GO_LIVE,
    POKE_LATENCY,
    RECONNECT_BOUND,
)
from tidings.testing.stack import Stack

SCRIPT = Path(__file__).with_name("node_client.mjs")
ROOT = Path(__file__).parents[2]
#: The whole script: start-up, pokes, a push server restart, a kill switch cycle.
TIMEOUT = 60.0


def node() -> str:
    found = shutil.which("node")
    if found is None or not (ROOT / "node_modules" / "ws").is_dir():
        pytest.fail("node and the npm packages (npm ci) are needed for this test")
    return found


async def test_node_client_by_poke_by_poll_and_through_the_kill_switch(
    stack: Stack, tmp_path: Path
) -> None:
    project, _ = await stack.new_project("node client")
    config = {
        "appUrl": stack.app_url,
        "token": stack.admin_token,
        "project": project,
        "transports": ["ws", "sse"],
        "bounds": {
            "goLive": GO_LIVE,
            "pokeLatency": POKE_LATENCY,
            "fallbackBound": FALLBACK_BOUND,
            "flagOffBound": FLAG_OFF_BOUND,
            "flagOnBound": FLAG_ON_BOUND,
            "reconnect": RECONNECT_BOUND,
        },
    }
    stderr_path = tmp_path / "node.stderr"
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(SCRIPT),
        json.dumps(config),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr_path.open("wb"),
    )
    steps = {"kill_push": stack.kill_pushes, "start_push": stack.start_pushes}
    lines: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            assert proc.stdout is not None and proc.stdin is not None
            while line := (await proc.stdout.readline()).decode():
                lines.append(line)
                step = json.loads(line).get("step")
                if step is not None:
                    await steps[step]()
                    proc.stdin.write(b"done\n")
                    await proc.stdin.drain()
            await proc.wait()
    except TimeoutError:
        raise AssertionError(
            f"node_client.mjs did not finish within {TIMEOUT} s: {lines}"
        ) from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        # The script flips the kill switch; whatever happened, leave push on.
        await stack.set_push(True)
    err = stderr_path.read_text(errors="replace")[-3000:]
    verdict = json.loads(lines[-1]) if lines else {}
    assert verdict.get("ok"), f"exit {proc.returncode}, {verdict or lines}\nstderr:\n{err}"
    assert proc.returncode == 0
    results = verdict["results"]
    for name in ("node-ws", "node-sse"):
        assert all(r[name] < POKE_LATENCY * 1000 for r in results["poke_ms"]), results
        assert results["after_on_ms"][name] < POKE_LATENCY * 1000, results
        assert results["push_back_ms"][name] < POKE_LATENCY * 1000, results
        assert results["push_down_ms"][name] < FALLBACK_BOUND * 1000, results
        assert results["off_s"][name] < FLAG_OFF_BOUND, results
        assert results["on_s"][name] < FLAG_ON_BOUND, results
        assert results["missed_pokes"][name] == 0, results
        assert results["statuses"][name][-1] == "live", results

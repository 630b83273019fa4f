"""Every shared vector in tests/vectors/sync/ against the Python controller.

The JS twin runs the same files (tests/js/sync-vectors.test.mjs), so a rule
cannot drift between the browser and the Python client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidings.client.backoff import full_jitter
from tidings.client.controller import Config, SyncController
from tidings.client.inputs import input_from_json

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sync"
DEFAULT_DRAW = 0.5
TOLERANCE = 1e-9


def _scenarios() -> list[Any]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text())
        for scenario in doc["scenarios"]:
            cases.append(pytest.param(scenario, id=f"{path.stem}: {scenario['name']}"))
    return cases


def _draws(values: list[float]) -> Callable[[], float]:
    queue = list(values)

    def rand() -> float:
        return queue.pop(0) if queue else DEFAULT_DRAW

    return rand


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(want - got) <= TOLERANCE
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(_same(want[k], got[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(_same(a, b) for a, b in zip(want, got, strict=True))
    return bool(want == got)


def test_every_rule_has_a_vector_file() -> None:
    rules = {p.stem for p in VECTORS.glob("*.json")}
    assert {
        "apply_order",
        "poke_coalescing",
        "intervals",
        "advice",
        "poll_backoff",
        "push_reconnect",
        "drain",
        "full_push",
        "token",
        "telemetry",
        "status",
        "multi_project",
        "lag",
        "start_and_snapshot",
        "revoked",
    } <= rules


def test_full_jitter_is_uniform_over_floor_to_ceiling() -> None:
    # A clamp (max(floor, r * ceiling)) would put every draw below 0.5 on the
    # first retry at exactly the floor: half a crashed server's clients at once.
    assert full_jitter(1, 2.0, 120.0, 1.0, 0.0) == 1.0
    assert full_jitter(1, 2.0, 120.0, 1.0, 0.2) == 1.2
    assert full_jitter(5000, 2.0, 120.0, 1.0, 0.5) == 60.5
    # A ceiling below the floor: the floor, whatever the draw.
    assert full_jitter(1, 0.5, 120.0, 1.0, 0.9) == 1.0


@pytest.mark.parametrize("scenario", _scenarios())
def test_vector(scenario: dict[str, Any]) -> None:
    controller = SyncController(
        Config.from_json(scenario["config"]), _draws(scenario.get("random", []))
    )
    for index, step in enumerate(scenario["steps"]):
        where = f"step {index} (at {step['at']}, {step['input']['type']})"
        actions = [a.to_json() for a in controller.feed(step["at"], input_from_json(step["input"]))]
        # Round-trip through JSON: the vectors hold what a JS driver would see.
        actions = json.loads(json.dumps(actions))
        assert _same(step["actions"], actions), f"{where}\nwant {step['actions']}\ngot  {actions}"
        state = controller.inspect()
        for key, want in step.get("state", {}).items():
            assert _same(want, state[key]), f"{where}: state {key} want {want} got {state[key]}"

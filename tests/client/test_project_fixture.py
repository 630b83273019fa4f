"""The committed projector fixture (tests/vectors/project_events.json) matches the Python
projector, so the JS projector's test checks against today's rules."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tidings.domain.project import replay

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def test_fixture_is_what_the_python_projector_gives_today() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_fixture", VECTORS / "make_project_fixture.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = json.loads((VECTORS / "project_events.json").read_text())
    assert committed == json.loads(json.dumps(module.build())), (
        "stale fixture: run .venv/bin/python tests/vectors/make_project_fixture.py"
    )
    assert replay(committed["project"], committed["events"]) == committed["snapshots"][-1]

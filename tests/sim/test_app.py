"""The simulated app answers with the protocol's shapes, not the app's code: importing
it loads no web framework and no database layer."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_simulated_app_imports_no_web_framework_and_no_database() -> None:
    code = (
        "import sys, tidings.sim.app\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'starlette', 'sqlalchemy', 'fastapi'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

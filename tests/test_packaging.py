"""The core install (``pip install tidings``, no extra) is light: installed from
this source tree into a clean virtualenv, the publisher library, the Python
client and the ``token``/``publish`` commands work without importing any web
framework or database library, and the commands of other roles say in one line
which extra they need.

About 20-30 s (a wheel is built, the _fanout extension compiled, and the core's
dependencies installed from pip's cache); one test, so the venv is made once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import redis

from tidings.protocol.channels import version_key
from tidings.protocol.tokens import KeyRing, verify_push_token

ROOT = Path(__file__).resolve().parents[1]

#: Never imported by the core: the app's and the push server's dependencies.
HEAVY = ("fastapi", "starlette", "sqlalchemy", "alembic", "argon2", "uvicorn", "prometheus_client")

#: Runs in the clean venv: the library, the client, the CLI's parser and its
#: token and publish commands, then prints what was imported of HEAVY.
PROBE = """
import json, sys
import tidings.publish, tidings.client, tidings.client.driver
from tidings.cli import main
heavy, commands = json.loads(sys.argv[1]), json.loads(sys.argv[2])
codes = [main(command) for command in commands]
print(json.dumps({"codes": codes, "heavy": [m for m in heavy if m in sys.modules]}))
"""

KEYS = KeyRing({"k9": b"p" * 40})


def _copy_source(dest: Path) -> Path:
    """Only what a build reads: a build in the checkout would leave build/ and
    an egg-info behind, and an in-place _fanout .so must not ride along."""
    tree = dest / "tidings-src"
    tree.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src",
        tree / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"),
    )
    return tree


def test_the_core_installs_and_runs_without_the_app_or_push_dependencies(
    tmp_path: Path, redis_url: str
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    tree = _copy_source(tmp_path)
    # The test's own pip installs into the venv (pip --python): no pip to bootstrap.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(tree)],
        check=True,
        timeout=240,
    )
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        "TIDINGS_PUSH_KEYS": KEYS.spec(),
        "REDIS_URL": redis_url,
        "HOME": str(tmp_path),
    }
    project = random.randint(3 * 10**9, 4 * 10**9)
    commands = [["token", "--user", "7", "--project", "42"], ["publish", str(project), "5"]]
    probe = subprocess.run(
        [str(python), "-c", PROBE, json.dumps(HEAVY), json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    lines = probe.stdout.strip().splitlines()
    token, report = lines[0], json.loads(lines[-1])
    assert report == {"codes": [0, 0], "heavy": []}
    claims = verify_push_token(KEYS, token)
    assert (claims.user, claims.projects) == (7, frozenset({42}))
    assert f"published: project {project} version 5" in probe.stdout

    def tidings(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "tidings"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    stale = tidings("publish", str(project), "4")
    assert stale.returncode == 3, stale.stderr
    assert f"refused as stale: project {project} is already at version 5" in stale.stdout
    for command, extra in (("push", "push"), ("app", "app"), ("demo", "demo"), ("flags", "app")):
        refused = tidings(command, *(["show"] if command == "flags" else []))
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        message = refused.stderr.strip()
        assert "\n" not in message and f"pip install 'tidings[{extra}]'" in message, message
    client = redis.Redis.from_url(redis_url)
    client.delete(version_key(project))
    client.close()

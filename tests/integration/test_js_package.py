"""The JS client as an app gets it: ``npm pack`` of its folder
(src/tidings/app/static/js/tidings-client/), the tarball installed into a scratch
project under tmp, and the package imported by its name against the real stack.

- Its type declarations, found through its ``exports`` map, check an app's use
  of it under ``tsc --strict`` (js_package/types_check.ts), and refuse misuse.
- Without socket.io-client (an optional peer, so not installed with it), the
  Socket.IO transport's ``start()`` fails with an error saying what to install.
- With it, from Node: the client imports socket.io-client itself and a change
  reaches it by poke (js_package/node_check.mjs, run inside the scratch project).
- From Chromium through an import map (js_package/browser_check.mjs): a page
  follows the project over WebSocket and over Socket.IO, and a change reaches
  both by poke.

npm installs offline from its cache when it can (``--prefer-offline``): the
repository's own ``npm ci`` has put socket.io-client there.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_python_client import POKE_LATENCY
from tests.support import unavailable
from tidings.testing.stack import Stack

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "tidings" / "app" / "static" / "js" / "tidings-client"
HERE = Path(__file__).with_name("js_package")
CHROMIUM = Path(os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium"))
#: Seconds for one npm command (from the cache: about one); one check script.
NPM_TIMEOUT = 120.0
CHECK_TIMEOUT = 60.0
NPM_FLAGS = ["--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]


@dataclass(frozen=True)
class Scratch:
    root: Path
    tarball: Path


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed", " (CI must run the JS package tests)")
    return found


def npm(scratch: Path, *args: str) -> str:
    done = subprocess.run(
        [tool("npm"), *args],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
    )
    assert done.returncode == 0, f"npm {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    """A project that has installed the packed tarball (and nothing else yet)."""
    root = tmp_path_factory.mktemp("npm-scratch")
    packed = json.loads(npm(PACKAGE, "pack", "--json", "--pack-destination", str(root)))
    tarball = root / packed[0]["filename"]
    (root / "package.json").write_text(
        json.dumps({"name": "scratch", "private": True, "type": "module"})
    )
    npm(root, "install", *NPM_FLAGS, str(tarball))
    for name in ("node_check.mjs", "types_check.ts", "tsconfig.json"):
        shutil.copyfile(HERE / name, root / name)
    yield Scratch(root, tarball)


def install_socket_io(scratch: Scratch) -> None:
    """Add the optional peer, at the version the repository installed (npm's cache holds it)."""
    if (scratch.root / "node_modules" / "socket.io-client").exists():
        return
    manifest = ROOT / "node_modules" / "socket.io-client" / "package.json"
    if not manifest.exists():
        pytest.fail("socket.io-client is not in node_modules: run npm ci")
    version = json.loads(manifest.read_text())["version"]
    npm(scratch.root, "install", *NPM_FLAGS, f"socket.io-client@{version}")


def require_chromium() -> None:
    if not CHROMIUM.exists() or not (ROOT / "node_modules" / "playwright-core").is_dir():
        unavailable(
            f"Chromium at {CHROMIUM} and playwright-core are needed",
            " (CI must run the JS package tests)",
        )


async def run_check(cwd: Path, *args: str) -> dict[str, object]:
    """Run one check script; its verdict (last stdout line), failing the test unless ok."""
    proc = await asyncio.create_subprocess_exec(
        tool("node"),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError:
        raise AssertionError(f"{args[0]} ran over {CHECK_TIMEOUT} s") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode(errors="replace").strip().splitlines()
    verdict: dict[str, object] = json.loads(lines[-1]) if lines else {}
    assert verdict.get("ok") and proc.returncode == 0, (
        f"{args[0]}: exit {proc.returncode}, {verdict or lines}\n"
        f"stderr:\n{err.decode(errors='replace')[-3000:]}"
    )
    return verdict


def config(stack: Stack, project: int) -> str:
    return json.dumps(
        {
            "appUrl": stack.app_url,
            "token": stack.admin_token,
            "project": project,
            "pokeBound": POKE_LATENCY,
        }
    )


def test_the_tarball_holds_the_module_its_types_and_readme_and_no_dependency(
    scratch: Scratch,
) -> None:
    with tarfile.open(scratch.tarball) as tar:
        names = {name.removeprefix("package/") for name in tar.getnames()}
    assert names == {
        "package.json",
        "README.md",
        "tidings-client.js",
        "tidings-client.d.ts",
        "sync-controller.js",
        "sync-controller.d.ts",
    }
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert "dependencies" not in manifest
    assert manifest["peerDependenciesMeta"]["socket.io-client"]["optional"] is True
    installed = scratch.root / "node_modules"
    assert (installed / "tidings-client" / "tidings-client.d.ts").exists()
    # An optional peer is not installed with the package.
    assert not (installed / "socket.io-client").exists()


def test_the_python_package_ships_the_same_files_so_an_installed_app_serves_them() -> None:
    """The folder is inside the Python package: its package-data globs must cover every
    file the npm package holds (a pip-installed app serves them at /js/tidings-client/)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["tidings"]
    base = ROOT / "src" / "tidings"
    shipped = {path for pattern in globs for path in base.glob(pattern) if path.is_file()}
    files = json.loads((PACKAGE / "package.json").read_text())["files"]
    missing = [name for name in ["package.json", *files] if PACKAGE / name not in shipped]
    assert not missing, f"not in the Python package's data: {missing}"


def test_the_type_declarations_check_an_apps_use_strictly(scratch: Scratch) -> None:
    tsc = ROOT / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.exists():
        pytest.fail("typescript is not in node_modules: run npm ci")
    done = subprocess.run(
        [tool("node"), str(tsc), "-p", "tsconfig.json"],
        cwd=scratch.root,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
    )
    assert done.returncode == 0, f"tsc: {done.returncode}\n{done.stdout}\n{done.stderr}"


async def test_from_node_socketio_needs_the_optional_peer_then_a_poke_arrives(
    stack: Stack, scratch: Scratch
) -> None:
    project, _ = await stack.new_project("npm package, node")
    missing = await run_check(scratch.root, "node_check.mjs", "missing", config(stack, project))
    assert "npm install socket.io-client" in str(missing["error"]), missing

    install_socket_io(scratch)
    result = await run_check(scratch.root, "node_check.mjs", "poke", config(stack, project))
    assert result["via"] == "poke", result


async def test_from_chromium_through_an_import_map_a_poke_arrives_over_ws_and_socketio(
    stack: Stack, scratch: Scratch
) -> None:
    require_chromium()
    install_socket_io(scratch)
    project, _ = await stack.new_project("npm package, chromium")
    result = await run_check(
        ROOT,
        str(HERE / "browser_check.mjs"),
        str(scratch.root),
        config(stack, project),
    )
    results = result["results"]
    assert isinstance(results, dict) and set(results) == {"ws", "socketio"}, result

"""The web app in a real browser: Debian's Chromium driven by playwright-core (Node).

One ``tidings demo`` process (app + push server, sample data, short poll intervals) serves
every scenario; each scenario is a Node script in this directory that exits non-zero with
its reason (and saves failure screenshots under ``test-artifacts/``). Without Chromium,
Node or playwright-core the tests skip, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import unavailable
from tidings.testing.processes import free_port_pair, tidings_argv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = Path(os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMAGES = ROOT / "docs" / "images"

#: The poll cadence the demo advises (seconds): while push is live, and while it is not.
#: Short, so that "within one poll interval" waits stay short.
#: The board asks /api/me every second, so a project one is added to reaches the picker fast.
POLL_ENV = {
    "TIDINGS_POLL_INTERVAL_PUSH": "3",
    "TIDINGS_POLL_INTERVAL": "1",
    "TIDINGS_PROJECTS_REFRESH": "1",
}
#: The scenarios sign the same few accounts in, from one address, about 40 times in
#: 3-4 minutes: past the default 20 successful sign-ins per account per 5 minutes
#: (docs/OPERATIONS.md, "Sign-in limits"; tests/app/test_ratelimit.py tests them).
SIGNIN_ENV = {"TIDINGS_SIGNIN_LIMITS": "account_successes=1000,address_successes=1000"}
#: Seconds for the demo to seed its data and answer; a scenario to finish; a process to exit.
STARTUP_TIMEOUT = 60.0
SCENARIO_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0


def require_browser() -> None:
    missing = [
        what
        for what, present in (
            (f"Chromium at {CHROMIUM}", CHROMIUM.exists()),
            ("node", shutil.which("node") is not None),
            ("playwright-core in node_modules", (ROOT / "node_modules/playwright-core").is_dir()),
        )
        if not present
    ]
    if not missing:
        return
    unavailable("browser tests need " + ", ".join(missing), " (CI must run the browser tests)")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def stop(process: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Ask politely (``first``), then kill the whole process group; never leave it running."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=EXIT_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=EXIT_TIMEOUT)


@dataclass(frozen=True)
class Demo:
    url: str
    push_url: str
    pid: int
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require_browser()
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port_pair()
    log = tmp / "demo.log"
    command = tidings_argv(
        "demo", "--port", str(port), "--db", str(tmp / "demo.sqlite3"), "--fresh"
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **POLL_ENV, **SIGNIN_ENV, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Demo(f"http://localhost:{port}", f"http://localhost:{port + 1}", process.pid, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (
            http_status(f"{running.url}/healthz") != 200
            or http_status(f"{running.push_url}/metrics") != 200
        ):
            if process.poll() is not None:
                pytest.fail(f"tidings demo exited with {process.returncode}:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"tidings demo not ready in {STARTUP_TIMEOUT} s:\n{running.log_tail()}")
            time.sleep(0.2)
        yield running
    finally:
        stop(process, signal.SIGINT)


def run_scenario(demo: Demo, script: str, *args: str) -> str:
    """Run one scenario script; fail the test with its output when it fails or overruns."""
    env = {
        **os.environ,
        **POLL_ENV,
        "TIDINGS_DEMO_PID": str(demo.pid),
        "TIDINGS_ARTIFACTS": str(ARTIFACTS),
        "TIDINGS_CHROMIUM": str(CHROMIUM),
    }
    process = subprocess.Popen(
        ["node", str(HERE / script), demo.url, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=SCENARIO_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM first: playwright-core closes the browser it launched on SIGTERM.
        stop(process, signal.SIGTERM)
        output = process.stdout.read() if process.stdout else b""
        pytest.fail(
            f"{script} ran over {SCENARIO_TIMEOUT} s:\n{output.decode(errors='replace')}\n"
            f"--- demo log ---\n{demo.log_tail()}"
        )
    finally:
        stop(process, signal.SIGTERM)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        pytest.fail(f"{script} failed:\n{text}\n--- demo log ---\n{demo.log_tail()}")
    return text


def publish_screenshot(name: str, target: str) -> None:
    """Copy a screenshot into docs/images when asked (TIDINGS_UPDATE_DOCS_IMAGES=1)."""
    if os.environ.get("TIDINGS_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, DOCS_IMAGES / target)


def test_two_people_see_each_others_changes_within_a_second_by_websocket_push(
    demo: Demo,
) -> None:
    run_scenario(demo, "live_board.mjs")
    assert (ARTIFACTS / "board.png").stat().st_size > 10_000
    publish_screenshot("board.png", "board.png")


def test_sse_push_delivers_changes_within_a_second(demo: Demo) -> None:
    run_scenario(demo, "transports.mjs", "sse")


def test_socketio_push_delivers_changes_within_a_second(demo: Demo) -> None:
    # A 404 here means /socket.io/ came unmounted: a regression, so the test fails on it.
    status = http_status(f"{demo.push_url}/socket.io/?EIO=4&transport=polling")
    assert status != 404, "the push server does not serve /socket.io/"
    run_scenario(demo, "transports.mjs", "socketio")


def test_viewer_gets_a_live_read_only_board_and_no_admin_page(demo: Demo) -> None:
    run_scenario(demo, "viewer.mjs")


def test_kill_switch_turns_both_pages_to_polling_and_back_to_live(demo: Demo) -> None:
    run_scenario(demo, "kill_switch.mjs")
    assert (ARTIFACTS / "admin.png").stat().st_size > 10_000
    publish_screenshot("admin.png", "admin.png")


def test_pages_poll_while_the_push_server_is_down_and_go_live_when_it_is_back(
    demo: Demo,
) -> None:
    run_scenario(demo, "push_outage.mjs")


def test_the_content_security_policy_refuses_nothing_the_pages_use(demo: Demo) -> None:
    run_scenario(demo, "csp.mjs")


def test_a_conflicting_save_shows_both_values_and_saves_the_choice(demo: Demo) -> None:
    run_scenario(demo, "story_editing.mjs", "conflict")
    assert (ARTIFACTS / "conflict.png").stat().st_size > 10_000
    publish_screenshot("conflict.png", "conflict.png")


def test_unsaved_story_edits_are_not_dropped_without_asking(demo: Demo) -> None:
    run_scenario(demo, "story_editing.mjs", "discard")


def test_refused_saves_say_why_in_words_and_save_works_again(demo: Demo) -> None:
    run_scenario(demo, "story_editing.mjs", "refusals")


def test_comments_and_tasks_are_edited_moved_and_deleted_live_on_another_page(
    demo: Demo,
) -> None:
    run_scenario(demo, "story_items.mjs")


def test_owners_create_rename_and_manage_members_and_others_pickers_follow_live(
    demo: Demo,
) -> None:
    run_scenario(demo, "project_admin.mjs")


def test_accept_puts_the_story_last_in_done(demo: Demo) -> None:
    run_scenario(demo, "board_states.mjs", "accept")


def test_an_address_naming_no_project_of_the_users_says_so(demo: Demo) -> None:
    run_scenario(demo, "board_states.mjs", "not_found")


def test_the_indicator_says_connecting_not_unavailable_while_push_comes_up(demo: Demo) -> None:
    run_scenario(demo, "board_states.mjs", "indicator")


def test_a_long_board_patches_one_card_and_renders_columns_lazily_yet_fully_reachable(
    demo: Demo,
) -> None:
    run_scenario(demo, "board_scale.mjs")


def test_board_panel_and_admin_page_pass_axe_and_the_keyboard_flow(demo: Demo) -> None:
    run_scenario(demo, "accessibility.mjs")


def test_in_a_dark_colour_scheme_board_panel_help_and_admin_page_pass_axe(demo: Demo) -> None:
    run_scenario(demo, "accessibility.mjs", "dark")


def test_stories_are_created_reordered_moved_opened_and_saved_without_a_mouse(
    demo: Demo,
) -> None:
    run_scenario(demo, "keyboard.mjs")


def test_on_a_phone_nothing_overflows_and_a_story_is_edited_by_touch(demo: Demo) -> None:
    run_scenario(demo, "phone.mjs")
    for name in ("phone.png", "phone-dark.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
        publish_screenshot(name, name)


def test_the_admin_page_charts_windowed_rates_and_quantiles_and_follows_flags_set_elsewhere(
    demo: Demo,
) -> None:
    run_scenario(demo, "admin_page.mjs")


def test_story_history_and_activity_feed_read_the_event_log_live(demo: Demo) -> None:
    run_scenario(demo, "history.mjs")
    assert (ARTIFACTS / "history-view.png").stat().st_size > 10_000
    publish_screenshot("history-view.png", "history.png")


def test_search_and_filters_combine_survive_a_reload_and_follow_live_changes(demo: Demo) -> None:
    run_scenario(demo, "filters.mjs")


def test_iterations_and_velocity_show_on_the_board_and_follow_an_accept_live(demo: Demo) -> None:
    run_scenario(demo, "iterations.mjs")

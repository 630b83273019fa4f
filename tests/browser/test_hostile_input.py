"""The browser never builds HTML from data: no HTML parser is fed by the app's scripts,
and a hostile event that reaches the board in Chromium shows as text and runs nothing."""

from __future__ import annotations

import re

from .test_browser import ROOT, Demo, demo, run_scenario

__all__ = ["demo"]  # the module-scoped demo process fixture, shared with test_browser.py

STATIC_JS = ROOT / "src" / "tidings" / "app" / "static" / "js"
#: Every way a script can hand a string to the HTML parser.
HTML_SINKS = re.compile(
    r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment"
    r"|parseFromString|srcdoc|setHTMLUnsafe)\b"
)


def test_no_script_of_the_app_feeds_the_html_parser() -> None:
    scripts = sorted(STATIC_JS.rglob("*.js"))
    assert scripts
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in scripts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if HTML_SINKS.search(line)
    ]
    assert found == []


def test_a_hostile_event_shows_as_text_and_runs_nothing_in_chromium(demo: Demo) -> None:
    run_scenario(demo, "hostile_event.mjs")

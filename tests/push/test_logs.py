"""Log lines an outsider can cause at will are throttled: a flood is one line per interval."""

from __future__ import annotations

import logging

import pytest

from tidings.push import logs


def test_a_flood_of_a_throttled_event_writes_one_line_then_says_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "_last_written", {})
    monkeypatch.setattr(logs, "_suppressed", {})
    log = logging.getLogger("tidings.push.test")
    with caplog.at_level(logging.WARNING, "tidings.push.test"):
        for i in range(1000):
            logs.emit(log, logging.WARNING, "broker_invalid", n=i)
            logs.emit(log, logging.WARNING, "push_state", n=i)
        assert [r.getMessage() for r in caplog.records if "broker_invalid" in r.getMessage()] == [
            "event=broker_invalid n=0"
        ]
        assert sum("push_state" in r.getMessage() for r in caplog.records) == 1000
        # The interval passed: the next line is written, with the count left out.
        logs._last_written["broker_invalid"] -= logs.THROTTLED["broker_invalid"]
        logs.emit(log, logging.WARNING, "broker_invalid", n=1000)
    assert caplog.records[-1].getMessage() == "event=broker_invalid n=1000 suppressed=999"

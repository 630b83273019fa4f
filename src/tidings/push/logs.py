"""Structured log lines for the push server: ``event=name key=value ...``.

One format, greppable and parseable by log shippers; values with spaces or
quotes are JSON-quoted. Configuration (level, handler) stays with the caller.
Events that an outsider can cause at will are throttled (``THROTTLED``).
"""

from __future__ import annotations

import json
import logging
import time

#: Events that whoever can publish on the broker can cause as often as they like,
#: and the least seconds between two lines of each: a flood of garbage costs a
#: counter increment per message, and the log at most one line per interval, which
#: says how many lines of that event were left out since the last one
#: (``suppressed=N``). The counter (``/metrics``) still counts every one.
THROTTLED: dict[str, float] = {"broker_invalid": 10.0}

#: When each throttled event was last written, and how many were left out since.
_last_written: dict[str, float] = {}
_suppressed: dict[str, int] = {}


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text)
    return text


def kv(event: str, **fields: object) -> str:
    return " ".join([f"event={event}", *(f"{k}={_value(v)}" for k, v in fields.items())])


def emit(logger: logging.Logger, level: int, event: str, **fields: object) -> None:
    if not logger.isEnabledFor(level):
        return
    interval = THROTTLED.get(event)
    if interval is not None:
        now = time.monotonic()
        last = _last_written.get(event)
        if last is not None and now - last < interval:
            _suppressed[event] = _suppressed.get(event, 0) + 1
            return
        _last_written[event] = now
        left_out = _suppressed.pop(event, 0)
        if left_out:
            fields["suppressed"] = left_out
    logger.log(level, "%s", kv(event, **fields))

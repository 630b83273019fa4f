"""Structured log lines for the push server: ``event=name key=value ...``.

One format, greppable and parseable by log shippers; values with spaces or
quotes are JSON-quoted. Configuration (level, handler) stays with the caller.
"""

from __future__ import annotations

import json
import logging


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
    if logger.isEnabledFor(level):
        logger.log(level, "%s", kv(event, **fields))

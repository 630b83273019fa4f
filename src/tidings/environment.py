"""Reading settings from the environment: one rule for every on/off variable.

The app and the push server both build their settings from ``TIDINGS_*``
variables; a boolean read two ways would put them in different modes (one
sharded, the other not, and their pokes never meet), so both read it here.
"""

from __future__ import annotations

from collections.abc import Mapping

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); unset or empty gives
    ``default``. Anything else raises ``ValueError`` naming the variable: a typo
    must not silently pick a mode."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected one of 1/true/yes/on or 0/false/no/off")

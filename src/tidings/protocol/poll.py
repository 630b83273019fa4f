"""The poll answer's wire format (docs/PROTOCOL.md 1.2): its body, its version
headers and the conditional-poll tag test.

Shared by the app, which serves polls, and the simulator, which answers them with
the same shapes; no I/O and no web framework here.
"""

from __future__ import annotations

from typing import Any

from tidings.protocol.advice import ADVICE_HEADER, VERSION_HEADER, Advice

#: Events per poll page when the request gives no ``limit``.
DEFAULT_LIMIT = 100


def version_headers(version: int, advice: Advice | None = None) -> dict[str, str]:
    """``ETag`` and the version header, plus the advice header when given."""
    headers = {"ETag": f'"{version}"', VERSION_HEADER: str(version)}
    if advice is not None:
        headers[ADVICE_HEADER] = advice.header()
    return headers


def answer_body(project_id: int, version: int, since: int, advice: Advice) -> dict[str, Any]:
    """A poll answer with no events yet; the caller adds them."""
    return {
        "project": project_id,
        "version": version,
        "since": since,
        "events": [],
        "has_more": False,
        "reload": None,
        "advice": advice.to_json(),
    }


def holds_version(if_none_match: str | None, version: int) -> bool:
    """Whether ``If-None-Match`` names the current version (weak tags allowed)."""
    if not if_none_match:
        return False
    tag = f'"{version}"'
    return any(part.strip().removeprefix("W/") == tag for part in if_none_match.split(","))

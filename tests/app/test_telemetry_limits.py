"""One user cannot move the "push silently broken" signal alone: the missed pokes a
user may add are capped, and reports are rate-limited per user."""

from __future__ import annotations

import re

import httpx

from tests.app.conftest import Stack, StackFactory
from tidings.app.settings import AppSettings


async def counter(http: httpx.AsyncClient, name: str) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, name
    return float(found.group(1))


def report(missed: int) -> dict[str, object]:
    return {"samples": [], "missed_pokes": missed, "polls": 1}


async def test_one_user_adds_at_most_its_budget_of_missed_pokes(stack: Stack) -> None:
    budget = stack.settings.telemetry_limits.missed_pokes
    _u, mallory = await stack.user("mallory@x.io")
    _v, ada = await stack.user("ada@x.io")
    async with stack.client(mallory) as http:
        for _ in range(3):
            assert (await http.post("/api/telemetry", json=report(1_000_000))).status_code == 204
        assert await counter(http, "tidings_client_missed_pokes_total") == budget
        ignored = await counter(http, "tidings_client_missed_pokes_ignored_total")
        assert ignored == 3_000_000 - budget
    # Another user's misses still count: the budget is per user.
    async with stack.client(ada) as http:
        assert (await http.post("/api/telemetry", json=report(2))).status_code == 204
        assert await counter(http, "tidings_client_missed_pokes_total") == budget + 2


async def test_reports_are_rate_limited_per_user(stack: Stack) -> None:
    per_window = stack.settings.telemetry_limits.reports
    _u, mallory = await stack.user("mallory@x.io")
    _v, ada = await stack.user("ada@x.io")
    async with stack.client(mallory) as http:
        for _ in range(per_window):
            assert (await http.post("/api/telemetry", json=report(0))).status_code == 204
        refused = await http.post("/api/telemetry", json=report(0))
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        polls = await counter(http, "tidings_client_polls_total")
    assert polls == per_window  # the refused report added nothing
    async with stack.client(ada) as http:
        assert (await http.post("/api/telemetry", json=report(0))).status_code == 204


async def test_limits_off_where_one_user_stands_for_many_clients(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    assert AppSettings.from_env({"TIDINGS_TELEMETRY_LIMITS": "0"}).limit_telemetry is False
    assert AppSettings.from_env({}).limit_telemetry is True
    stack = await make_stack(sqlite_url, limit_telemetry=False)
    _u, crowd = await stack.user("crowd@x.io")
    async with stack.client(crowd) as http:
        for _ in range(stack.settings.telemetry_limits.reports + 1):
            assert (await http.post("/api/telemetry", json=report(1000))).status_code == 204
        missed = await counter(http, "tidings_client_missed_pokes_total")
    assert missed == 1000 * (stack.settings.telemetry_limits.reports + 1)

"""Poll collapsing: a herd poked at once costs one event read per distinct
(project, since), whether its polls overlap or are spread by the clients' poke
jitter; ``poll_collapsing=False`` (TIDINGS_POLL_COLLAPSING=0) reads for every poll."""

from __future__ import annotations

from tests.app.conftest import Stack, StackFactory


async def _project(stack: Stack) -> tuple[int, str]:
    _user, token = await stack.user("ada@x.io")
    async with stack.client(token) as http:
        pid = (await http.post("/api/projects", json={"name": "Herd"})).json()["project"]
        for title in ("one", "two"):
            r = await http.post(
                f"/api/projects/{pid}/commands",
                json={"command": {"type": "create_story", "title": title}},
            )
            assert r.status_code == 200
    return pid, token


def _reads(stack: Stack) -> float:
    return float(stack.services.metrics.store_reads.labels("events")._value.get())


async def test_spread_out_polls_of_one_since_cost_one_read_until_the_next_commit(
    stack: Stack,
) -> None:
    pid, token = await _project(stack)  # versions 1..3
    async with stack.client(token) as http:
        before = _reads(stack)
        for _ in range(10):  # one after another: nothing for the single-flight to merge
            r = await http.get(f"/api/projects/{pid}/events?since=1")
            assert [e["version"] for e in r.json()["events"]] == [2, 3]
        assert _reads(stack) - before == 1
        await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "create_story", "title": "three"}},
        )
        r = await http.get(f"/api/projects/{pid}/events?since=1")
        # The kept page is for version 3: the commit makes it stale, so the store is read.
        assert [e["version"] for e in r.json()["events"]] == [2, 3, 4]
        assert _reads(stack) - before == 2


async def test_collapsing_off_reads_the_store_for_every_poll(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack = await make_stack(sqlite_url, poll_collapsing=False)
    pid, token = await _project(stack)
    async with stack.client(token) as http:
        before = _reads(stack)
        for _ in range(5):
            r = await http.get(f"/api/projects/{pid}/events?since=1")
            assert [e["version"] for e in r.json()["events"]] == [2, 3]
    assert _reads(stack) - before == 5

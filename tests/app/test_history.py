"""GET /api/projects/{id}/history: the feed and one story's changes, newest first,
paged by ``before``, honest about pruned history, bounded per request."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.app.conftest import Stack, StackFactory
from tests.app.test_api import make_project
from tidings.app.history import page_of, story_of
from tidings.store.events import HISTORY_SCAN


async def command(http: httpx.AsyncClient, pid: int, cmd: dict[str, Any]) -> dict[str, Any]:
    r = await http.post(f"/api/projects/{pid}/commands", json={"command": cmd})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def two_stories(stack: Stack) -> dict[str, Any]:
    """make_project's project (v1-4, story "First" at v4), then a second story and
    changes to both: v5 create Second, v6 update First, v7 comment on Second, v8 move First."""
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["owner"]) as http:
        first = (await http.get(f"/api/projects/{pid}")).json()["stories"][0]["id"]
        created = await command(http, pid, {"type": "create_story", "title": "Second"})
        second = created["created_id"]
        await command(http, pid, {"type": "update_story", "story_id": first, "estimate": 3})
        await command(http, pid, {"type": "add_comment", "story_id": second, "text": "hi"})
        await command(http, pid, {"type": "move_story", "story_id": first, "state": "started"})
    return {**p, "first": first, "second": second}


async def test_feed_is_newest_first_and_pages_by_before(stack: Stack) -> None:
    p = await two_stories(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["viewer"]) as http:
        r = await http.get(f"/api/projects/{pid}/history", params={"limit": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [e["version"] for e in body["events"]] == [8, 7, 6]
        assert body["version"] == 8 and body["pruned_through"] == 0 and body["story"] is None
        assert body["next_before"] == 6
        r = await http.get(f"/api/projects/{pid}/history", params={"before": 6, "limit": 10})
        assert [e["version"] for e in r.json()["events"]] == [5, 4, 3, 2, 1]
        assert r.json()["next_before"] is None
        assert r.json()["events"][-1]["type"] == "project_created"


async def test_a_story_s_history_is_only_its_events(stack: Stack) -> None:
    p = await two_stories(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["member"]) as http:
        r = await http.get(f"/api/projects/{pid}/history", params={"story": p["first"]})
        body = r.json()
        types = [e["type"] for e in body["events"]]
        assert types == ["story_moved", "story_updated", "story_created"]
        assert body["story"] == p["first"] and body["next_before"] is None
        r = await http.get(
            f"/api/projects/{pid}/history", params={"story": p["second"], "limit": 1}
        )
        assert [e["version"] for e in r.json()["events"]] == [7]
        assert r.json()["next_before"] == 7
        r = await http.get(
            f"/api/projects/{pid}/history", params={"story": p["second"], "before": 7}
        )
        assert [e["version"] for e in r.json()["events"]] == [5]


async def test_pruned_history_says_where_it_ends(stack: Stack) -> None:
    p = await two_stories(stack)
    pid = p["pid"]
    await stack.services.store.prune(pid, keep=3)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.get(f"/api/projects/{pid}/history", params={"story": p["first"]})
        body = r.json()
        assert body["pruned_through"] == 5
        assert [e["version"] for e in body["events"]] == [8, 6]
        assert body["next_before"] is None
        r = await http.get(f"/api/projects/{pid}/history", params={"before": 5})
        assert r.json()["events"] == [] and r.json()["next_before"] is None


async def test_history_is_for_members_only(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["outsider"]) as http:
        assert (await http.get(f"/api/projects/{pid}/history")).status_code == 404
        assert (await http.get("/api/projects/999999/history")).status_code == 404
    async with stack.client() as http:
        assert (await http.get(f"/api/projects/{pid}/history")).status_code == 401


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "before=0", "before=abc", "story=0", "story=-1", "story=x"]
)
async def test_bad_history_parameters_are_400(stack: Stack, query: str) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.get(f"/api/projects/{p['pid']}/history?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request"


async def test_history_on_postgres_too(make_stack: StackFactory, postgres_url: str) -> None:
    stack = await make_stack(postgres_url)
    p = await two_stories(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.get(f"/api/projects/{p['pid']}/history", params={"story": p["second"]})
    assert [e["version"] for e in r.json()["events"]] == [7, 5]


def _body(version: int, data: dict[str, Any]) -> str:
    event = {"version": version, "type": "x", "data": data, "actor": 1, "ts": 0}
    return orjson.dumps(event).decode()


def test_a_scan_without_a_match_still_says_where_to_go_on() -> None:
    bodies = [_body(v, {"story_id": 2}) for v in range(HISTORY_SCAN + 10, 10, -1)]
    page = page_of(bodies, story=1, limit=50, scanned=HISTORY_SCAN, pruned_through=0)
    assert page.events == [] and page.next_before == 11
    page = page_of(bodies[:5], story=1, limit=50, scanned=HISTORY_SCAN, pruned_through=0)
    assert page.next_before is None


def test_story_of_reads_both_shapes() -> None:
    assert story_of({"data": {"story_id": 4}}) == 4
    assert story_of({"data": {"story": {"id": 5}}}) == 5
    assert story_of({"data": {"user_id": 3}}) is None

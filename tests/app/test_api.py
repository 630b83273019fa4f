"""The HTTP API contract: authz, the poll contract, commands, bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.app.conftest import PASSWORD, Stack, StackFactory
from tidings.app.settings import AppSettings
from tidings.protocol.advice import ADVICE_HEADER, VERSION_HEADER, Advice
from tidings.store.accounts import User


async def make_project(stack: Stack) -> dict[str, Any]:
    """A project with an owner, a member, a viewer and an outsider (API tokens)."""
    owner, owner_token = await stack.user("owner@x.io")
    member, member_token = await stack.user("member@x.io")
    viewer, viewer_token = await stack.user("viewer@x.io")
    _outsider, outsider_token = await stack.user("outsider@x.io")
    async with stack.client(owner_token) as http:
        pid = (await http.post("/api/projects", json={"name": "Web"})).json()["project"]
        for email, role in (("member@x.io", "member"), ("viewer@x.io", "viewer")):
            r = await http.post(
                f"/api/projects/{pid}/commands",
                json={"command": {"type": "add_member", "email": email, "role": role}},
            )
            assert r.status_code == 200, r.text
        r = await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "create_story", "title": "First"}},
        )
        assert r.status_code == 200
    return {
        "pid": pid,
        "tokens": {
            "owner": owner_token,
            "member": member_token,
            "viewer": viewer_token,
            "outsider": outsider_token,
            "anonymous": None,
        },
        "ids": {"owner": owner.id, "member": member.id, "viewer": viewer.id},
    }


# who -> (read status, write status, owner-only status)
MATRIX = {
    "owner": (200, 200, 200),
    "member": (200, 200, 403),
    "viewer": (200, 403, 403),
    "outsider": (404, 404, 404),
    "anonymous": (401, 401, 401),
}


@pytest.mark.parametrize("who", list(MATRIX))
async def test_authorization_matrix(stack: Stack, who: str) -> None:
    p = await make_project(stack)
    pid, token = p["pid"], p["tokens"][who]
    read, write, owner_only = MATRIX[who]
    async with stack.client(token) as http:
        assert (await http.get(f"/api/projects/{pid}")).status_code == read
        assert (await http.get(f"/api/projects/{pid}/events?since=0")).status_code == read
        multi = await http.get(f"/api/poll?p={pid}:0")
        if who == "anonymous":
            assert multi.status_code == 401
        elif read == 404:
            assert multi.json()["projects"][str(pid)] == {"error": "not_found"}
        else:
            assert multi.json()["projects"][str(pid)]["version"] == 4
        r = await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "add_comment", "story_id": 1, "text": "hi"}},
        )
        assert r.status_code == write, r.text
        r = await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "rename_project", "name": "Renamed"}},
        )
        assert r.status_code == owner_only, r.text
        assert ("error" in r.json()) == (owner_only != 200)


async def test_unknown_and_foreign_projects_look_the_same(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["outsider"]) as http:
        foreign = await http.get(f"/api/projects/{p['pid']}/events")
        missing = await http.get(f"/api/projects/{p['pid'] + 999}/events")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


async def test_poll_contract(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["member"]) as http:
        r = await http.get(f"/api/projects/{pid}/events", params={"since": 0, "limit": 2})
        body = r.json()
        assert [e["version"] for e in body["events"]] == [1, 2]
        assert body["has_more"] is True and body["version"] == 4 and body["reload"] is None
        assert r.headers["ETag"] == '"4"' and r.headers[VERSION_HEADER] == "4"
        assert Advice.parse_header(r.headers[ADVICE_HEADER]) == Advice.from_json(body["advice"])
        r = await http.get(f"/api/projects/{pid}/events", params={"since": 2})
        assert [e["version"] for e in r.json()["events"]] == [3, 4]
        assert r.json()["has_more"] is False
        # Up to date, conditional: 304 with the advice still in the headers.
        r = await http.get(
            f"/api/projects/{pid}/events", params={"since": 4}, headers={"If-None-Match": '"4"'}
        )
        assert r.status_code == 304 and r.content == b""
        assert ADVICE_HEADER in r.headers and r.headers["ETag"] == '"4"'
        r = await http.get(f"/api/projects/{pid}/events", params={"since": 4})
        assert r.status_code == 200 and r.json()["events"] == []
        # A client ahead of the server must reload.
        r = await http.get(f"/api/projects/{pid}/events", params={"since": 9})
        assert r.json()["reload"] == "ahead"


async def test_up_to_date_polls_do_not_read_the_store(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    reads = stack.services.metrics.store_reads
    async with stack.client(p["tokens"]["member"]) as http:
        await http.get(f"/api/projects/{pid}/events", params={"since": 4})  # warms caches
        before = {k: reads.labels(k)._value.get() for k in ("events", "version", "membership")}
        for _ in range(20):
            r = await http.get(f"/api/projects/{pid}/events", params={"since": 4})
            assert r.status_code == 200
        after = {k: reads.labels(k)._value.get() for k in ("events", "version", "membership")}
    assert after == before


async def test_pruned_history_asks_for_a_reload(stack: Stack) -> None:
    p = await make_project(stack)
    await stack.services.store.prune(p["pid"], keep=1)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.get(f"/api/projects/{p['pid']}/events", params={"since": 1})
    assert r.json()["reload"] == "pruned" and r.json()["events"] == []


async def test_multi_project_poll(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        other = (await http.post("/api/projects", json={"name": "Two"})).json()["project"]
        r = await http.get(f"/api/poll?p={p['pid']}:2&p={other}:1")
        body = r.json()
        assert body["projects"][str(p["pid"])]["version"] == 4
        assert [e["version"] for e in body["projects"][str(p["pid"])]["events"]] == [3, 4]
        assert body["projects"][str(other)]["events"] == []
        assert (await http.get("/api/poll?p=abc")).status_code == 400
        assert (await http.get("/api/poll")).status_code == 400
        many = "&".join(f"p={n}:0" for n in range(1, 60))
        assert (await http.get(f"/api/poll?{many}")).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "since=-1",
        "since=abc",
        "limit=0",
        "limit=501",
        "limit=-5",
        f"since={2**80}",
        "since=1.5",
        "since=%2B3",
        "since=%203",
        "since=3%20",
        "limit=%2B5",
        "since=%D9%A3",
    ],
)
async def test_bad_poll_parameters_are_400(stack: Stack, query: str) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.get(f"/api/projects/{p['pid']}/events?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request"


async def test_bad_bodies_get_clear_errors(stack: Stack) -> None:
    p = await make_project(stack)
    url = f"/api/projects/{p['pid']}/commands"
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
        r = await http.post(url, json={"command": {"type": "explode"}})
        assert r.status_code == 422 and r.json()["error"] == "validation"
        r = await http.post(url, json={"command": {"type": "create_story", "title": ""}})
        assert r.status_code == 422
        assert any("title" in f["loc"] for f in r.json()["fields"])
        # U+0000 cannot be stored in a PostgreSQL text column: refused up front.
        r = await http.post(url, json={"command": {"type": "rename_project", "name": "a\x00b"}})
        assert r.status_code == 422 and any("name" in f["loc"] for f in r.json()["fields"])
        r = await http.post("/api/projects", json={"name": "a\x00b"})
        assert r.status_code == 422, r.text
        r = await http.post(url, json={"command": {"type": "create_story", "title": "x" * 70_000}})
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        r = await http.post(
            url,
            json={
                "command": {
                    "type": "create_story",
                    "title": "\U0001d518\U0001d52b\U0001d526 \u2603 \u202e \x00",
                }
            },
        )
        assert r.status_code == 200
        r = await http.post(url, json={"command": {"type": "delete_story", "story_id": 777}})
        assert r.status_code == 404 and r.json()["field"] == "story_id"
        r = await http.post(
            url, json={"command": {"type": "create_story", "title": "x"}, "expected_version": 1}
        )
        assert r.status_code == 409 and r.json()["version"] == 5
        assert (await http.get(f"/api/projects/{p['pid']}")).json()["version"] == 5


async def test_idempotent_retry_over_http(stack: Stack) -> None:
    p = await make_project(stack)
    url = f"/api/projects/{p['pid']}/commands"
    body = {"command": {"type": "create_story", "title": "Once"}}
    headers = {"Idempotency-Key": "abc-123"}
    async with stack.client(p["tokens"]["member"]) as http:
        first = await http.post(url, json=body, headers=headers)
        second = await http.post(url, json=body, headers=headers)
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        other = await http.post(
            url, json={"command": {"type": "create_story", "title": "Two"}}, headers=headers
        )
        assert other.status_code == 422
        snap = (await http.get(f"/api/projects/{p['pid']}")).json()
    assert [s["title"] for s in snap["stories"]].count("Once") == 1


async def test_browser_session_cookie_and_csrf(stack: Stack) -> None:
    await stack.user("ada@x.io")
    async with stack.client() as http:
        r = await http.post("/api/session", json={"email": "ada@x.io", "password": "nope"})
        assert r.status_code == 401
        r = await http.post("/api/session", json={"email": "ADA@x.io", "password": PASSWORD})
        assert r.status_code == 200
        cookie = next(h for h in r.headers.get_list("set-cookie") if "tidings_session" in h)
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        csrf = r.json()["csrf_token"]
        assert (await http.get("/api/me")).status_code == 200
        r = await http.post("/api/projects", json={"name": "x"})
        assert r.status_code == 403  # no CSRF header
        r = await http.post("/api/projects", json={"name": "x"}, headers={"X-Tidings-CSRF": csrf})
        assert r.status_code == 201
        r = await http.delete("/api/session", headers={"X-Tidings-CSRF": csrf})
        assert r.status_code == 204
        assert (await http.get("/api/me")).status_code == 401


async def test_sign_in_is_rate_limited(stack: Stack) -> None:
    await stack.user("ada@x.io")
    async with stack.client() as http:
        for _ in range(10):
            r = await http.post("/api/session", json={"email": "ada@x.io", "password": "wrong"})
            assert r.status_code == 401
        r = await http.post("/api/session", json={"email": "ada@x.io", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


async def test_bearer_errors(stack: Stack) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://app"
    ) as http:
        r = await http.get("/api/me", headers={"Authorization": "Basic abc"})
        assert r.status_code == 401
        r = await http.get("/api/me", headers={"Authorization": "Bearer " + "x" * 5000})
        assert r.status_code == 401
        assert (await http.get("/api/nowhere")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 200


async def test_projects_list_and_me(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["viewer"]) as http:
        listed = (await http.get("/api/projects")).json()["projects"]
        me = (await http.get("/api/me")).json()
    assert listed == [{"id": p["pid"], "name": "Web", "role": "viewer", "version": 4}]
    assert me["projects"] == listed and me["user"]["email"] == "viewer@x.io"


async def test_member_removal_takes_effect_on_the_poll_path_at_once(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["member"]) as member:
        assert (await member.get(f"/api/projects/{pid}/events?since=4")).status_code == 200
        async with stack.client(p["tokens"]["owner"]) as owner:
            r = await owner.post(
                f"/api/projects/{pid}/commands",
                json={"command": {"type": "remove_member", "user_id": p["ids"]["member"]}},
            )
            assert r.status_code == 200
        assert (await member.get(f"/api/projects/{pid}/events?since=4")).status_code == 404
        assert (await member.get(f"/api/projects/{pid}/events?since=5")).status_code == 404


async def test_projects_on_postgres_too(make_stack: StackFactory, postgres_url: str) -> None:
    stack = await make_stack(postgres_url)
    p = await make_project(stack)
    async with stack.client(p["tokens"]["member"]) as http:
        r = await http.get(f"/api/projects/{p['pid']}/events?since=0")
    assert [e["version"] for e in r.json()["events"]] == [1, 2, 3, 4]


async def test_a_herd_of_identical_polls_costs_one_store_read(stack: Stack) -> None:
    import asyncio

    p = await make_project(stack)
    reads = stack.services.metrics.store_reads.labels("events")
    async with stack.client(p["tokens"]["member"]) as http:
        await http.get(f"/api/projects/{p['pid']}/events?since=4")  # caches warm, as in service
        before = reads._value.get()
        answers = await asyncio.gather(
            *(http.get(f"/api/projects/{p['pid']}/events?since=2") for _ in range(50))
        )
    assert {r.status_code for r in answers} == {200}
    assert all([e["version"] for e in r.json()["events"]] == [3, 4] for r in answers)
    assert reads._value.get() - before == 1


async def test_telemetry_reaches_the_metrics(stack: Stack) -> None:
    _u, token = await stack.user("ada@x.io")
    report = {
        "samples": [
            {"project": 1, "staleness_ms": 120, "via": "poke"},
            {"project": 1, "staleness_ms": 4000, "via": "poll"},
        ],
        "missed_pokes": 2,
        "polls": 7,
    }
    async with stack.client(token) as http:
        assert (await http.post("/api/telemetry", json=report)).status_code == 204
        bad = await http.post("/api/telemetry", json={**report, "polls": -1})
        assert bad.status_code == 400 and bad.json()["field"] == "polls"
        metrics = (await http.get("/metrics")).text
    assert "tidings_client_missed_pokes_total 2.0" in metrics
    assert 'tidings_client_staleness_seconds_count{via="poke"} 1.0' in metrics
    assert "tidings_client_polls_total 7.0" in metrics
    window = stack.services.metrics.snapshot()["staleness_window"]
    assert window["count"] == 2 and window["p99"] == 4.0
    assert window["by_via"]["poke"] == {"count": 1, "p50": 0.12, "p99": 0.12}


async def test_an_unreachable_database_is_503_with_retry_after(make_stack: StackFactory) -> None:
    # Nothing listens on port 1; migrations are skipped so the app starts.
    stack = await make_stack("postgresql://postgres@127.0.0.1:1/none", migrate=False)
    stack.services.auth._cache[("api", "t" * 43)] = (  # a credential cached before the outage
        User(1, "a@x.io", "A", False),
        float("inf"),
    )
    # Starlette re-raises after answering a 500-class handler; a server would only log it.
    transport = httpx.ASGITransport(app=stack.app, raise_app_exceptions=False)
    headers = {"Authorization": "Bearer " + "t" * 43}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://app", headers=headers
    ) as http:
        for path in ("/api/projects/1/events?since=0", "/api/projects/1"):
            r = await http.get(path)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "unavailable" and r.headers["Retry-After"] == "5"
        # A command too, on the commands' own connections (store/pgwrites.py).
        command = {"command": {"type": "create_story", "title": "t"}}
        r = await http.post("/api/projects/1/commands", json=command)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "unavailable" and r.headers["Retry-After"] == "5"


async def test_nul_and_astral_text_round_trip_on_both_stores(
    make_stack: StackFactory, db_url: str
) -> None:
    # PostgreSQL refuses NUL in text and jsonb: the store must keep it as a JSON escape.
    stack = await make_stack(db_url)
    p = await make_project(stack)
    title = "a\x00b \U0001f680 \u202e"
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.post(
            f"/api/projects/{p['pid']}/commands",
            json={"command": {"type": "create_story", "title": title}},
        )
        assert r.status_code == 200, r.text
        version = r.json()["version"]
        r = await http.get(f"/api/projects/{p['pid']}/events?since={version - 1}")
        assert r.json()["events"][0]["data"]["story"]["title"] == title
        snapshot = (await http.get(f"/api/projects/{p['pid']}")).json()
        assert [s["title"] for s in snapshot["stories"]][-1] == title


async def test_me_lists_projects_one_was_added_to_and_says_when_to_ask_again(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack = await make_stack(sqlite_url, projects_refresh=2.5)
    p = await make_project(stack)
    async with stack.client(p["tokens"]["member"]) as member:
        me = (await member.get("/api/me")).json()
        assert me["projects_refresh"] == 2.5
        assert [(x["id"], x["role"]) for x in me["projects"]] == [(p["pid"], "member")]
        async with stack.client(p["tokens"]["owner"]) as owner:
            other = (await owner.post("/api/projects", json={"name": "Later"})).json()["project"]
            r = await owner.post(
                f"/api/projects/{other}/commands",
                json={"command": {"type": "add_member", "email": "member@x.io"}},
            )
            assert r.status_code == 200, r.text
            r = await owner.post(
                f"/api/projects/{p['pid']}/commands",
                json={
                    "command": {"type": "set_role", "user_id": p["ids"]["member"], "role": "viewer"}
                },
            )
            assert r.status_code == 200, r.text
            assert r.json()["event"]["type"] == "member_added"
        me = (await member.get("/api/me")).json()
        roles = {x["id"]: (x["name"], x["role"]) for x in me["projects"]}
        assert roles == {p["pid"]: ("Web", "viewer"), other: ("Later", "member")}
        r = await member.post(
            f"/api/projects/{other}/commands",
            json={"command": {"type": "set_role", "user_id": p["ids"]["member"], "role": "owner"}},
        )
        assert r.status_code == 403, r.text


def test_projects_refresh_must_be_positive() -> None:
    with pytest.raises(ValueError, match="projects_refresh"):
        AppSettings(projects_refresh=0)

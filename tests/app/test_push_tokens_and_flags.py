"""Push tokens name exactly the user's projects; flags reach clients through polls."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.app.conftest import Stack, StackFactory
from tests.app.test_api import make_project
from tests.support import until
from tidings.protocol.errors import BadToken
from tidings.protocol.tokens import KeyRing, verify_push_token
from tidings.publish.advice import PushFlags, push_off_for_all, push_on, rollout_bucket

WAIT = 10.0  # seconds; a flag cache of well under one expires long before


async def test_push_token_names_only_the_users_projects(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["viewer"]) as http:
        r = await http.post("/api/push/token")
        assert r.status_code == 200
        body = r.json()
        claims = verify_push_token(stack.settings.push_keys, body["token"])
        assert claims.user == p["ids"]["viewer"]
        assert claims.projects == {p["pid"]} and body["projects"] == [p["pid"]]
        assert 590 <= claims.expires_at - time.time() <= 601
        r = await http.post("/api/push/token", json={"projects": [p["pid"], 9999]})
        assert r.json()["projects"] == [p["pid"]]
    async with stack.client(p["tokens"]["outsider"]) as http:
        r = await http.post("/api/push/token")
        assert r.json()["projects"] == []
    async with stack.client() as http:
        assert (await http.post("/api/push/token")).status_code == 401


async def test_push_token_expires_and_other_keys_do_not_verify(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        token = (await http.post("/api/push/token")).json()["token"]
    ring = stack.settings.push_keys
    verify_push_token(ring, token, now=time.time() + 500)
    with pytest.raises(BadToken, match="expired"):
        verify_push_token(ring, token, now=time.time() + 700)
    with pytest.raises(BadToken, match="unknown key"):
        verify_push_token(KeyRing.generate(), token)


async def test_rotated_keys_verify_old_and_new_tokens(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    old = KeyRing.parse("old:" + "a" * 40)
    stack = await make_stack(sqlite_url, push_keys=old)
    _u, token = await stack.user("ada@x.io")
    async with stack.client(token) as http:
        old_token = (await http.post("/api/push/token")).json()["token"]
    both = KeyRing.parse("new:" + "b" * 40 + ",old:" + "a" * 40)
    assert verify_push_token(both, old_token).user == _u.id


async def test_client_config(stack: Stack) -> None:
    _u, token = await stack.user("ada@x.io")
    async with stack.client(token) as http:
        body = (await http.get("/api/client-config")).json()
    assert body["push"]["enabled"] is True
    assert body["push"]["urls"] == {
        "ws": "ws://push.test/ws",
        "sse": "http://push.test/sse",
        "socketio": "http://push.test",
    }
    assert body["advice"] == {
        "push": True,
        "interval": 300.0,
        "fallback_interval": 5.0,
        "jitter": 0.2,
    }


async def test_kill_switch_reaches_the_poll_advice(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack = await make_stack(sqlite_url, flag_cache_ttl=0.2)
    p = await make_project(stack)
    _admin, admin_token = await stack.user("admin@x.io", admin=True)
    url = f"/api/projects/{p['pid']}/events?since=4"
    async with stack.client(p["tokens"]["member"]) as member, stack.client(admin_token) as root:
        assert (await member.get(url)).json()["advice"]["push"] is True
        assert (await member.put("/api/admin/flags", json={"enabled": False})).status_code == 403
        r = await root.put("/api/admin/flags", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert (await member.get(url)).json()["advice"]["push"] is False
        assert (await member.get("/api/client-config")).json()["push"]["enabled"] is False
        await root.put(
            "/api/admin/flags", json={"enabled": True, "projects": {str(p["pid"]): False}}
        )

        async def project_off_user_on() -> bool:
            # The project is off while the user is on: the poll advice is per project.
            off = (await member.get(url)).json()["advice"]["push"] is False
            config = (await member.get("/api/client-config")).json()
            return off and config["advice"]["push"] is True

        await until(project_off_user_on, WAIT, "the project's override in both answers")
        await root.put("/api/admin/flags", json={"projects": {str(p["pid"]): None}})
        assert (await member.get(url)).json()["advice"]["push"] is True
        r = await root.put("/api/admin/flags", json={"rollout_percent": 101})
        assert r.status_code == 422


async def test_a_flag_change_in_one_app_process_reaches_another(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    one = await make_stack(sqlite_url, flag_cache_ttl=0.3)
    two = await make_stack(sqlite_url, flag_cache_ttl=0.3)
    p = await make_project(one)
    url = f"/api/projects/{p['pid']}/events?since=4"
    async with two.client(p["tokens"]["member"]) as http:
        assert (await http.get(url)).json()["advice"]["push"] is True
        await one.services.flags.set("push.enabled", False)

        async def off() -> bool:
            return (await http.get(url)).json()["advice"]["push"] is False

        # The other process hears of it when its 0.3 s flag cache expires.
        await until(off, WAIT, "the other process to turn push off")


def test_push_is_off_for_all_only_when_no_user_and_no_project_can_have_it() -> None:
    assert push_off_for_all(PushFlags(enabled=False, projects={7: True}))
    assert push_off_for_all(PushFlags(rollout_percent=0))
    assert push_off_for_all(PushFlags(rollout_percent=0, projects={7: False}))
    assert not push_off_for_all(PushFlags(rollout_percent=0, projects={7: True}))
    assert not push_off_for_all(PushFlags(rollout_percent=1))
    # Consistent with push_on: off for all means off for every user and project.
    flags = PushFlags(rollout_percent=0, projects={7: False})
    assert not any(push_on(flags, user, 7) or push_on(flags, user) for user in range(1, 500))


def test_rollout_is_stable_and_roughly_proportional() -> None:
    flags = PushFlags(rollout_percent=30)
    chosen = [u for u in range(10_000) if push_on(flags, u)]
    assert 2_700 < len(chosen) < 3_300
    assert chosen == [u for u in range(10_000) if rollout_bucket(u) < 30]
    assert not push_on(PushFlags(enabled=False, projects={1: True}), 5, 1)
    assert push_on(PushFlags(rollout_percent=0, projects={1: True}), 5, 1)


async def test_admin_stats_show_the_app_and_push_servers_heard_on_the_control_channel(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    import redis.asyncio as redis

    from tidings.protocol.channels import STATS_CHANNEL
    from tidings.protocol.control import push_stats

    stack = await make_stack(sqlite_url, redis_url=redis_url)
    _admin, admin_token = await stack.user("admin@x.io", admin=True)
    _user, user_token = await stack.user("user@x.io")
    server = f"test-{time.time_ns()}"
    figures = {"state": "ok", "connections": {"ws": 3, "sse": 1}, "counters": {"pokes_sent": 9}}
    client = redis.Redis.from_url(redis_url)
    try:
        async with stack.client(admin_token) as http, stack.client(user_token) as user:
            assert (await user.get("/api/admin/stats")).status_code == 403
            for _ in range(50):  # the app's control subscription comes up asynchronously
                await client.publish(STATS_CHANNEL, push_stats(server, time.time(), figures))
                await asyncio.sleep(0.1)
                body = (await http.get("/api/admin/stats")).json()
                mine = [s for s in body["push_servers"] if s["id"] == server]
                if mine:
                    break
            assert mine and mine[0]["connections"] == {"ws": 3, "sse": 1}
            assert mine[0]["counters"] == {"pokes_sent": 9}
            assert body["app"]["counters"]["pokes_published"] >= 0
    finally:
        await client.aclose()


async def test_a_member_of_more_projects_than_a_token_names_is_told_to_ask_for_some(
    stack: Stack,
) -> None:
    from sqlalchemy import insert, select

    from tidings.protocol.tokens import MAX_PROJECTS_PER_TOKEN, MAX_TOKEN_BYTES
    from tidings.store import schema as t

    user, api = await stack.user("busy@x.io")
    count = MAX_PROJECTS_PER_TOKEN + 1
    async with stack.services.engines.writer.begin() as conn:
        rows = [
            {"name": f"p{i}", "version": 0, "pruned_through": 0, "snapshot": "{}", "created_at": 0}
            for i in range(count)
        ]
        await conn.execute(insert(t.projects), rows)
        ids = (await conn.execute(select(t.projects.c.id).where(t.projects.c.name != ""))).scalars()
        pids = sorted(int(i) for i in ids)
        members = [{"project_id": p, "user_id": user.id, "role": "member"} for p in pids]
        await conn.execute(insert(t.memberships), members)
    assert len(pids) == count
    async with stack.client(api) as http:
        r = await http.post("/api/push/token")
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["field"] == "projects" and '{"projects"' in body["detail"]
        assert body["projects"] == count
        assert (body["max_projects"], body["max_token_bytes"]) == (
            MAX_PROJECTS_PER_TOKEN,
            MAX_TOKEN_BYTES,
        )
        # A thousand ids fit in a token's count, not (with these long ids) in its bytes.
        r = await http.post("/api/push/token", json={"projects": pids[:MAX_PROJECTS_PER_TOKEN]})
        assert r.status_code == 422 and "bytes" in r.json()["detail"], r.text
        wanted = pids[-300:]
        r = await http.post("/api/push/token", json={"projects": wanted})
        assert r.status_code == 200, r.text
        assert r.json()["projects"] == wanted
    claims = verify_push_token(stack.settings.push_keys, r.json()["token"])
    assert claims.projects == set(wanted)

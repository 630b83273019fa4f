"""The Redis ACLs docs/OPERATIONS.md ("Trust model") advises, on real Redis: a push
server and an app publisher work with exactly those rights, and a push server's user
cannot write what only the app writes (version keys, kept revocations).

Each run creates its own users (random names) and deletes them after.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
import websockets

from tidings.broker.redis_publisher import RedisPublisher
from tidings.protocol.channels import REVOCATIONS_KEY, project_channel, version_key
from tidings.protocol.poke import Poke, encode_poke
from tidings.testing.processes import start_push_any_port, stop_async

from ..push.conftest import KEYS
from ..push.test_redis_integration import next_of, project_ids, recv_json, subscribe_msg

pytestmark = pytest.mark.redis

#: The rules of docs/OPERATIONS.md, "Trust model" (keep the two the same).
PUSH_RULES = (
    "resetkeys resetchannels -@all "
    "+subscribe +ssubscribe +unsubscribe +sunsubscribe +ping "
    "+get +mget +zrangebyscore +publish +spublish +client|list +client|setname "
    "%R~tidings:version:* %R~tidings:revocations "
    "&tidings:project:* &tidings:control &tidings:link:* &tidings:stats &tidings:probe:*"
)
APP_RULES = (
    "resetkeys resetchannels -@all "
    "+publish +spublish +subscribe +ssubscribe +unsubscribe +sunsubscribe +ping "
    "+evalsha +eval +script|load +get +set +mget "
    "+multi +exec +zadd +zremrangebyscore +zremrangebyrank +expire "
    "+client|list +client|setname "
    "~tidings:version:* ~tidings:revocations "
    "&tidings:project:* &tidings:control &tidings:stats &tidings:probe:*"
)


@pytest.fixture
async def users(redis_url: str) -> AsyncIterator[dict[str, str]]:
    admin = redis.Redis.from_url(redis_url)
    tag = secrets.token_hex(4)
    made: dict[str, str] = {}
    try:
        for role, rules in (("push", PUSH_RULES), ("app", APP_RULES)):
            name, password = f"tidings-test-{role}-{tag}", secrets.token_hex(16)
            # The rules as OPERATIONS.md spells them; redis-py's execute_command has no hints.
            await admin.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", name, "reset", "on", f">{password}", *rules.split()
            )
            host = redis_url.split("://", 1)[1]
            made[role] = f"redis://{name}:{password}@{host}"
        yield made
    finally:
        for role in ("push", "app"):
            await admin.acl_deluser(f"tidings-test-{role}-{tag}")
        await admin.aclose()


async def test_a_push_server_and_an_app_work_with_the_advised_acls(
    users: dict[str, str], redis_url: str
) -> None:
    p, q = project_ids(2)
    app = RedisPublisher.from_url(users["app"])
    admin = redis.Redis.from_url(redis_url)
    proc, port = await start_push_any_port(users["push"], KEYS.spec())
    try:
        # The app's side: version keys (the compare-and-set script), pokes, revocations.
        await app.set_version(q, 4)
        assert await app.get_versions([q]) == {q: 4}
        await app.record_revocation(
            b'{"type":"revoke","user":1,"project":1,"at":1}', time.time(), 60
        )
        await app.client_names()  # CLIENT LIST is allowed (it raises NOPERM otherwise)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(subscribe_msg({p: 0, q: 0}))
            await next_of(lambda: recv_json(ws), "subscribed")
            # Read with the push user's MGET: q's key is ahead of the client.
            got = await next_of(lambda: recv_json(ws), "poke", 15)
            assert (got["project"], got["version"]) == (q, 4)
            deadline = time.monotonic() + 15
            version = 0
            while True:  # until the subscription to p is live
                version += 1
                await app.publish(project_channel(p), encode_poke(Poke(p, version, 1.0)))
                try:
                    got = await next_of(lambda: recv_json(ws), "poke", 0.5)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "no poke through the push user"
            assert got["project"] == p
        # The push user may read the keys, never write them.
        pushed = redis.Redis.from_url(users["push"])
        try:
            assert await pushed.client_list()  # what tells a dead app from a silent one
            with pytest.raises(redis.ResponseError, match="no permissions"):
                await pushed.set(version_key(p), "9" * 30)
            with pytest.raises(redis.ResponseError, match="no permissions"):
                await pushed.zadd(REVOCATIONS_KEY, {b"x": 1.0})
            with pytest.raises(redis.ResponseError, match="no permissions"):
                await pushed.publish("tidings-other", b"x")
        finally:
            await pushed.aclose()
        assert proc.returncode is None
    finally:
        await stop_async(proc, 15)
        _, err = await proc.communicate()
        await admin.delete(version_key(p), version_key(q))
        await admin.aclose()
        await app.close()
    assert b"NOPERM" not in err and b"no permissions" not in err, err.decode(errors="replace")

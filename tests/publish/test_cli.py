"""``tidings token`` and ``tidings publish``: output, exit codes and errors."""

from __future__ import annotations

import random

import orjson
import pytest

from tests.broker.cluster import require_cluster
from tests.support import free_port
from tidings.broker.redis_sync import connect_sync
from tidings.cli import main, missing_role
from tidings.protocol.channels import version_key
from tidings.protocol.tokens import KeyRing, verify_push_token
from tidings.publish.cli import FAILED, PUBLISHED, STALE, USAGE

KEYS = KeyRing({"new": b"n" * 40, "old": b"o" * 40})


def test_token_is_signed_by_the_first_key_with_the_asked_claims(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDINGS_PUSH_KEYS", KEYS.spec())
    args = ["token", "--user", "12", "--project", "4", "--project", "3", "--ttl", "90", "--json"]
    assert main(args) == 0
    body = orjson.loads(capsys.readouterr().out)
    assert body["kid"] == "new" and body["projects"] == [3, 4]
    claims = verify_push_token(KEYS, body["token"])
    assert (claims.user, claims.projects) == (12, frozenset({3, 4}))
    assert claims.expires_at - claims.issued_at == 90 == body["expires_at"] - claims.issued_at


@pytest.mark.parametrize(
    ("keys", "extra", "says"),
    [
        (None, [], "TIDINGS_PUSH_KEYS is not set"),
        ("k1:short", [], "at least 32 bytes"),
        ("k1:" + "x" * 40, ["--ttl", "0"], "--ttl must be in"),
        ("k1:" + "x" * 40, ["--ttl", "100000"], "--ttl must be in"),
    ],
)
def test_token_refuses_bad_keys_and_lifetimes_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keys: str | None,
    extra: list[str],
    says: str,
) -> None:
    if keys is None:
        monkeypatch.delenv("TIDINGS_PUSH_KEYS", raising=False)
    else:
        monkeypatch.setenv("TIDINGS_PUSH_KEYS", keys)
    assert main(["token", "--user", "1", "--project", "2", *extra]) == USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("tidings token: ") and says in err and "\n" not in err


@pytest.mark.redis
@pytest.mark.parametrize("where", ["single", "cluster"])
def test_publish_says_published_or_stale_by_its_exit_code(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    if where == "single":
        url, mode = request.getfixturevalue("redis_url"), ["--no-sharded"]
    else:
        url, mode = require_cluster(), ["--sharded"]
    monkeypatch.setenv("REDIS_URL", url)
    project = random.randint(4 * 10**9, 5 * 10**9)
    client = connect_sync(url)
    try:
        with client.pubsub() as pubsub:
            # Classic PUBLISH here (single); the cluster's SPUBLISH is checked by the key.
            pubsub.subscribe(f"tidings:project:{{{project}}}")
            assert main(["publish", str(project), "8", *mode]) == PUBLISHED
            assert capsys.readouterr().out.strip() == f"published: project {project} version 8"
            assert main(["publish", str(project), "7", *mode]) == STALE
            out = capsys.readouterr().out
            assert out.startswith(f"refused as stale: project {project} is already at version 8")
            assert client.get(version_key(project)) == b"8"
            if where == "single":
                got = [pubsub.get_message(timeout=2.0) for _ in range(3)]
                pokes = [orjson.loads(m["data"]) for m in got if m and m["type"] == "message"]
                assert [p["version"] for p in pokes] == [8]
    finally:
        client.delete(version_key(project))
        client.close()


def test_publish_gives_up_after_its_attempts_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["publish", "5", "1", "--redis-url", url, "--attempts", "2"]) == FAILED
    err = capsys.readouterr().err.strip()
    assert err.startswith("tidings publish: poke project=5 version=1: not published after 2")
    assert "ConnectionError" in err and "\n" not in err


def test_publish_refuses_a_bad_url_or_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", "5", "1", "--redis-url", "http://x"]) == USAGE
    assert "scheme" in capsys.readouterr().err
    assert main(["publish", "0", "1", "--redis-url", "redis://127.0.0.1:1"]) == USAGE
    assert "project and version" in capsys.readouterr().err


def test_a_missing_role_names_its_extra_in_one_line() -> None:
    assert missing_role("push") is None  # this venv has every extra
    message = missing_role("push", ["tidings_no_such_module"])
    assert message == (
        "this command needs the 'push' extra: pip install 'tidings[push]' "
        "(missing: tidings_no_such_module)"
    )

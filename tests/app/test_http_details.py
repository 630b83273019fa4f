"""Request bodies: 413 past the limit however the body is framed (declared or
chunked), 415 for a body not labelled as JSON on every JSON endpoint, and 201
for creation, in process on both stores and over a real ``tidings app``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.app.conftest import Stack, StackFactory
from tests.conftest import free_port
from tidings.testing.processes import serving, tidings_cli, tidings_process

LIMIT = 64 * 1024
CHUNK = 8 * 1024
COMMAND = b'{"command":{"type":"create_story","title":"t"}}'
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def store_stack(make_stack: StackFactory, db_url: str) -> Stack:
    return await make_stack(db_url)


async def _project(stack: Stack, token: str) -> int:
    async with stack.client(token) as http:
        r = await http.post("/api/projects", json={"name": "Bodies"})
    assert r.status_code == 201, r.text
    return int(r.json()["project"])


class Chunks:
    """A chunked body of ``count`` chunks that records how many were pulled."""

    def __init__(self, count: int, first: bytes = b"") -> None:
        self.count = count
        self.first = first
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(self.count):
            self.pulled += 1
            yield self.first if i == 0 and self.first else b" " * CHUNK


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and isinstance(body["detail"], str), body


@pytest.mark.parametrize("path", ["/api/projects", "/api/projects/{pid}/commands"])
async def test_chunked_body_over_the_limit_gets_413_and_is_not_read_past_it(
    store_stack: Stack, path: str
) -> None:
    _user, token = await store_stack.user("big@x.io")
    pid = await _project(store_stack, token)
    body = Chunks(4 * LIMIT // CHUNK, first=b'{"name": "')
    async with store_stack.client(token) as http:
        r = await http.post(
            path.format(pid=pid), content=body, headers={"Content-Type": "application/json"}
        )
    assert_error(r, 413, "too_large")
    assert str(LIMIT) in r.json()["detail"]
    # The app stopped pulling once over the limit: one chunk past it at most.
    assert body.pulled <= LIMIT // CHUNK + 1, body.pulled


async def test_chunked_body_within_the_limit_is_applied(store_stack: Stack) -> None:
    _user, token = await store_stack.user("chunked@x.io")
    pid = await _project(store_stack, token)

    async def pieces() -> AsyncIterator[bytes]:
        yield COMMAND[:10]
        yield b" " * (LIMIT - len(COMMAND) - 1)
        yield COMMAND[10:]

    async with store_stack.client(token) as http:
        r = await http.post(
            f"/api/projects/{pid}/commands",
            content=pieces(),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["event"]["type"] == "story_created"


#: Every endpoint that takes a JSON body, with a body it would accept as JSON.
JSON_ENDPOINTS = {
    "sign-in": ("POST", "/api/session", b'{"email":"form@x.io","password":"x"}'),
    "api token": ("POST", "/api/tokens", b'{"name":"ci"}'),
    "new project": ("POST", "/api/projects", b'{"name":"P"}'),
    "command": ("POST", "/api/projects/{pid}/commands", COMMAND),
    "push token": ("POST", "/api/push/token", b'{"projects":[{pid}]}'),
    "flags": ("PUT", "/api/admin/flags", b'{"rollout_percent":5}'),
    "telemetry": ("POST", "/api/telemetry", b'{"missed_pokes":0,"polls":1}'),
}


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None]
)
async def test_a_body_not_labelled_json_gets_415_naming_the_expected_type(
    store_stack: Stack, content_type: str | None
) -> None:
    _user, token = await store_stack.user("form@x.io", admin=True)
    pid = await _project(store_stack, token)
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with store_stack.client(token) as http:
        for what, (method, path, body) in JSON_ENDPOINTS.items():
            url = path.format(pid=pid)
            r = await http.request(
                method, url, content=body.replace(b"{pid}", str(pid).encode()), headers=headers
            )
            assert_error(r, 415, "unsupported_media_type")
            assert "application/json" in r.json()["detail"], what
        # Labelled as JSON (with a charset), the same bodies are taken.
        for what, (method, path, body) in JSON_ENDPOINTS.items():
            r = await http.request(
                method,
                path.format(pid=pid),
                content=body.replace(b"{pid}", str(pid).encode()),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            assert r.status_code in (200, 201, 204, 401), (what, r.status_code, r.text)
            if what == "sign-in":
                assert_error(r, 401, "unauthorized")


async def test_requests_without_a_body_need_no_content_type(store_stack: Stack) -> None:
    _user, token = await store_stack.user("nobody@x.io")
    await _project(store_stack, token)
    async with store_stack.client(token) as http:
        assert (await http.post("/api/push/token")).status_code == 200
        assert (await http.get("/api/projects")).status_code == 200


async def test_creation_answers_201_created(store_stack: Stack) -> None:
    _user, token = await store_stack.user("maker@x.io")
    async with store_stack.client(token) as http:
        project = await http.post("/api/projects", json={"name": "New"})
        api_token = await http.post("/api/tokens", json={"name": "ci"})
    assert project.status_code == 201 and project.json()["version"] == 1
    assert api_token.status_code == 201 and api_token.json()["token"]


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real ``tidings app`` process: the server, not the test client, frames the body."""
    db = f"sqlite:///{tmp_path_factory.mktemp('bodies') / 'app.sqlite3'}"
    env = {**os.environ, "TIDINGS_DATABASE_URL": db}
    tidings_cli("users", "add", "b@x.io", "B", "--password", "password1", env=env)
    token = tidings_cli("tokens", "create", "b@x.io", env=env)
    port = free_port()
    log = tmp_path_factory.mktemp("bodies-log") / "app.log"
    base = f"http://127.0.0.1:{port}"
    app = tidings_process("app", ["app", "--port", str(port)], env, log)
    with serving(app, f"{base}/healthz", within=30):
        yield base, token


def test_a_real_server_answers_413_to_chunked_and_415_to_a_form(
    live_app: tuple[str, str],
) -> None:
    base, token = live_app
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
        pid = http.post("/api/projects", json={"name": "Live"}).json()["project"]

        def chunks() -> Iterator[bytes]:
            yield b'{"command":{"type":"create_story","title":"'
            for _ in range(2 * LIMIT // CHUNK):
                yield b"x" * CHUNK
            yield b'"}}'

        r = http.post(
            f"/api/projects/{pid}/commands",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert_error(r, 413, "too_large")
        # curl -d: form-encoded.
        r = http.post(f"/api/projects/{pid}/commands", data={"command": "x"})
        assert_error(r, 415, "unsupported_media_type")
        r = http.post(f"/api/projects/{pid}/commands", content=COMMAND)
        assert_error(r, 415, "unsupported_media_type")


async def test_304_only_when_since_and_if_none_match_both_name_the_current_version(
    stack: Stack,
) -> None:
    _user, token = await stack.user("poller@x.io")
    pid = await _project(stack, token)
    async with stack.client(token) as http:
        for _ in range(2):
            r = await http.post(f"/api/projects/{pid}/commands", content=COMMAND, headers=JSON)
            assert r.status_code == 200, r.text
        url = f"/api/projects/{pid}/events"

        async def poll(since: int, tag: str) -> httpx.Response:
            return await http.get(url, params={"since": since}, headers={"If-None-Match": tag})

        for tag in ('"3"', 'W/"3"', '"1", "3"'):
            r = await poll(3, tag)
            assert r.status_code == 304 and r.content == b"", tag
        # The tag names the current version but since is behind: the events, not a 304.
        r = await poll(1, '"3"')
        assert r.status_code == 200 and [e["version"] for e in r.json()["events"]] == [2, 3]
        # since is current but the tag names another version: an ordinary 200.
        r = await poll(3, '"2"')
        assert r.status_code == 200 and r.json()["events"] == []

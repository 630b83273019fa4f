"""The snapshot and the pages' files go out gzip-compressed; the files are cached by
revalidation (ETag, Last-Modified, ``Cache-Control: no-cache``) and answer 304 while
unchanged, compressed or not."""

from __future__ import annotations

import orjson

from tests.app.conftest import Stack
from tests.app.test_api import make_project
from tidings.app.compression import MINIMUM_BYTES, accepts_gzip

IDENTITY = {"Accept-Encoding": "identity"}


async def test_the_snapshot_is_gzipped_for_clients_that_accept_it(stack: Stack) -> None:
    p = await make_project(stack)
    pid = p["pid"]
    async with stack.client(p["tokens"]["owner"]) as http:
        for n in range(30):
            r = await http.post(
                f"/api/projects/{pid}/commands",
                json={
                    "command": {
                        "type": "create_story",
                        "title": f"Story {n}",
                        "description": "As a user I want it." * 5,
                    }
                },
            )
            assert r.status_code == 200, r.text
        plain = await http.get(f"/api/projects/{pid}", headers=IDENTITY)
        packed = await http.get(f"/api/projects/{pid}", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == packed.status_code == 200
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    # httpx decoded it: the same document; on the wire, a fraction of its size.
    assert orjson.loads(packed.content) == orjson.loads(plain.content)
    wire = int(packed.headers["content-length"])
    assert wire < len(plain.content) / 4, (wire, len(plain.content))
    # The compressed copy is kept by version: after a change it is the new document.
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "create_story", "title": "One more"}},
        )
        assert r.status_code == 200, r.text
        packed = await http.get(f"/api/projects/{pid}", headers={"Accept-Encoding": "gzip"})
        plain = await http.get(f"/api/projects/{pid}", headers=IDENTITY)
    assert packed.headers["content-encoding"] == "gzip"
    assert orjson.loads(packed.content) == orjson.loads(plain.content)
    assert orjson.loads(plain.content)["stories"][-1]["title"] == "One more"


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, GZIP;q=0.5")
    assert accepts_gzip("*")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("")


async def test_small_answers_are_sent_as_they_are(stack: Stack) -> None:
    p = await make_project(stack)
    async with stack.client(p["tokens"]["member"]) as http:
        me = await http.get("/api/me", headers={"Accept-Encoding": "gzip"})
        poll = await http.get(
            f"/api/projects/{p['pid']}/events?since=4", headers={"Accept-Encoding": "gzip"}
        )
    for r in (me, poll):
        assert r.status_code == 200
        assert len(r.content) < MINIMUM_BYTES
        assert "content-encoding" not in r.headers


async def test_page_files_are_compressed_and_revalidated(stack: Stack) -> None:
    async with stack.client() as http:
        for path in ("/", "/js/board.js", "/css/app.css"):
            first = await http.get(path, headers={"Accept-Encoding": "gzip"})
            assert first.status_code == 200, path
            assert first.headers["content-encoding"] == "gzip", path
            assert first.headers["cache-control"] == "no-cache", path
            etag = first.headers["etag"]
            assert etag.startswith('W/"'), (path, etag)
            again = await http.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
            assert again.status_code == 304, path
            assert again.content == b""
            assert again.headers["cache-control"] == "no-cache", path
            since = await http.get(
                path, headers={"If-Modified-Since": first.headers["last-modified"]}
            )
            assert since.status_code == 304, path
            plain = await http.get(path, headers=IDENTITY)
            assert "content-encoding" not in plain.headers, path
            assert plain.headers["etag"] == etag.removeprefix("W/"), path
            assert plain.content == first.content, path

"""The floor for bench/poll_path.py: the up-to-date poll on a bare ASGI app.

The same server stack as ``tidings app`` (uvicorn with uvloop and httptools,
through ``tidings.app.serve.uvicorn_config``), and nothing else: the bearer
token is checked against a dict, the project's version comes from a dict, and
a poll whose ``since`` and ``If-None-Match`` name that version gets a 304 with
the headers the real app sends (``ETag``, the version header, and the static
ones passed in: advice and security headers). Anything else is a 404 or 401.

    python bench/peers/poll_floor.py <spec.json> <port>

spec.json: {"token": "...", "versions": {"<project>": <version>},
            "headers": [["name", "value"], ...]}
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from tidings.app.serve import uvicorn_config
from tidings.protocol.advice import VERSION_HEADER

EVENTS = re.compile(r"/api/projects/([0-9]{1,16})/events")


def make_app(spec: dict[str, Any]) -> Any:
    users = {f"Bearer {spec['token']}".encode(): 1}
    versions = {int(p): int(v) for p, v in spec["versions"].items()}
    static = [(k.encode(), v.encode()) for k, v in spec["headers"]]
    version_header = VERSION_HEADER.lower().encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        status = 404
        headers: list[tuple[bytes, bytes]] = []
        match = EVENTS.fullmatch(scope["path"])
        if match is not None:
            fields = dict(scope["headers"])
            version = versions.get(int(match.group(1)))
            if users.get(fields.get(b"authorization", b"")) is None:
                status = 401
            elif version is not None:
                query = dict(p.partition(b"=")[::2] for p in scope["query_string"].split(b"&"))
                tag = f'"{version}"'.encode()
                headers = [(b"etag", tag), (version_header, str(version).encode()), *static]
                since = query.get(b"since", b"")
                if (
                    since.isdigit()
                    and int(since) == version
                    and fields.get(b"if-none-match") == tag
                ):
                    status = 304
                else:
                    status = 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    port = int(sys.argv[2])
    uvicorn.Server(uvicorn_config(make_app(spec), "127.0.0.1", port)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The push server's route table: exact paths and prefix mounts, declared in one list.

In the style of Starlette's ``Route`` and ``Mount``: the server builds the list
once at start-up (push/server.py) and nothing is found by import-time magic. A
request goes to the route with its exact path, else to the first mount whose
prefix it starts with (or whose prefix it equals without the trailing slash),
else it is refused with 404 and a JSON body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tidings.protocol.errors import NotFound
from tidings.push.http import HttpConnection, Request

#: Answers one request: responds, refuses, or takes the socket over.
Endpoint = Callable[[Request, HttpConnection], None]


@dataclass(frozen=True, slots=True)
class Route:
    """One exact path."""

    path: str
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class Mount:
    """Every path under ``prefix`` (which ends with ``/``): a transport with paths of its own."""

    prefix: str
    endpoint: Endpoint

    def __post_init__(self) -> None:
        if not (self.prefix.startswith("/") and self.prefix.endswith("/")):
            raise ValueError(f"a mount prefix starts and ends with '/': {self.prefix!r}")


class Router:
    """Dispatches a request by its path; a path declared twice is an error at start-up."""

    def __init__(self, routes: Iterable[Route | Mount]) -> None:
        self._exact: dict[str, Endpoint] = {}
        self._mounts: list[tuple[str, str, Endpoint]] = []
        for route in routes:
            if isinstance(route, Route):
                if route.path in self._exact:
                    raise ValueError(f"route declared twice: {route.path}")
                self._exact[route.path] = route.endpoint
            else:
                if any(prefix == route.prefix for prefix, _, _ in self._mounts):
                    raise ValueError(f"mount declared twice: {route.prefix}")
                self._mounts.append((route.prefix, route.prefix.rstrip("/"), route.endpoint))

    def endpoint(self, path: str) -> Endpoint | None:
        found = self._exact.get(path)
        if found is not None:
            return found
        for prefix, bare, endpoint in self._mounts:
            if path.startswith(prefix) or path == bare:
                return endpoint
        return None

    def __call__(self, request: Request, conn: HttpConnection) -> None:
        endpoint = self.endpoint(request.path)
        if endpoint is None:
            conn.refuse(NotFound(f"no route for {request.path}"))
        else:
            endpoint(request, conn)

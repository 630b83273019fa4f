"""Test doubles for the hub: a recording connection and a recording broker port."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import orjson

from tidings.push.hub import CONN_SLOTS, Conn, EncodedMessage


class FakeConn(Conn):
    __slots__ = (*CONN_SLOTS, "closed", "messages", "raw")
    kind: ClassVar[str] = "fake"

    def __init__(self) -> None:
        self.init_conn()
        self.messages: list[dict[str, Any]] = []
        self.raw: list[EncodedMessage] = []
        self.closed: tuple[int, str] | None = None

    def write(self, msg: EncodedMessage) -> None:
        assert self.closed is None, "write after close"
        self.raw.append(msg)
        self.messages.append(orjson.loads(msg.data))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def pokes(self) -> list[tuple[int, int]]:
        return [(m["project"], m["version"]) for m in self.of_type("poke")]


class FakeBroker:
    def __init__(self) -> None:
        self.subscribed: list[int] = []
        self.unsubscribed: list[int] = []
        self.checks: list[set[int]] = []

    def subscribe(self, project: int) -> None:
        self.subscribed.append(project)

    def unsubscribe(self, project: int) -> None:
        self.unsubscribed.append(project)

    def check_versions(self, projects: Iterable[int]) -> None:
        self.checks.append(set(projects))

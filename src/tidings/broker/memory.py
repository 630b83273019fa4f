"""The in-process broker: the embedded default for a single process (``tidings demo``).

Delivery is a direct call on the event loop, after the publisher's await point,
so a subscriber never runs inside the publisher's stack. With no other process
to hear it, running more than one app process on this broker is a
misconfiguration: use Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tidings.broker.base import (
    MAX_KEPT_REVOCATIONS,
    LinkHandler,
    MessageHandler,
    Publisher,
    Subscriber,
)


class MemoryBroker(Publisher):
    def __init__(self) -> None:
        self._versions: dict[int, int] = {}
        self._subscribers: list[MemorySubscriber] = []
        #: ``(at, message)`` in arrival order, expired and bounded like Redis's set.
        self._revocations: list[tuple[float, bytes]] = []

    async def publish(self, channel: str, data: bytes) -> None:
        for subscriber in list(self._subscribers):
            subscriber.deliver(channel, data)

    async def set_version(self, project_id: int, version: int) -> int:
        if version > self._versions.get(project_id, -1):
            self._versions[project_id] = version
        return self._versions[project_id]

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        return {p: self._versions[p] for p in project_ids if p in self._versions}

    async def record_revocation(self, message: bytes, at: float, keep_seconds: float) -> None:
        kept = [(t, m) for t, m in self._revocations if t > at - keep_seconds]
        kept.append((at, message))
        self._revocations = kept[-MAX_KEPT_REVOCATIONS:]

    async def recent_revocations(self, since: float) -> list[bytes]:
        return [m for t, m in self._revocations if t > since]

    def subscriber(self) -> MemorySubscriber:
        subscriber = MemorySubscriber(self)
        self._subscribers.append(subscriber)
        return subscriber

    def detach(self, subscriber: MemorySubscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)


class MemorySubscriber(Subscriber):
    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._channels: set[str] = set()
        self._on_message: MessageHandler | None = None

    def start(self, on_message: MessageHandler, on_link: LinkHandler) -> None:
        self._on_message = on_message
        asyncio.get_running_loop().call_soon(on_link, True)

    def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    def deliver(self, channel: str, data: bytes) -> None:
        if self._on_message is not None and channel in self._channels:
            asyncio.get_running_loop().call_soon(self._on_message, channel, data)

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        return await self._broker.get_versions(project_ids)

    async def publish(self, channel: str, data: bytes) -> None:
        await self._broker.publish(channel, data)

    async def recent_revocations(self, since: float) -> list[bytes]:
        return await self._broker.recent_revocations(since)

    async def close(self) -> None:
        self._broker.detach(self)

"""The server's advice to a polling client: push on or off, and the cadence to poll at.

It rides on every poll response (JSON body and the ``Tidings-Advice`` header, so
a 304 carries it too): the kill switch and the cadence reach clients through the
poll channel, which works even when push is dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ADVICE_HEADER = "Tidings-Advice"
VERSION_HEADER = "X-Tidings-Project-Version"


@dataclass(frozen=True, slots=True)
class Advice:
    push: bool
    #: Seconds between polls while push is healthy.
    interval: float
    #: Seconds between polls while push is down, degraded, draining or off.
    fallback_interval: float
    #: Each interval is multiplied by a uniform factor in [1 - jitter, 1 + jitter].
    jitter: float

    def to_json(self) -> dict[str, Any]:
        return {
            "push": self.push,
            "interval": self.interval,
            "fallback_interval": self.fallback_interval,
            "jitter": self.jitter,
        }

    def header(self) -> str:
        return (
            f"push={int(self.push)}, interval={self.interval:g}, "
            f"fallback={self.fallback_interval:g}, jitter={self.jitter:g}"
        )

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Advice:
        return cls(
            push=bool(body["push"]),
            interval=float(body["interval"]),
            fallback_interval=float(body["fallback_interval"]),
            jitter=float(body["jitter"]),
        )

    @classmethod
    def parse_header(cls, value: str) -> Advice:
        fields = dict(part.strip().partition("=")[::2] for part in value.split(","))
        return cls(
            push=fields["push"] == "1",
            interval=float(fields["interval"]),
            fallback_interval=float(fields["fallback"]),
            jitter=float(fields["jitter"]),
        )

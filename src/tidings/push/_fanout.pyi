"""Types of the native fan-out loop (_fanout.c); see tidings.push.fanout for the contract."""

from collections.abc import Callable, Iterable

def fanout(
    conns: Iterable[object],
    project: int,
    version: int,
    msg: object,
    queue: Callable[..., object],
    /,
) -> int: ...

"""The fan-out write loop: one message to every watcher of a project that lacks it.

Two implementations of one contract, chosen once at import: the native one
(``_fanout.c``, built by ``pip install`` when a C compiler is there) and this
module's pure-Python reference, used when the extension is absent or
``TIDINGS_PUSH_NATIVE_FANOUT=0``. Both run the same tests
(tests/push/test_fanout_writer.py). The native loop exists for CPU: with it
``/ws`` costs ~1.15x the C floor of bench/fanout.py per connection and poke,
with the Python loop ~1.3x (docs/PERFORMANCE.md, "Push fan-out").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from tidings.environment import flag

if TYPE_CHECKING:
    from tidings.push.hub import Conn, EncodedMessage

#: ``queue(conn, project, msg)``: what the hub does for a paused connection.
Queue = Callable[["Conn", int, "EncodedMessage"], None]


class Fanout(Protocol):
    def __call__(
        self,
        conns: Iterable[Conn],
        project: int,
        version: int,
        msg: EncodedMessage,
        queue: Queue,
        /,
    ) -> int: ...


def fanout_python(
    conns: Iterable[Conn], project: int, version: int, msg: EncodedMessage, queue: Queue
) -> int:
    """The contract, in Python: for each connection still below ``version`` on
    ``project``, raise its version, then write ``msg`` now (or ``queue`` it when
    the transport is paused). Returns how many were written now.

    The native loop makes the same decisions, but writes to connections with a
    direct socket (``conn.wfd >= 0``) after deciding for all, and may
    ``send()`` the frame cached under ``msg.frames[type(conn).direct_frame_key]``
    itself; see ``_fanout.c`` for when. Nothing here depends on the order in which
    connections are written (each one's bytes stay in order).
    """
    sent = 0
    for conn in conns:
        versions = conn.versions
        if versions[project] >= version:
            continue
        versions[project] = version
        if conn.paused_since is None:
            conn.write(msg)
            sent += 1
        else:
            queue(conn, project, msg)
    return sent


def _native() -> Fanout | None:
    if not flag(os.environ, "TIDINGS_PUSH_NATIVE_FANOUT", True):
        return None
    try:
        from tidings.push import _fanout
    except ImportError:
        return None
    native: Fanout = _fanout.fanout
    return native


#: The native loop, or None (no compiler at install time, or turned off).
NATIVE: Fanout | None = _native()
#: What the hub uses.
fanout: Fanout = NATIVE or fanout_python

"""Socket.IO v5 / Engine.IO v4 for the push server, sans-I/O: the server moves the bytes.

``engineio`` is the transport (packets, polling, upgrade, heartbeat), ``socketio``
the packet format, ``session`` the two together speaking tidings messages, and
``endpoint`` the asyncio glue that the push server mounts at ``/socket.io/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.push.context import PushContext
    from tidings.push.http import HttpHandler


def http_handler(ctx: PushContext) -> HttpHandler:
    """The push server's ``/socket.io/`` handler (found by ``PushServer`` at start-up)."""
    # Imported here: the sans-I/O modules stay free of the server's imports.
    from tidings.push.sio.endpoint import SocketIOEndpoint

    return SocketIOEndpoint(ctx)

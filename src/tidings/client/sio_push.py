"""The Socket.IO push transport of the asyncio client, on python-socketio's client.

The push server's Socket.IO endpoint carries the same messages as ``/ws``, one
event per message type with the message as its argument (PROTOCOL.md §4.5), so
every event goes to the same handler as a WebSocket message. The subscription
rides in the CONNECT's auth payload; a refresh is a ``refresh`` event. Socket.IO
itself does not reconnect here: when the server ends the session (after a
``close`` event with its code) or the transport fails, the controller decides
what comes next, as on the other transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio

from tidings.client import inputs as i
from tidings.client.driver import PushConnection

log = logging.getLogger(__name__)

#: Seconds for the client's own DISCONNECT when the controller closes the connection.
DISCONNECT_TIMEOUT = 2.0


def _auth(token: str, projects: dict[int, int]) -> dict[str, Any]:
    return {"token": token, "projects": {str(p): v for p, v in projects.items()}}


class SocketIoPush(PushConnection):
    """``/socket.io/`` over Engine.IO's WebSocket transport only: one TCP
    connection per session, so it works behind any load balancer and across
    processes sharing a port. Long-polling (and its upgrade) needs every request
    of a session to reach the same process (sticky routing); a client that
    cannot open a WebSocket has SSE."""

    sio: Any = None

    async def _run(self) -> None:
        timeout = self.client.options.timeout
        sio = socketio.AsyncClient(
            reconnection=False, logger=False, engineio_logger=False, request_timeout=timeout
        )
        ended = asyncio.Event()
        sio.on("*", self._event)
        sio.on("disconnect", lambda *_: ended.set())
        try:
            await sio.connect(
                self.url,
                auth=_auth(self.token, self.projects),
                transports=["websocket"],
                wait_timeout=timeout,
                retry=False,
            )
            self.sio = sio
            self.report(i.PushConnected(self.conn))
            await ended.wait()
        except (socketio.exceptions.SocketIOError, OSError, TimeoutError) as exc:
            log.info("push connection %d failed: %r", self.conn, exc)
        finally:
            self.sio = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sio.disconnect(), DISCONNECT_TIMEOUT)
        self.report(i.PushClosed(self.conn, self.close_code))

    def _event(self, event: str, *args: Any) -> None:
        if len(args) == 1:
            self.received(args[0])

    def refresh(self, token: str, projects: dict[int, int]) -> None:
        sio = self.sio
        if sio is not None:
            self.client._spawn(_emit_quietly(sio, "refresh", _auth(token, projects)))


async def _emit_quietly(sio: Any, event: str, data: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sio.emit(event, data), DISCONNECT_TIMEOUT)

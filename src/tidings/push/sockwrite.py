"""Writing one frame to a client socket, by a direct ``os.write`` when nothing is queued.

Measured on the fan-out path (bench/fanout.py, docs/PERFORMANCE.md): uvloop's
``transport.write`` cost ~15% more CPU per client per poke than ``os.write`` on
the same socket. The direct write is taken only when the transport's buffer is
empty (so bytes never overtake queued ones) and the transport is not closing
(so a closed, possibly reused, descriptor is never written). Whatever does not
go out at once is handed to the transport, which keeps its flow control
(pause/resume at the high-water mark) exactly as before.
"""

from __future__ import annotations

import asyncio
import os


def socket_fd(transport: asyncio.BaseTransport) -> int:
    """The transport's descriptor, or -1 when it has none (then every write is buffered)."""
    sock = transport.get_extra_info("socket")
    try:
        return int(sock.fileno()) if sock is not None else -1
    except (OSError, ValueError):
        return -1


def send(transport: asyncio.WriteTransport, fd: int, frame: bytes) -> None:
    if fd >= 0 and not transport.is_closing() and transport.get_write_buffer_size() == 0:
        try:
            sent = os.write(fd, frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            transport.write(frame)  # the transport notices the broken socket and reports it
            return
        if sent == len(frame):
            return
        frame = frame[sent:]
    transport.write(frame)

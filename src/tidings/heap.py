"""A serving process's heap: what is alive once the app or a push server has
started is moved out of the garbage collector's reach.

Measured (bench/poll_path.py, docs/PERFORMANCE.md): CPython's full collection
walks every tracked object, ~140,000 in a started app (modules, routes, schemas,
pools), ~90 ms of CPU each on the bench machine, during which the event loop
serves nothing. Under load, the objects of the polls in flight when a young
collection runs survive it and reach the old generation fast enough to start a
full collection about once a second (with the Redis version cache, where every
poll waits on a read): every request in flight then waited for it, the poll's
p99 of hundreds of milliseconds. Frozen (``gc.freeze``), the start-up objects
are never walked again; a full collection walks only what was made since.
Objects frozen and later dropped are still freed by reference counting; only a
cycle among them would stay (none is made after start-up on purpose).

A push server (push/main.py) does the same: in a reconnect storm each new
client leaves about ten long-lived container objects, and every full
collection the new ones set off also walked the ~63,000 start-up objects
(7-8 us per new WebSocket client, docs/PERFORMANCE.md, "Reconnect storms").

The young generation's threshold is raised too. A poll that waits (on the Redis
version read) holds a few dozen container objects; 32 of them in flight passed
CPython's default of 700 net new objects every pass of the loop, so a young
collection ran every ~20 polls (~6 us of CPU per poll, measured), promoting
what it found alive. With ``YOUNG_THRESHOLD`` the requests in flight fit; cyclic
garbage waits for at most that many objects (a few MB) before it is collected.
"""

from __future__ import annotations

import gc

#: Net new container objects before a young collection (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def freeze_startup_objects() -> int:
    """Collect once, freeze every object alive, raise the young generation's
    threshold; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()

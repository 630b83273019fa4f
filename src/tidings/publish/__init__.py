"""tidings for any Python app: sign push tokens, publish pokes after commit,
advise polling clients, revoke access, say the app is alive. Needs only
redis-py, PyJWT, orjson and pydantic (``pip install tidings``, no extra);
imports no web framework.

Push tokens (docs/PROTOCOL.md §2)::

    from tidings.publish import KeyRing, sign_push_token
    keys = KeyRing.from_env(os.environ)            # TIDINGS_PUSH_KEYS=kid:secret[,kid:secret]
    token, claims = sign_push_token(keys, user_id, project_ids, ttl=600)
    # -> {"token": token, "expires_at": claims.expires_at} to the signed-in user

The first key signs (its ``kid`` in the header), all of them verify: rotate by
adding the new key second, deploying push servers, moving it first.

Pokes after commit (§3.1), asyncio or blocking::

    from tidings.publish import AsyncPushPublisher, PushPublisher, PublishFailed
    pub = PushPublisher.connect()                  # REDIS_URL; redis+cluster://h:p,h:p
    outcome = pub.poke(project_id, version)        # after COMMIT, never inside it
    outcome.published                              # False: the key held a later version
    apub = AsyncPushPublisher.connect(sharded=True)  # SPUBLISH (TIDINGS_REDIS_SHARDED)
    await apub.poke(project_id, version, events=[...])  # full push, optional

``poke`` raises the version key with a compare-and-set (it never goes back),
then PUBLISHes (or SPUBLISHes) the poke, unless the key held a later version
(:attr:`Outcome.stale`: nothing is sent). A failed attempt is retried
(:class:`Retry`, 3 attempts by default, each bounded by a timeout); after the
last one :class:`PublishFailed` says what and why. A lost poke is never fatal:
clients poll. Call it after the commit, outside the request if you can.

Revocation (§3.2): ``pub.revoke(user_id, project_id, at=commit_time)`` when a
user loses access; push servers close that user's subscriptions to the project
at once, and Redis keeps it for push servers that were not listening.

Advice for poll answers (§5.2), from the app's own flags::

    from tidings.publish import ADVICE_HEADER, Cadence, PushFlags, advise
    flags = PushFlags(enabled=True, rollout_percent=25, projects={7: False})
    advice = advise(flags, user_id, project_id, Cadence(interval_push=300, interval=5))
    response.headers[ADVICE_HEADER] = advice.header()   # Tidings-Advice (304s too)
    body["advice"] = advice.to_json()

``enabled=False`` is the kill switch: every client goes back to polling at
``interval``. The rollout picks users by a stable hash of their id.

The app's heartbeat (§3.2), optional but what makes the kill switch fast::

    beat = pub.start_heartbeat(push_off=lambda: not flags.enabled)  # a thread; per process
    task = asyncio.create_task(apub.heartbeat(push_off=...))         # asyncio
    beat.stop()  /  task.cancel(); await apub.bye()                   # on shutdown: app_bye

Once push servers have heard an app, they report ``degraded`` while its
heartbeat says the kill switch is on (clients go to the poll, and so to its
advice, within seconds instead of the long interval) and while it is silent
(its path to Redis may be broken, pokes lost): start it after forking, in each
worker process, and stop it (``app_bye``) on shutdown. ``push_off`` is called
at every beat: return a cached flag. Without a heartbeat the kill switch still
works, through the advice, at each client's next poll.

From a shell: ``tidings token`` and ``tidings publish PROJECT VERSION``
(docs/OPERATIONS.md).
"""

from __future__ import annotations

from tidings.protocol.tokens import (
    DEFAULT_TTL_SECONDS,
    KeyRing,
    PushClaims,
    TokenTooLarge,
    sign_push_token,
)
from tidings.publish.advice import (
    ADVICE_HEADER,
    Advice,
    Cadence,
    PushFlags,
    advise,
    push_off_for_all,
    push_on,
)
from tidings.publish.aio import AsyncPushPublisher
from tidings.publish.outcome import Outcome, PublishFailed, Retry
from tidings.publish.sync import Heartbeat, PushPublisher

__all__ = [
    "ADVICE_HEADER",
    "DEFAULT_TTL_SECONDS",
    "Advice",
    "AsyncPushPublisher",
    "Cadence",
    "Heartbeat",
    "KeyRing",
    "Outcome",
    "PublishFailed",
    "PushClaims",
    "PushFlags",
    "PushPublisher",
    "Retry",
    "TokenTooLarge",
    "advise",
    "push_off_for_all",
    "push_on",
    "sign_push_token",
]

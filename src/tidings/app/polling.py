"""The poll path: "events since V" for one or many projects.

The up-to-date answer (the common case) is built from the version cache and
the membership cache only: no database read. Reads that do reach the events
table go through a single-flight keyed by (project, since, limit), and the page
read is kept while the project stays at its version, so a herd of clients poked
at once costs one read per distinct ``since`` even when their polls are spread
out in time (the client's poke jitter) rather than concurrent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tidings.app.routes.responses import JSON
from tidings.protocol.advice import ADVICE_HEADER, Advice
from tidings.protocol.errors import BadRequest, NotFound
from tidings.protocol.poll import DEFAULT_LIMIT as DEFAULT_LIMIT  # the app's routes take it here
from tidings.protocol.poll import answer_body, holds_version
from tidings.protocol.poll import version_headers as version_headers
from tidings.store.accounts import User
from tidings.store.events import MAX_EVENTS_PER_PAGE, EventPage
from tidings.store.singleflight import SingleFlight

if TYPE_CHECKING:
    from tidings.app.services import Services

#: Projects one multi-poll may name.
MAX_POLL_PROJECTS = 50

#: Bounds of the poll's query parameters (out of bounds: 400).
MAX_SINCE = 2**53
MAX_PROJECT_ID = 2**53
MAX_LIMIT = MAX_EVENTS_PER_PAGE

#: Bytes of encoded events kept in recent pages (per app process). A page answers
#: later polls of its (project, since, limit) while the project is still at the
#: page's version: history below a version never changes, so it cannot be wrong,
#: only evicted (oldest first). 4 MiB holds ~4,000 pages of a few small events; a
#: page larger than the whole budget is not kept.
RECENT_PAGES_BYTES = 4 * 1024 * 1024

RELOAD_AHEAD = "ahead"
RELOAD_PRUNED = "pruned"


@dataclass(frozen=True, slots=True)
class PollAnswer:
    version: int
    advice: Advice
    body: dict[str, Any]


def query_int(values: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A query parameter as an integer in [low, high], ASCII digits only, or 400:
    one rule for the fast path and the framework's route."""
    raw = values.get(name)
    if raw is None:
        return default
    # isascii(): str.isdigit() also takes "٣" and "²"; isdigit() alone refuses the
    # "+3" and " 3" that int() would take.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or not low <= int(raw) <= high:
        raise BadRequest(f"{name}: must be an integer from {low} to {high}", field=name)
    return int(raw)


def parse_targets(values: list[str]) -> dict[int, int]:
    """``["7:42", "9:13"]`` -> ``{7: 42, 9: 13}``; 400 on anything else."""
    if not values:
        raise BadRequest("name at least one project as p=<project>:<since>", field="p")
    if len(values) > MAX_POLL_PROJECTS:
        raise BadRequest(f"at most {MAX_POLL_PROJECTS} projects per poll", field="p")
    targets: dict[int, int] = {}
    for value in values:
        project, sep, since = value.partition(":")
        # Bounded like the one-project route (a since past 2**63 once reached the
        # database and failed there); ASCII digits only, as int() takes "٣" too.
        if (
            not (sep and value.isascii() and project.isdigit() and since.isdigit())
            or len(value) > 40
            or not 1 <= int(project) <= MAX_PROJECT_ID
            or int(since) > MAX_SINCE
        ):
            raise BadRequest(f"p={value!r} is not <project>:<since>", field="p")
        targets[int(project)] = int(since)
    return targets


class Poller:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._reads: SingleFlight[EventPage | None] = SingleFlight()
        self._recent: OrderedDict[tuple[int, int, int], tuple[EventPage, int]] = OrderedDict()
        self._recent_bytes = 0
        # Label lookups resolved once: the up-to-date poll is the hot path.
        self._outcomes = {
            outcome: services.metrics.polls.labels(outcome)
            for outcome in ("up_to_date", "not_modified", "events", "reload")
        }

    async def _read(self, project_id: int, since: int, limit: int, known: int) -> EventPage | None:
        """The page after ``since``; ``known`` is the project's version as the caller
        knows it (a kept page at or above it still answers)."""

        async def load() -> EventPage | None:
            self._s.metrics.store_reads.labels("events").inc()
            return await self._s.store.events_since(project_id, since, limit)

        if not self._s.settings.poll_collapsing:
            return await load()
        key = (project_id, since, limit)
        kept = self._recent.get(key)
        if kept is not None and kept[0].version >= known:
            self._recent.move_to_end(key)
            return kept[0]
        page = await self._reads.run(key, load)
        if page is not None:
            self._keep(key, page)
        return page

    def _keep(self, key: tuple[int, int, int], page: EventPage) -> None:
        size = sum(len(e) for e in page.events) + 64
        if size > RECENT_PAGES_BYTES:
            return
        old = self._recent.pop(key, None)
        if old is not None:
            self._recent_bytes -= old[1]
        self._recent[key] = (page, size)
        self._recent_bytes += size
        while self._recent_bytes > RECENT_PAGES_BYTES:
            _, (_, dropped) = self._recent.popitem(last=False)
            self._recent_bytes -= dropped

    async def version_for(self, user: User, project_id: int, version: int | None) -> int:
        """The project's version if ``user`` may read it; NotFound otherwise."""
        if version is None:
            raise NotFound("project not found")
        role = await self._s.members.role(user.id, project_id, version)
        if role is None:
            raise NotFound("project not found")
        return version

    async def answer(
        self, user: User, project_id: int, since: int, limit: int, version: int, advice: Advice
    ) -> PollAnswer:
        body = answer_body(project_id, version, since, advice)
        if since == version:
            self._outcomes["up_to_date"].inc()
            return PollAnswer(version, advice, body)
        page = await self._read(project_id, since, limit, version)
        if page is None:
            raise NotFound("project not found")
        # The database is authoritative: the cache may lag a commit by a moment.
        if page.version != version:
            # The membership was checked at the cached version; a commit since may
            # have removed this user, and its events must not reach them.
            await self.version_for(user, project_id, page.version)
        version = page.version
        self._s.versions.remember(project_id, version)
        body["version"] = version
        if since > version:
            body["reload"] = RELOAD_AHEAD
        elif since < page.pruned_through:
            body["reload"] = RELOAD_PRUNED
        elif page.events:
            body["events"] = [orjson.Fragment(e) for e in page.events]
            last = orjson.loads(page.events[-1])["version"]
            body["has_more"] = last < version
        if body["reload"] is not None:
            self._outcomes["reload"].inc()
        else:
            self._outcomes["events" if page.events else "up_to_date"].inc()
        return PollAnswer(version, advice, body)

    async def poll_one(self, user: User, project_id: int, since: int, limit: int) -> PollAnswer:
        s = self._s
        version = await self.version_for(user, project_id, await s.versions.get(project_id))
        advice = s.advice(await s.flag_cache.get(), user.id, project_id)
        return await self.answer(user, project_id, since, limit, version, advice)

    async def poll_many(self, user: User, targets: dict[int, int], limit: int) -> dict[str, Any]:
        s = self._s
        versions = await s.versions.get_many(targets)
        flags = await s.flag_cache.get()
        results: dict[str, Any] = {}
        for project_id, since in targets.items():
            try:
                version = await self.version_for(user, project_id, versions.get(project_id))
            except NotFound:
                results[str(project_id)] = {"error": "not_found"}
                continue
            advice = s.advice(flags, user.id, project_id)
            answer = await self.answer(user, project_id, since, limit, version, advice)
            results[str(project_id)] = answer.body
        return {"projects": results, "advice": s.advice(flags, user.id).to_json()}

    async def respond_one(
        self, request: Request, project_id: int, since: int, limit: int, if_none_match: str | None
    ) -> Response:
        """The whole single-project poll, shared by the route and the fast path."""
        principal = await self._s.auth.require(request)
        answer = await self.poll_one(principal.user, project_id, since, limit)
        headers = version_headers(answer.version, answer.advice)
        if since == answer.version and holds_version(if_none_match, answer.version):
            self._outcomes["not_modified"].inc()
            return Response(status_code=304, headers=headers)
        return JSON(answer.body, headers=headers)

    async def respond_many(self, request: Request, targets: list[str], limit: int) -> Response:
        principal = await self._s.auth.require(request)
        body = await self.poll_many(principal.user, parse_targets(targets), limit)
        advice = Advice.from_json(body["advice"])
        return JSON(body, headers={ADVICE_HEADER: advice.header()})

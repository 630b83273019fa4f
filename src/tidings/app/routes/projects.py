"""Projects: list, create, snapshot, events-since polls, and commands."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response

from tidings.app import compression
from tidings.app.compression import accepts_gzip
from tidings.app.history import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, page_of
from tidings.app.polling import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_SINCE,
    query_int,
    version_headers,
)
from tidings.app.routes.responses import JSON, VersionedJSON, errors
from tidings.app.schemas import (
    CommandResult,
    HistoryOut,
    NewProject,
    PollOut,
    ProjectList,
    Snapshot,
)
from tidings.app.services import Services, services
from tidings.domain.commands import AddMember, CommandRequest
from tidings.domain.decide import KnownUser
from tidings.protocol.errors import NotFound
from tidings.store.events import HISTORY_SCAN, Committed, request_hash

router = APIRouter(prefix="/api/projects", tags=["projects"])
Svc = Annotated[Services, Depends(services)]
ProjectId = Annotated[int, Path(ge=1, le=2**53)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Client-generated; a retry with the same key is applied once.",
    ),
]


def committed_response(s: Services, committed: Committed, status: int = 200) -> Response:
    if not committed.replayed:
        s.pokes.committed(committed)
        s.metrics.command("applied").inc()
    else:
        s.metrics.command("replayed").inc()
    return VersionedJSON(committed.response, committed.version, status_code=status)


@router.get("", response_model=ProjectList, responses=errors(401))
async def list_projects(request: Request, s: Svc) -> Response:
    principal = await s.auth.require(request)
    rows = await s.store.projects_of(principal.user.id)
    return JSON(
        {
            "projects": [
                {"id": p, "name": name, "role": role, "version": v} for p, name, role, v in rows
            ]
        }
    )


@router.post(
    "",
    status_code=201,
    response_model=CommandResult,
    responses=errors(401, 403, 413, 415, 422),
)
async def create_project(
    body: NewProject, request: Request, s: Svc, idempotency_key: IdempotencyKey = None
) -> Response:
    principal = await s.auth.require(request)
    user = principal.user
    idempotency = None
    if idempotency_key is not None:
        idempotency = (idempotency_key, request_hash(None, body.model_dump_json().encode()))
    committed = await s.store.create_project(
        body.name, KnownUser(user.id, user.name), idempotency=idempotency
    )
    return committed_response(s, committed, status=201)


@router.get("/{project_id}", response_model=Snapshot, responses=errors(401, 404))
async def snapshot(project_id: ProjectId, request: Request, s: Svc) -> Response:
    principal = await s.auth.require(request)
    # The compressed snapshot is made once per version and kept with it, rather
    # than by the compression middleware on every GET (it passes through a body
    # that already names its encoding).
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        found = await s.store.snapshot_gzipped(project_id, compression.LEVEL)
        encoding = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    else:
        found = await s.store.snapshot(project_id)
        encoding = {}
    if found is None:
        raise NotFound("project not found")
    version, body = found
    await s.poller.version_for(principal.user, project_id, version)
    return JSON(body, headers={**version_headers(version), **encoding})


@router.get(
    "/{project_id}/events",
    response_model=PollOut,
    responses={
        304: {"description": "Still at the version named in If-None-Match"},
        **errors(400, 401, 404),
    },
)
async def events_since(
    project_id: ProjectId,
    request: Request,
    s: Svc,
    since: Annotated[int, Query(ge=0, le=MAX_SINCE)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The poll: events after ``since``, the current version and the server's advice."""
    # The declared types document the parameters; the values are read by the same
    # rule as the fast path's (int() would also take "+3" and " 3").
    since = query_int(request.query_params, "since", 0, 0, MAX_SINCE)
    limit = query_int(request.query_params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return await s.poller.respond_one(request, project_id, since, limit, if_none_match)


@router.get("/{project_id}/history", response_model=HistoryOut, responses=errors(400, 401, 404))
async def history(
    project_id: ProjectId,
    request: Request,
    s: Svc,
    before: Annotated[int | None, Query(ge=1, le=MAX_SINCE)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)] = DEFAULT_HISTORY_LIMIT,
    story: Annotated[int | None, Query(ge=1, le=MAX_SINCE)] = None,
) -> Response:
    """Events below ``before``, newest first: the activity feed, or one story's
    changes (looked for among at most HISTORY_SCAN events per request)."""
    principal = await s.auth.require(request)
    q = request.query_params
    before = query_int(q, "before", MAX_SINCE, 1, MAX_SINCE)
    limit = query_int(q, "limit", DEFAULT_HISTORY_LIMIT, 1, MAX_HISTORY_LIMIT)
    story = query_int(q, "story", 0, 1, MAX_SINCE) if "story" in q else None
    scan = limit if story is None else HISTORY_SCAN
    found = await s.store.history(project_id, before, scan)
    if found is None:
        raise NotFound("project not found")
    await s.poller.version_for(principal.user, project_id, found.version)
    page = page_of(
        found.events, story=story, limit=limit, scanned=scan, pruned_through=found.pruned_through
    )
    body = {
        "project": project_id,
        "version": found.version,
        "pruned_through": found.pruned_through,
        "story": story,
        "events": [orjson.Fragment(e) for e in page.events],
        "next_before": page.next_before,
    }
    return JSON(body, headers=version_headers(found.version))


@router.post(
    "/{project_id}/commands",
    response_model=CommandResult,
    responses=errors(401, 403, 404, 409, 413, 415, 422),
)
async def run_command(
    project_id: ProjectId,
    body: CommandRequest,
    request: Request,
    s: Svc,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Apply one command: one transaction, one new version, one event."""
    return await apply_command(s, request, project_id, body, idempotency_key)


async def apply_command(
    s: Services,
    request: Request,
    project_id: int,
    body: CommandRequest,
    idempotency_key: str | None,
) -> Response:
    """The command route's work once its input is validated, shared with the
    commands' fast path (app/fastcommand.py)."""
    principal = await s.auth.require(request)
    user = principal.user
    target = None
    if isinstance(body.command, AddMember):
        found = await s.accounts.by_email(body.command.email)
        target = None if found is None else KnownUser(found.id, found.name)
    idempotency = None
    if idempotency_key is not None:
        idempotency = (idempotency_key, request_hash(project_id, body.model_dump_json().encode()))
    committed = await s.store.execute(
        project_id,
        user.id,
        body.command,
        expected_version=body.expected_version,
        idempotency=idempotency,
        target=target,
    )
    return committed_response(s, committed)

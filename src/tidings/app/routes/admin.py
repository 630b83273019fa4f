"""Push flags for admins: the kill switch, the rollout percentage, project overrides."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tidings.app.routes.responses import JSON, errors
from tidings.app.schemas import FlagsOut, FlagsUpdate
from tidings.app.services import Services, services
from tidings.protocol.errors import Forbidden
from tidings.store.flags import PROJECT_PREFIX, PUSH_ENABLED, PUSH_ROLLOUT

router = APIRouter(prefix="/api/admin", tags=["admin"])
Svc = Annotated[Services, Depends(services)]


async def require_admin(request: Request, s: Services) -> None:
    principal = await s.auth.require(request)
    if not principal.user.is_admin:
        raise Forbidden("admins only")


@router.get("/flags", response_model=FlagsOut, responses=errors(401, 403))
async def get_flags(request: Request, s: Svc) -> Response:
    await require_admin(request, s)
    return JSON((await s.flags.load()).to_json())


@router.put("/flags", response_model=FlagsOut, responses=errors(401, 403, 413, 415, 422))
async def put_flags(body: FlagsUpdate, request: Request, s: Svc) -> Response:
    """Change only the fields given; a project set to null follows the global settings again."""
    await require_admin(request, s)
    if body.enabled is not None:
        await s.flags.set(PUSH_ENABLED, body.enabled)
    if body.rollout_percent is not None:
        await s.flags.set(PUSH_ROLLOUT, body.rollout_percent)
    for project, value in (body.projects or {}).items():
        await s.flags.set(f"{PROJECT_PREFIX}{int(project)}", value)
    s.flag_cache.invalidate()
    return JSON((await s.flags.load()).to_json())


@router.get("/stats", responses=errors(401, 403))
async def stats(request: Request, s: Svc) -> Response:
    """The app's counters and every push server's latest figures, for the admin page."""
    await require_admin(request, s)
    return JSON(
        {
            "ts": time.time(),
            "app": s.metrics.snapshot(),
            "push_servers": s.fleet.servers(),
            "control_link": s.fleet.link_up,
        }
    )

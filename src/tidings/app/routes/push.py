"""What a client needs to use push: a signed push token and the client configuration.

All authorization happens here: the token names exactly the projects the user
may watch, and push servers trust nothing else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from tidings.app.routes.responses import JSON, errors
from tidings.app.schemas import ClientConfig, PushTokenOut, PushTokenRequest
from tidings.app.services import Services, services
from tidings.protocol.errors import Invalid
from tidings.protocol.tokens import (
    MAX_PROJECTS_PER_TOKEN,
    MAX_TOKEN_BYTES,
    TokenTooLarge,
    sign_push_token,
)
from tidings.publish.advice import push_on

router = APIRouter(prefix="/api", tags=["push"])
Svc = Annotated[Services, Depends(services)]

TOKEN_PATH = "/api/push/token"


@router.post("/push/token", response_model=PushTokenOut, responses=errors(401, 403, 413, 415, 422))
async def push_token(
    request: Request, s: Svc, body: Annotated[PushTokenRequest | None, Body()] = None
) -> Response:
    """A short-lived JWT naming the projects (all, or those asked for) the user may watch.

    422 when they do not fit in one token (MAX_PROJECTS_PER_TOKEN ids, MAX_TOKEN_BYTES
    bytes): the client asks for the projects it watches, over several connections
    if need be.
    """
    principal = await s.auth.require(request)
    user = principal.user
    mine = [p for p, _name, _role, _v in await s.store.projects_of(user.id)]
    if body is not None and body.projects is not None:
        wanted = set(body.projects)
        mine = [p for p in mine if p in wanted]
    try:
        token, claims = sign_push_token(
            s.settings.push_keys, user.id, mine, ttl=s.settings.push_token_ttl
        )
    except TokenTooLarge as exc:
        every = body is None or body.projects is None
        raise Invalid(
            f"{exc}: ask for {'the' if every else 'fewer'} projects you watch, "
            '{"projects": [id, ...]}, one token per connection',
            field="projects",
            projects=len(mine),
            max_projects=MAX_PROJECTS_PER_TOKEN,
            max_token_bytes=MAX_TOKEN_BYTES,
        ) from None
    return JSON(
        {"token": token, "expires_at": claims.expires_at, "projects": sorted(claims.projects)}
    )


@router.get("/client-config", response_model=ClientConfig, responses=errors(401))
async def client_config(request: Request, s: Svc) -> Response:
    principal = await s.auth.require(request)
    flags = await s.flag_cache.get()
    urls = s.settings.push_urls
    configured = urls.ws is not None or urls.sse is not None or urls.socketio is not None
    on = configured and push_on(flags, principal.user.id)
    advice = s.advice(flags, principal.user.id)
    return JSON(
        {
            "push": {
                "enabled": on,
                "urls": {"ws": urls.ws, "sse": urls.sse, "socketio": urls.socketio},
                "token_url": TOKEN_PATH,
            },
            "advice": {**advice.to_json(), "push": advice.push and configured},
            "flags": {"push": on},
        }
    )

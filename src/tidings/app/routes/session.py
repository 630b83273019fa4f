"""Signing in and out, the caller's identity, and API tokens."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tidings.app.auth import CSRF_COOKIE, SESSION_COOKIE
from tidings.app.routes.responses import JSON, errors
from tidings.app.schemas import ApiTokenOut, MeOut, NewApiToken, SessionOut, SignIn
from tidings.app.services import Services, services
from tidings.protocol.errors import Unauthorized, Unavailable
from tidings.store.accounts import User

router = APIRouter(prefix="/api", tags=["session"])
Svc = Annotated[Services, Depends(services)]


def user_json(user: User) -> dict[str, object]:
    return {"id": user.id, "email": user.email, "name": user.name, "is_admin": user.is_admin}


@router.post("/session", response_model=SessionOut, responses=errors(401, 413, 415, 422, 429, 503))
async def sign_in(body: SignIn, request: Request, s: Svc) -> Response:
    """Check the password; set the HttpOnly session cookie and the CSRF cookie.

    429 past the sign-in limits (app/ratelimit.py), 503 when too many sign-ins
    are already waiting for a password thread (app/passwords.py).
    """
    address = request.client.host if request.client else "unknown"
    limiter = s.signin_limiter
    # Admitted (tokens taken) before the first await: concurrent attempts cannot
    # all pass a check made before any of them failed.
    attempt = limiter.admit(body.email, address, time.monotonic())
    try:
        with s.passwords.admit():
            user = await s.accounts.check_password(body.email, body.password)
    except Unavailable:
        limiter.cancel(attempt, time.monotonic())
        raise
    except BaseException:
        limiter.failed(attempt, time.monotonic())
        raise
    if user is None:
        limiter.failed(attempt, time.monotonic())
        raise Unauthorized("wrong email or password")
    limiter.succeeded(attempt, time.monotonic())
    secret = await s.accounts.issue(user.id, "session", ttl=s.settings.session_ttl)
    csrf = secrets.token_urlsafe(24)
    response = JSON({"user": user_json(user), "csrf_token": csrf})
    max_age = int(s.settings.session_ttl)
    secure = s.settings.secure_cookies
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=max_age, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, samesite="strict", secure=secure)
    return response


@router.delete("/session", status_code=204, responses=errors(401, 403))
async def sign_out(request: Request, s: Svc) -> Response:
    await s.auth.require(request)
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        await s.accounts.revoke(secret)
        s.auth.forget(secret)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/me", response_model=MeOut, responses=errors(401))
async def me(request: Request, s: Svc) -> Response:
    principal = await s.auth.require(request)
    projects = await s.store.projects_of(principal.user.id)
    return JSON(
        {
            "user": user_json(principal.user),
            "projects": [
                {"id": p, "name": name, "role": role, "version": v} for p, name, role, v in projects
            ],
            "projects_refresh": s.settings.projects_refresh,
        }
    )


@router.post(
    "/tokens",
    status_code=201,
    response_model=ApiTokenOut,
    responses=errors(401, 403, 413, 415, 422),
)
async def new_api_token(body: NewApiToken, request: Request, s: Svc) -> Response:
    """A bearer token for programs (shown once; only its hash is stored)."""
    principal = await s.auth.require(request)
    token = await s.accounts.issue(principal.user.id, "api", ttl=None, name=body.name)
    return JSON({"token": token}, status_code=201)

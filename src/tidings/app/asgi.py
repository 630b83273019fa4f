"""ASGI entry point for process managers: ``uvicorn --factory tidings.app.asgi:create_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from tidings.app.main import create_app
from tidings.app.settings import AppSettings


def create_from_env() -> FastAPI:
    return create_app(AppSettings.from_env(freeze_heap=True))

"""The pages' files (``app/static``): sent with ``ETag`` and ``Last-Modified`` (Starlette's
``StaticFiles``) and ``Cache-Control: no-cache``, so the browser keeps them and asks
again before each use, getting a body-less 304 while the file is unchanged.

Not long, immutable caching: the board is ES modules loaded by fixed URLs (no
version or hash in them), so a cached module could outlive a deployment and run
against a newer app. Revalidation costs one small request per file per load.
"""

from __future__ import annotations

import os

from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

CACHE_CONTROL = "no-cache"


class StaticPages(StaticFiles):
    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = CACHE_CONTROL
        return response

"""Security headers on every response: pages, API answers, errors and the poll fast path.

The Content-Security-Policy allows what the board loads and nothing else: its
own scripts, styles and images (plus the ``data:`` favicon), requests to this
origin and to the push servers (``TIDINGS_PUSH_URL``: their http(s) and ws(s)
origins, for WebSocket, SSE and Socket.IO). No inline script but the board
page's own (named by its hash, read from static/index.html: it starts the
snapshot's request before the modules load), no framing
(``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` for old browsers),
no MIME sniffing, no referrer. The framework's API reference pages (/docs,
/redoc) load their viewer from a CDN with an inline bootstrap script and get a
policy that allows exactly that.
"""

from __future__ import annotations

import re
from base64 import b64encode
from hashlib import sha256
from pathlib import Path
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.app.settings import PushUrls

#: Where FastAPI's API reference pages load Swagger UI and ReDoc from.
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

#: One year, sent only over HTTPS deployments (``TIDINGS_SECURE_COOKIES=1``).
HSTS_MAX_AGE = 365 * 24 * 3600


#: The pages whose inline scripts the policy allows, by hash.
PAGES = (Path(__file__).with_name("static") / "index.html",)
_INLINE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """CSP sources for each inline ``<script>`` (no attributes) in ``html``: the
    SHA-256 of its exact text, so an edit to a script changes its hash with it."""
    return [
        f"'sha256-{b64encode(sha256(m.group(1).encode()).digest()).decode()}'"
        for m in _INLINE.finditer(html)
    ]


def page_script_sources() -> str:
    """The script sources of the policy: this origin and the pages' inline scripts."""
    hashes = [h for page in PAGES for h in inline_script_hashes(page.read_text("utf-8"))]
    return " ".join(["'self'", *hashes])


def push_origins(urls: PushUrls) -> list[str]:
    """The http(s) and ws(s) origins of the configured push URLs, each once, in order."""
    origins: list[str] = []
    for url in (urls.ws, urls.sse, urls.socketio):
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            continue  # a relative URL: this origin, already 'self'
        secure = parts.scheme in ("https", "wss")
        for scheme in ("https", "wss") if secure else ("http", "ws"):
            origin = f"{scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def content_security_policy(urls: PushUrls) -> str:
    connect = " ".join(["'self'", *push_origins(urls)])
    return (
        f"default-src 'self'; script-src {page_script_sources()}; style-src 'self'; "
        "img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


DOCS_POLICY = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {DOCS_CDN}; "
    f"style-src 'self' 'unsafe-inline' {DOCS_CDN}; img-src 'self' data: https:; "
    f"worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def security_headers(
    push_urls: PushUrls, https: bool, *, docs: bool = False
) -> list[tuple[bytes, bytes]]:
    """The headers added to every answer (``docs``: to the API reference pages)."""
    common = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if https:
        common.append((b"strict-transport-security", f"max-age={HSTS_MAX_AGE}".encode()))
    policy = DOCS_POLICY if docs else content_security_policy(push_urls)
    return [*common, (b"content-security-policy", policy.encode())]


class SecurityHeaders:
    """Add the headers to each response start (the outermost middleware, so every
    response gets them, including the fast path's and the body limit's)."""

    def __init__(self, app: ASGIApp, *, push_urls: PushUrls, https: bool) -> None:
        self.app = app
        self._headers = security_headers(push_urls, https)
        self._docs_headers = security_headers(push_urls, https, docs=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._docs_headers if scope["path"] in DOCS_PATHS else self._headers

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)

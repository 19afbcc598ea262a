"""The routes of ``bothost serve``: a read-only page over a bot's files (starlette, ASGI).

* ``GET /``: the page (``static/page.html``, with the current data in it, so it is right
  before any script runs);
* ``GET /events``: server-sent events, the page's data again whenever a file changed;
* ``GET /api/data``: the same data once, as JSON;
* ``GET /static/...``: the page's CSS and JS, served from the package (nothing from a CDN).

Only GET and HEAD exist: there is no route that writes anything or could place an order.
With a token every request must carry it (``Authorization: Bearer T`` or ``?token=T``), else
401. Without one the server only listens on 127.0.0.1 (``commands`` refuses anything else)
and answers only requests addressed to a loopback name (no DNS rebinding from a web page).
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .sse import Watcher

STATIC_DIR = Path(__file__).with_name("static")
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def render_page(template: str, title: str, data_json: str, mode: str, style: str, script: str) -> str:
    return (template.replace("{{title}}", escape(title)).replace("{{mode}}", mode)
            .replace("{{style}}", style).replace("{{script}}", script).replace("{{data}}", data_json))


class TokenGate:
    """Every request carries the token (header or query), or gets 401 (pure ASGI: streams pass)."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode()

    def _carries(self, scope) -> bool:
        for name, value in scope.get("headers") or ():
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                if hmac.compare_digest(value[7:].strip(), self.token):
                    return True
        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        return any(hmac.compare_digest(t.encode(), self.token) for t in query.get("token", ()))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self._carries(scope):
            response = PlainTextResponse("401: this page needs its token (Authorization: Bearer T, or ?token=T)\n",
                                         status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                for k, v in SECURITY_HEADERS.items():
                    if k.lower().encode() not in present:
                        headers.append((k.lower().encode(), v.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(watcher: Watcher, title: str, token: str | None = None) -> Starlette:
    template = (STATIC_DIR / "page.html").read_text()

    def _suffix(request: Request) -> str:
        carried = request.query_params.get("token")
        return f"?token={quote(carried)}" if token and carried else ""

    async def page(request: Request) -> Response:
        q = escape(_suffix(request))
        html = render_page(template, title, await watcher.current(), "live",
                           f'<link rel="stylesheet" href="static/style.css{q}">',
                           f'<script src="static/app.js{q}"></script>')
        return Response(html, media_type="text/html; charset=utf-8")

    async def data(request: Request) -> Response:
        return Response(await watcher.current(), media_type="application/json")

    async def events(request: Request) -> Response:
        return StreamingResponse(watcher.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @asynccontextmanager
    async def lifespan(app):
        watcher.start()
        try:
            yield
        finally:
            await watcher.stop()

    middleware = [Middleware(SecurityHeaders)]
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    else:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES))
    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/api/data", data, methods=["GET", "HEAD"]),
        Route("/events", events, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)

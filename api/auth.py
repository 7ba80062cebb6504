"""The API token: when one is configured, every request but the health check and the login form must carry it.

- API clients send ``Authorization: Bearer <token>``.
- The map page's tile requests are plain image requests, which cannot carry a header: the page gets a cookie once
  the token is entered in ``/login``, or from a ``?token=`` parameter on the page's URL (the server then sets the
  cookie and redirects to the URL without it, so the token does not stay in the address bar or the history).
- GIS clients that can only be given a URL put ``?token=`` in their tile URL template.

The cookie holds an HMAC of the token, not the token, so a stolen cookie is no bearer token. Tokens are compared in
constant time, and ``api.server`` keeps them out of the access log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.pages import login_page

COOKIE = "tileclass_session"
TOKEN_PARAMETER = "token"
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login"})


def cookie_value(token: str) -> str:
    """What the page's cookie holds for ``token``."""
    return hmac.new(token.encode(), b"tileclass map page", hashlib.sha256).hexdigest()


def same(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


def session_cookie(response: Response, *, token: str, secure: bool) -> None:
    """Set the page's cookie: for this site only, out of reach of scripts, until the browser closes."""
    response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict", secure=secure, path="/")


def without_token(url: URL) -> str:
    """The path and query of ``url`` without its ``token`` parameter."""
    kept = [(key, value) for key, value in parse_qsl(url.query, keep_blank_values=True) if key != TOKEN_PARAMETER]
    return url.path + (f"?{urlencode(kept)}" if kept else "")


class TokenGate:
    """ASGI middleware: lets a request through only with the token (header, parameter or cookie)."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self._by_header(request) or self._by_cookie(request):
            await self.app(scope, receive, send)
            return
        if self._by_parameter(request):
            if _wants_page(request):  # keep the token out of the address bar: a cookie, and the URL without it
                response = RedirectResponse(without_token(request.url), status_code=303)
                session_cookie(response, token=self.token, secure=request.url.scheme == "https")
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        await _refusal(request)(scope, receive, send)

    def _by_header(self, request: Request) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same(presented.strip(), self.token or "")

    def _by_cookie(self, request: Request) -> bool:
        presented = request.cookies.get(COOKIE)
        return presented is not None and same(presented, cookie_value(self.token or ""))

    def _by_parameter(self, request: Request) -> bool:
        presented = request.query_params.get(TOKEN_PARAMETER)
        return presented is not None and same(presented, self.token or "")


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def _refusal(request: Request) -> Response:
    if _wants_page(request) and request.url.path == "/":
        return HTMLResponse(login_page(next_url=without_token(request.url)), status_code=401)
    detail = ("this server needs its API token: send 'Authorization: Bearer <TILECLASS_API_TOKEN>', or add "
              "?token=<TILECLASS_API_TOKEN> to a tile URL")
    return Response(json.dumps({"detail": detail}), status_code=401, media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="tileclass"'})

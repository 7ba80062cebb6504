"""The API token: when one is configured, every request but the health check and the login form must carry it.

- API clients send ``Authorization: Bearer <token>``.
- The map page's tile requests are plain image requests, which cannot carry a header: the page gets a cookie once
  the token is entered in ``/login``, or from a ``?token=`` parameter on the page's URL (the server then sets the
  cookie and redirects to the URL without it, so the token does not stay in the address bar or the history).
- GIS clients that can only be given a URL put ``?token=`` in their tile URL template.

The cookie holds an HMAC of the token, not the token, so a stolen cookie is no bearer token. Tokens are compared in
constant time; wrong ones (and wrong ``/login`` forms) are throttled per client address (``api.throttle``). A query
parameter is the token when its name, percent-decoded, is ``token`` (``tok%65n`` too): the gate reads exactly those
parameters and ``api.server`` masks exactly those in the access log (``is_token_name``, the one rule for both).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import unquote_plus

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.pages import login_page
from api.throttle import Throttle

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


def is_token_name(raw_name: str) -> bool:
    """Whether a query parameter, by its name as sent (``tok%65n``), is the token: percent-decoded it is ``token``,
    as every reader of a query string decodes it."""
    return unquote_plus(raw_name) == TOKEN_PARAMETER


def token_values(query: str) -> list[str]:
    """The values of the token parameters in a raw query string, decoded."""
    pairs = (piece.partition("=") for piece in query.split("&"))
    return [unquote_plus(value) for name, _, value in pairs if is_token_name(name)]


def without_token(url: URL) -> str:
    """The path and query of ``url`` without its token parameters (the others kept as they were sent)."""
    kept = [piece for piece in url.query.split("&") if piece and not is_token_name(piece.partition("=")[0])]
    return url.path + (f"?{'&'.join(kept)}" if kept else "")


def client_address(request: Request) -> str | None:
    """Where a request comes from (the proxy's ``X-Forwarded-For`` when uvicorn trusts it)."""
    return request.client.host if request.client else None


def too_many_tries(wait: int) -> str:
    return f"too many wrong tokens from this address: try again in {wait} s"


class TokenGate:
    """ASGI middleware: lets a request through only with the token (header, parameter or cookie)."""

    def __init__(self, app: ASGIApp, *, token: str | None, throttle: Throttle) -> None:
        self.app, self.token, self.throttle = app, token, throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        client = client_address(request)
        # Tokens sent as a header or a parameter are tries; a cookie is not (it is an HMAC nobody guesses, and a
        # stale one must not lock its browser out).
        tried = "authorization" in request.headers or bool(token_values(request.url.query))
        wait = self.throttle.wait(client) if tried else 0
        if wait:
            await _throttled(wait)(scope, receive, send)
            return
        by_parameter = self._by_parameter(request)
        passed = by_parameter or self._by_header(request) or self._by_cookie(request)
        if tried and passed:
            self.throttle.succeeded(client)
        elif tried:
            self.throttle.failed(client)
        if not passed:
            await _refusal(request)(scope, receive, send)
        elif by_parameter and _wants_page(request):  # keep the token out of the address bar: a cookie, and the
            response = RedirectResponse(without_token(request.url), status_code=303)  # URL without it
            session_cookie(response, token=self.token, secure=request.url.scheme == "https")
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _by_header(self, request: Request) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same(presented.strip(), self.token or "")

    def _by_cookie(self, request: Request) -> bool:
        presented = request.cookies.get(COOKIE)
        return presented is not None and same(presented, cookie_value(self.token or ""))

    def _by_parameter(self, request: Request) -> bool:
        # Every token parameter must be the token: one request is one try, not one per parameter.
        presented = token_values(request.url.query)
        return bool(presented) and all(same(value, self.token or "") for value in presented)


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def _throttled(wait: int) -> Response:
    return Response(json.dumps({"detail": too_many_tries(wait)}), status_code=429, media_type="application/json",
                    headers={"Retry-After": str(wait)})


def _refusal(request: Request) -> Response:
    if _wants_page(request) and request.url.path == "/":
        return HTMLResponse(login_page(next_url=without_token(request.url)), status_code=401)
    detail = ("this server needs its API token: send 'Authorization: Bearer <TILECLASS_API_TOKEN>', or add "
              "?token=<TILECLASS_API_TOKEN> to a tile URL")
    return Response(json.dumps({"detail": detail}), status_code=401, media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="tileclass"'})

"""The API token: when one is configured, every request but the health check and the login form must carry it;
writes (any method but GET, HEAD and OPTIONS) always need a token, on loopback too.

- API clients send ``Authorization: Bearer <token>``.
- The map page's tile requests are plain image requests, which cannot carry a header: the page gets a cookie once
  the token is entered in ``/login``, or from a ``?token=`` parameter on the page's URL (the server then sets the
  cookie and redirects to the URL without it, so the token does not stay in the address bar or the history).
- GIS clients that can only be given a URL put ``?token=`` in their tile URL template.

The cookie holds an HMAC of the token, not the token, so a stolen cookie is no bearer token. Tokens are compared in
constant time; wrong ones (and wrong ``/login`` forms) are throttled per client address (``api.throttle``). A query
parameter is the token when its name, percent-decoded, is ``token`` (``tok%65n`` too): the gate reads exactly those
parameters and ``api.server`` masks exactly those in the access log (``is_token_name``, the one rule for both).

Writes take the token as a bearer header (scripts) or the page's cookie; without ``TILECLASS_API_TOKEN`` that is the
token ``tileclass serve`` made for its run (``ServeConfig.write_token``). A write with the cookie must also carry
``X-CSRF-Token``: an HMAC of the session under the token (``csrf_token``), which the page reads from
``GET /api/session`` (the cookie itself is out of reach of scripts). Another site can make a browser send the cookie
at most (it is ``SameSite=Strict``, so not even that in today's browsers), never the header: 403 without it. A
token as a ``?token=`` parameter is for reads only (a URL ends up in histories and proxies' logs).
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
CSRF_HEADER = "X-CSRF-Token"
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_value(token: str) -> str:
    """What the page's cookie holds for ``token``."""
    return hmac.new(token.encode(), b"tileclass map page", hashlib.sha256).hexdigest()


def csrf_token(token: str) -> str:
    """The page's CSRF token for the session of ``token``: an HMAC of its cookie under the token, so nobody who
    lacks the token can make one."""
    return hmac.new(token.encode(), b"tileclass csrf " + cookie_value(token).encode(), hashlib.sha256).hexdigest()


def signed_in(request: Request, token: str | None) -> bool:
    """Whether ``request`` carries the page's cookie for ``token``."""
    presented = request.cookies.get(COOKIE)
    return token is not None and presented is not None and same(presented, cookie_value(token))


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
    """ASGI middleware: lets a request through only with the token (header, parameter or cookie), a write only with
    ``write_token`` (header, or cookie and CSRF header)."""

    def __init__(self, app: ASGIApp, *, token: str | None, write_token: str | None, throttle: Throttle) -> None:
        self.app, self.token, self.write_token, self.throttle = app, token, write_token, throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method not in READ_METHODS:
            await self._write(request)(scope, receive, send)
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
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

    def _write(self, request: Request) -> ASGIApp:
        """What answers a write: the app, when it carries the write token as a header, or the cookie and its CSRF
        token; else a refusal (401, 403 for the cookie without a right CSRF token, 429 while throttled)."""
        token, client = self.write_token, client_address(request)
        tried = "authorization" in request.headers or bool(token_values(request.url.query))
        wait = self.throttle.wait(client) if tried else 0
        if wait:
            return _throttled(wait)
        if token is None:
            return _refused(401, "this server takes no writes: it has no token (set TILECLASS_API_TOKEN, or start it "
                                 "with 'tileclass serve', which makes one and prints its login URL)")
        by_header = self._by_header(request, token)
        if tried and (by_header or self._by_parameter(request, token)):
            self.throttle.succeeded(client)
        elif tried:
            self.throttle.failed(client)
        if by_header:
            return self.app
        if signed_in(request, token):
            if same(request.headers.get(CSRF_HEADER, ""), csrf_token(token)):
                return self.app
            return _refused(403, f"a write from the map page needs its {CSRF_HEADER} header (GET /api/session gives "
                                 "it): reload the page")
        return _refused(401, "writes need this server's token: send 'Authorization: Bearer <token>' "
                             "(TILECLASS_API_TOKEN, or the token in the login URL 'tileclass serve' printed), or sign "
                             "in to the map page at /login", authenticate=True)

    def _by_header(self, request: Request, token: str | None = None) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same(presented.strip(), token or self.token or "")

    def _by_cookie(self, request: Request) -> bool:
        return signed_in(request, self.token)

    def _by_parameter(self, request: Request, token: str | None = None) -> bool:
        # Every token parameter must be the token: one request is one try, not one per parameter.
        presented = token_values(request.url.query)
        return bool(presented) and all(same(value, token or self.token or "") for value in presented)


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def _throttled(wait: int) -> Response:
    return Response(json.dumps({"detail": too_many_tries(wait)}), status_code=429, media_type="application/json",
                    headers={"Retry-After": str(wait)})


def _refused(status: int, detail: str, *, authenticate: bool = False) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="tileclass"'} if authenticate else None
    return Response(json.dumps({"detail": detail}), status_code=status, media_type="application/json",
                    headers=headers)


def _refusal(request: Request) -> Response:
    if _wants_page(request) and request.url.path == "/":
        return HTMLResponse(login_page(next_url=without_token(request.url)), status_code=401)
    detail = ("this server needs its API token: send 'Authorization: Bearer <TILECLASS_API_TOKEN>', or add "
              "?token=<TILECLASS_API_TOKEN> to a tile URL")
    return Response(json.dumps({"detail": detail}), status_code=401, media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="tileclass"'})

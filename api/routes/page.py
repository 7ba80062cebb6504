"""The map page (``/``, ``/?job=ID``), the login form that sets its cookie (also as the login URL ``tileclass
serve`` prints: ``/login?token=…``), and the health checks."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from sqlalchemy import text

from api.auth import client_address, same, session_cookie, token_values, too_many_tries
from api.config import ServeConfig
from api.deps import ConfigDep, SessionDep
from api.pages import login_page, safe_next
from api.schemas import Health
from api.throttle import Throttle

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_FORM_BYTES = 4096
router = APIRouter()  # no tag of its own: the page and login are out of /docs, the health checks under "health"


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The web map: Leaflet, the job's imagery and overlay, legend, job picker, popups and downloads."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/login", include_in_schema=False)
def login_form(request: Request, config: ConfigDep, next: str = "/") -> Response:
    """The sign-in form; with ``?token=`` (the login URL ``tileclass serve`` prints) it signs in at once."""
    presented = token_values(request.url.query)
    if not presented:
        return HTMLResponse(login_page(next_url=next))
    return _sign_in(request, config, presented[-1], next)


@router.post("/login", include_in_schema=False)
async def login(request: Request, config: ConfigDep) -> Response:
    """Check the token the form sent; on success set the page's cookie and go on to the page."""
    body = await request.body()
    form = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    return _sign_in(request, config, form.get("token", [""])[0], form.get("next", ["/"])[0])


def _sign_in(request: Request, config: ServeConfig, presented: str, next_url: str) -> Response:
    """The page's cookie and on to ``next_url`` for the write token (``TILECLASS_API_TOKEN``, else this run's), the
    form again with the problem for anything else (throttled per client address)."""
    token = config.write_token
    if token is None:
        return RedirectResponse(safe_next(next_url), status_code=303)
    throttle: Throttle = request.app.state.throttle
    client = client_address(request)
    if wait := throttle.wait(client):  # the right token too: else the one answer that is not 429 gives it away
        return HTMLResponse(login_page(next_url=next_url, problem=too_many_tries(wait)), status_code=429,
                            headers={"Retry-After": str(wait)})
    if not same(presented, token):
        throttle.failed(client)
        return HTMLResponse(login_page(next_url=next_url, problem="That is not this server's token."), status_code=401)
    throttle.succeeded(client)
    response = RedirectResponse(safe_next(next_url), status_code=303)
    session_cookie(response, token=token, secure=request.url.scheme == "https")
    return response


@router.get("/healthz", tags=["health"])
def healthz() -> Health:
    """Liveness: the server answers (no token needed, nothing else is checked)."""
    return Health(status="ok")


@router.get("/readyz", tags=["health"])
def readyz(session: SessionDep) -> Health:
    """Readiness: the results database answers (503 with the reason when it does not)."""
    session.execute(text("SELECT 1"))
    return Health(status="ready")

"""``GET /api/session``: whether this browser is signed in for writes, and the CSRF token its writes carry.

The page's cookie is HttpOnly, out of reach of its scripts; this is how the page learns the ``X-CSRF-Token`` to send
with ``POST /api/corrections`` (``api.auth.csrf_token``). Only a request with the cookie gets one; another site's
page cannot read the answer (no CORS for it, and the cookie is ``SameSite=Strict``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.auth import CSRF_HEADER, csrf_token, signed_in
from api.deps import ConfigDep

router = APIRouter(prefix="/api", tags=["session"])


class SessionState(BaseModel):
    signed_in: bool = Field(description="Whether this browser's cookie carries the token writes need.")
    csrf_token: str | None = Field(description=f"Send it as {CSRF_HEADER} with every write (null when signed out).")
    login: str = Field(description="Where to sign in with the token.")


@router.get("/session")
def session(request: Request, response: Response, config: ConfigDep) -> SessionState:
    """This browser's sign-in for writes, and its CSRF token."""
    response.headers["Cache-Control"] = "no-store"
    token = config.write_token
    if token is None or not signed_in(request, token):
        return SessionState(signed_in=False, csrf_token=None, login="/login")
    return SessionState(signed_in=True, csrf_token=csrf_token(token), login="/login")

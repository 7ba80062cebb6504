"""What one HTTP server is configured with: the token, CORS origins and limits (from settings and ``serve``'s
options).

Writes always need a token. Without ``TILECLASS_API_TOKEN`` (reads then open on loopback), ``tileclass serve`` makes
one for its run (``secrets.token_urlsafe``) and prints it as a login URL; it reaches each server process in the
``ServeConfig`` that process is given (``api.server``: ``serve --workers N`` hands every process the configuration
itself, never through the environment, which everything a process starts would inherit).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import TileclassError
from core.settings import Settings

MIN_TOKEN_LENGTH = 16  # shorter tokens fall to guessing, even throttled (api.throttle)


@dataclass(frozen=True)
class ServeConfig:
    """One server's configuration; ``token`` None serves reads without one (only allowed on loopback, or
    explicitly), and writes then need ``run_token``, the token ``serve`` made for this run (none: no writes)."""

    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    json_limit: int = 10_000
    basemap_url: str | None = None
    basemap_attribution: str = ""
    run_token: str | None = None

    @property
    def write_token(self) -> str | None:
        """The token writes (and the page's sign-in) need: ``TILECLASS_API_TOKEN``, else this run's own."""
        return self.token if self.token is not None else self.run_token

    @classmethod
    def from_settings(cls, settings: Settings) -> ServeConfig:
        token = settings.api.token.get_secret_value() if settings.api.token is not None else None
        return cls(token, tuple(settings.api.cors_origins), settings.api.json_limit, settings.basemap.url,
                   settings.basemap.attribution)

    def basemap(self) -> dict[str, str] | None:
        """The map page's background layer (its URL template and credit line), None when there is none."""
        if self.basemap_url is None:
            return None
        return {"url": self.basemap_url, "attribution": self.basemap_attribution or urlsplit(self.basemap_url).netloc}


def make_run_token() -> str:
    """A token for one run of the server: 32 random bytes, URL-safe (it goes in the printed login URL)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine reaches (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(host: str, config: ServeConfig, *, insecure_no_token: bool) -> None:
    """Refuse to serve beyond loopback without a token, unless the user said so explicitly, and with a token short
    enough to guess anywhere."""
    if config.token is None and not is_loopback(host) and not insecure_no_token:
        raise TileclassError(
            f"serving on {host} would let anyone on the network read the results: set TILECLASS_API_TOKEN (requests "
            "then need it), serve on 127.0.0.1, or pass --insecure-no-token")
    if config.token is not None and len(config.token) < MIN_TOKEN_LENGTH:
        raise TileclassError(
            f"TILECLASS_API_TOKEN has only {len(config.token)} of the {MIN_TOKEN_LENGTH} characters a token needs to "
            "resist guessing: make one with `openssl rand -hex 24`")

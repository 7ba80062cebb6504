"""What one HTTP server is configured with: the token, CORS origins and limits (from settings and ``serve``'s
options)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from core.errors import TileclassError
from core.settings import Settings


@dataclass(frozen=True)
class ServeConfig:
    """One server's configuration; ``token`` None serves without one (only allowed on loopback, or explicitly)."""

    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    json_limit: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ServeConfig:
        token = settings.api_token.get_secret_value() if settings.api_token is not None else None
        return cls(token, tuple(settings.api_cors_origins), settings.api_json_limit)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine reaches (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(host: str, config: ServeConfig, *, insecure_no_token: bool) -> None:
    """Refuse to serve beyond loopback without a token, unless the user said so explicitly."""
    if config.token is None and not is_loopback(host) and not insecure_no_token:
        raise TileclassError(
            f"serving on {host} would let anyone on the network read the results: set TILECLASS_API_TOKEN (requests "
            "then need it), serve on 127.0.0.1, or pass --insecure-no-token")

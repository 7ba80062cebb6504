"""XYZ/TMS URL templates: ``{z}``, ``{x}``, ``{y}``, ``{-y}`` (a TMS row), ``{q}`` (a quadkey), ``{s}`` (one of
``--subdomains``) and ``{env:VAR}`` (a secret such as an API token, resolved on each host from its environment).

A job records the template as the user wrote it, placeholders and all, so a token never reaches the job row, a
message, an export or a log line: everything shown is ``shown()``, which keeps ``{env:VAR}`` as written.

Whoever writes a template chooses what it sends to the tile server, so ``{env:VAR}`` may read only the variables
the operator of the host resolving it lists in ``TILECLASS_SOURCE_ENV`` (``secrets``), and never tileclass's own
``TILECLASS_*`` settings (the API token, the database URL): the producer checks at enqueue (``check_env``), and
each worker and ``tileclass serve`` again against their own list before they fetch anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import mercantile

from core.settings import ENV_VARIABLE, is_own_variable
from core.sources.base import SourceError
from core.tiles import flip_row

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
ENV_NAME = re.compile(rf"^env:({ENV_VARIABLE.pattern.strip('^$')})$")
TILE_FIELDS = ("z", "x", "y", "-y", "q", "s")


@dataclass(frozen=True)
class UrlTemplate:
    text: str
    subdomains: str = ""

    @classmethod
    def parse(cls, text: str, subdomains: str = "") -> UrlTemplate:
        """A checked template; ``SourceError`` in one line naming what is wrong with it."""
        shown = text.split("?")[0]
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"tile URL {shown!r} must start with http:// or https:// and name a host")
        fields = PLACEHOLDER.findall(text)
        for field in fields:
            if field not in TILE_FIELDS and not ENV_NAME.match(field):
                raise SourceError(f"tile URL {shown!r}: unknown placeholder {{{field}}}; use {{z}}, {{x}}, "
                                  "{y}, {-y}, {q}, {s} or {env:VAR}")
        if "q" not in fields and not ({"z", "x"} <= set(fields) and ("y" in fields or "-y" in fields)):
            raise SourceError(f"tile URL {shown!r} needs {{z}}, {{x}} and {{y}} (or {{-y}}), or {{q}}")
        if ("s" in fields) != bool(subdomains):
            raise SourceError(f"tile URL {shown!r}: {{s}} and --subdomains go together (e.g. --subdomains abc)")
        return cls(text, subdomains)

    def env_names(self) -> list[str]:
        return [match.group(1) for field in PLACEHOLDER.findall(self.text) if (match := ENV_NAME.match(field))]

    def check_env(self, allowed: Collection[str]) -> None:
        """``SourceError`` in one line unless every ``{env:VAR}`` is in ``allowed`` (``TILECLASS_SOURCE_ENV``)
        and none is a ``TILECLASS_*`` variable (never, even when listed)."""
        shown = self.text.split("?")[0]
        for name in self.env_names():
            if is_own_variable(name):
                raise SourceError(f"tile URL {shown!r}: {{env:{name}}} is refused: tileclass's own TILECLASS_* "
                                  "settings are never sent to a tile server")
            if name not in allowed:
                listed = ", ".join(sorted(allowed)) or "none"
                raise SourceError(f"tile URL {shown!r}: {{env:{name}}} is not allowed on this host: list it in "
                                  f"TILECLASS_SOURCE_ENV (a JSON list of names; listed now: {listed})")

    def secrets(self, allowed: Collection[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The values of the template's ``{env:VAR}`` on this host, once ``check_env(allowed)`` passes: nothing
        else of the environment can reach ``url``."""
        self.check_env(allowed)
        environ = os.environ if environ is None else environ
        return {name: environ.get(name, "") for name in self.env_names()}

    def missing_env(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The ``{env:VAR}`` variables this host does not set."""
        environ = os.environ if environ is None else environ
        return [name for name in self.env_names() if not environ.get(name)]

    def url(self, z: int, x: int, y: int, secrets: Mapping[str, str]) -> str:
        """The tile's URL with every placeholder resolved, ``{env:VAR}`` from ``secrets`` (see ``secrets``; never
        show the result)."""
        return self._fill(z, x, y, lambda name: secrets.get(name, ""))

    def shown(self, z: int, x: int, y: int) -> str:
        """The tile's URL as it may be shown: tile fields filled in, ``{env:VAR}`` kept as written."""
        return self._fill(z, x, y, lambda name: f"{{env:{name}}}")

    def _fill(self, z: int, x: int, y: int, secret: Callable[[str], str]) -> str:
        values = {"z": str(z), "x": str(x), "y": str(y), "-y": str(flip_row(z, y)),
                  "q": mercantile.quadkey(x, y, z) if z else "",
                  "s": self.subdomains[(x + y) % len(self.subdomains)] if self.subdomains else ""}

        def replace(match: re.Match[str]) -> str:
            field = match.group(1)
            env = ENV_NAME.match(field)
            return secret(env.group(1)) if env else values[field]

        return PLACEHOLDER.sub(replace, self.text)

"""XYZ/TMS URL templates: ``{z}``, ``{x}``, ``{y}``, ``{-y}`` (a TMS row), ``{q}`` (a quadkey), ``{s}`` (one of
``--subdomains``) and ``{env:VAR}`` (a secret such as an API token, resolved on each host from its environment).

A job records the template as the user wrote it, placeholders and all, so a token never reaches the job row, a
message, an export or a log line: everything shown is ``shown()``, which keeps ``{env:VAR}`` as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import mercantile

from core.errors import TileRootError
from core.tiles import flip_row

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
ENV_NAME = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
TILE_FIELDS = ("z", "x", "y", "-y", "q", "s")


@dataclass(frozen=True)
class UrlTemplate:
    text: str
    subdomains: str = ""

    @classmethod
    def parse(cls, text: str, subdomains: str = "") -> UrlTemplate:
        """A checked template; ``TileRootError`` in one line naming what is wrong with it."""
        shown = text.split("?")[0]
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TileRootError(f"tile URL {shown!r} must start with http:// or https:// and name a host")
        fields = PLACEHOLDER.findall(text)
        for field in fields:
            if field not in TILE_FIELDS and not ENV_NAME.match(field):
                raise TileRootError(f"tile URL {shown!r}: unknown placeholder {{{field}}}; use {{z}}, {{x}}, "
                                    "{y}, {-y}, {q}, {s} or {env:VAR}")
        if "q" not in fields and not ({"z", "x"} <= set(fields) and ("y" in fields or "-y" in fields)):
            raise TileRootError(f"tile URL {shown!r} needs {{z}}, {{x}} and {{y}} (or {{-y}}), or {{q}}")
        if ("s" in fields) != bool(subdomains):
            raise TileRootError(f"tile URL {shown!r}: {{s}} and --subdomains go together (e.g. --subdomains abc)")
        return cls(text, subdomains)

    def env_names(self) -> list[str]:
        return [match.group(1) for field in PLACEHOLDER.findall(self.text) if (match := ENV_NAME.match(field))]

    def missing_env(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The ``{env:VAR}`` variables this host does not set."""
        environ = os.environ if environ is None else environ
        return [name for name in self.env_names() if not environ.get(name)]

    def url(self, z: int, x: int, y: int, environ: Mapping[str, str] | None = None) -> str:
        """The tile's URL with every placeholder resolved (secrets included: never show it)."""
        environ = os.environ if environ is None else environ
        return self._fill(z, x, y, lambda name: environ.get(name, ""))

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

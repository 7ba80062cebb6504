"""Tile layouts: how a tile's coordinates are spelled in its path below a tile root.

A layout is a template of ``/``-separated components. ``{z}``, ``{x}`` and ``{y}`` stand for decimal numbers,
``{ext}`` for a tile extension (``core.choices.TILE_EXTENSIONS``: png, jpg, jpeg, webp, any case); everything
else is literal::

    {z}/{x}/{y}.{ext}      the slippy-map (XYZ) tree, the default; with scheme "tms", y counts from the south
    {z}-{x}-{y}.jpg        one folder of files named by their coordinates
    {x}-{y}-{z}.jpg        the naming of labelmaker's tiles (../shared/data/labelmaker-tiles)
    plain                  any folder tree of images, without coordinates (tiles are known by their path)

Every component but the last names directories, the last names files. Each of ``{z}``, ``{x}``, ``{y}`` appears
exactly once and two placeholders never touch (``{x}{y}`` could be split many ways). TMS rows are converted to XYZ
by the walker (``core.tiles.flip_row``), so everything downstream is XYZ.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from core.choices import TILE_EXTENSIONS, check_choice
from core.errors import TileError
from core.tiles import MAX_ZOOM, fits, flip_row

Scheme = Literal["xyz", "tms"]
SCHEMES: tuple[Scheme, ...] = ("xyz", "tms")
XYZ_TEMPLATE = "{z}/{x}/{y}.{ext}"
PLAIN = "plain"
MAX_TEMPLATE_LENGTH = 100
_FIELDS = ("z", "x", "y")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_EXT_PATTERN = "(?i:" + "|".join(re.escape(ext.lstrip(".")) for ext in TILE_EXTENSIONS) + ")"


@dataclass(frozen=True)
class Level:
    """One component of a template: a compiled name pattern and the coordinates it captures, in order."""

    pattern: re.Pattern[str]
    fields: tuple[str, ...]

    def match(self, name: str) -> tuple[int, ...] | None:
        """The captured numbers of ``name`` in ``fields`` order, or None when the name does not fit."""
        found = self.pattern.fullmatch(name)
        if found is None:
            return None
        return tuple(int(value) for value in found.groups())


@dataclass(frozen=True)
class Layout:
    """A parsed layout; build it with ``Layout.parse``."""

    template: str
    scheme: Scheme
    levels: tuple[Level, ...]

    @property
    def is_plain(self) -> bool:
        return not self.levels

    @property
    def name(self) -> str:
        """How the layout is recorded in a job: ``plain`` or ``<scheme>:<template>``."""
        return PLAIN if self.is_plain else f"{self.scheme}:{self.template}"

    def paths_of(self, z: int, x: int, y: int) -> list[str]:
        """The relative paths an XYZ tile may have under this layout: one per tile extension where the template
        says ``{ext}`` (a folder holds one of them), none for a plain layout."""
        if self.is_plain:
            return []
        row = flip_row(z, y) if self.scheme == "tms" else y
        spelled = self.template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(row))
        if "{ext}" not in spelled:
            return [spelled]
        extensions = dict.fromkeys(e.lstrip(".") for ext in TILE_EXTENSIONS for e in (ext, ext.upper()))
        return [spelled.replace("{ext}", ext) for ext in extensions]

    def tree_root_above(self, folder: Path) -> tuple[Path, dict[str, int]] | None:
        """Where the tree is when ``folder`` looks like one of its directories rather than its root: ``tiles/16``
        of a ``{z}/{x}/{y}.{ext}`` tree is the folder of zoom 16, whose root is ``tiles``. Returns that root and the
        coordinates the folder's names fix (``{"z": 16}``), or None when its names do not fit the layout's
        directory levels as coordinates of a real tile. The deepest reading wins (``tiles/16/34000``: zoom 16,
        column 34000)."""
        names = Path(os.path.abspath(folder)).parts
        for depth in range(min(len(self.levels) - 1, len(names) - 1), 0, -1):
            coords: dict[str, int] = {}
            for level, name in zip(self.levels[:depth], names[len(names) - depth:], strict=True):
                values = level.match(name)
                if values is None:
                    break
                coords |= dict(zip(level.fields, values, strict=True))
            else:
                if coords and fits(coords.get("z", MAX_ZOOM), coords.get("x", 0), coords.get("y", 0)):
                    return Path(*names[: len(names) - depth]), coords
        return None

    @classmethod
    def parse(cls, template: str | None = None, scheme: str = "xyz") -> Layout:
        """A layout from ``--layout`` (None: the XYZ tree) and ``--scheme``; ``TileError`` names what is wrong."""
        scheme = cast(Scheme, check_choice("scheme", scheme, SCHEMES, error=TileError))
        template = XYZ_TEMPLATE if template is None else template.strip()
        if template == PLAIN:
            if scheme != "xyz":
                raise TileError("--scheme tms needs a layout with coordinates, not 'plain'")
            return cls(PLAIN, "xyz", ())
        return cls(template, scheme, _compile(template))

    @classmethod
    def from_name(cls, name: str) -> Layout:
        """The layout a job recorded as ``name`` (``plain`` or ``<scheme>:<template>``)."""
        if name == PLAIN:
            return cls.parse(PLAIN)
        scheme, _, template = name.partition(":")
        return cls.parse(template, scheme)


def _compile(template: str) -> tuple[Level, ...]:
    example = "for example '{z}/{x}/{y}.png', '{x}-{y}-{z}.jpg' or 'plain'"
    if not template or len(template) > MAX_TEMPLATE_LENGTH:
        raise TileError(f"layout must be 1..{MAX_TEMPLATE_LENGTH} characters, {example}")
    parts = template.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in template:
        raise TileError(f"layout {template!r} has an empty, '.' or '..' component, {example}")
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({name for name in names if name not in (*_FIELDS, "ext")})
    if unknown:
        raise TileError(f"layout {template!r} has unknown placeholder(s) {unknown}: use {{z}}, {{x}}, {{y}}, {{ext}}")
    for name in (*_FIELDS, "ext"):
        if names.count(name) > 1 or (name in _FIELDS and names.count(name) != 1):
            raise TileError(f"layout {template!r} must contain {{z}}, {{x}} and {{y}} exactly once each, {example}")
    if "}{" in template:
        raise TileError(f"layout {template!r} has two placeholders side by side: separate them, {example}")
    if "{ext}" in parts[:-1] or "{ext}" in "".join(parts[:-1]):
        raise TileError(f"layout {template!r}: {{ext}} may only appear in the file name (the last component)")
    last = parts[-1].lower()
    if not (last.endswith(".{ext}") or last.endswith(TILE_EXTENSIONS)):
        raise TileError(f"layout {template!r} must end in .{{ext}} or one of {', '.join(TILE_EXTENSIONS)}")
    return tuple(_level(part) for part in parts)


def _level(component: str) -> Level:
    pattern, fields, position = [], [], 0
    for found in _PLACEHOLDER.finditer(component):
        pattern.append(re.escape(component[position : found.start()]))
        name = found.group(1)
        if name == "ext":
            pattern.append(_EXT_PATTERN)
        else:
            pattern.append(r"(\d{1,9})")
            fields.append(name)
        position = found.end()
    pattern.append(re.escape(component[position:]))
    return Level(re.compile("".join(pattern)), tuple(fields))

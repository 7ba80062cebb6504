"""A summary by class grouping (``tileclass summary --groups NAME``, ``core.class_groups``): each group's tiles,
share, uncertain answers and mapped area, the sums of its classes' (a summary already counts every class, so no
second query is made).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.class_groups import ClassGrouping
from core.palette import class_colour, hex_colour
from core.queries.types import ClassCount


@dataclass(frozen=True, slots=True)
class GroupCount:
    group: str
    classes: tuple[str, ...]
    count: int
    share: float  # of the classified tiles
    uncertain: int
    area_km2: float | None  # None where a class's tiles have no area (tiles without coordinates)

    def as_dict(self, index: int) -> dict[str, Any]:
        """As JSON, with the group's colour on the map (its place in the grouping, as the overlay draws it)."""
        return {"group": self.group, "classes": list(self.classes), "count": self.count, "share": self.share,
                "uncertain": self.uncertain, "area_km2": self.area_km2, "colour": hex_colour(class_colour(index))}


def summarize_groups(classes: Sequence[ClassCount], grouping: ClassGrouping) -> list[GroupCount]:
    """Per group, in the grouping's order (every group, counted or not), the sums over its classes."""
    total = sum(c.count for c in classes)
    members: dict[str, list[ClassCount]] = {group: [] for group in grouping.groups}
    for counted in classes:
        members.setdefault(grouping.group_of(counted.label), []).append(counted)
    rows = []
    for group, counts in members.items():
        tiles = sum(c.count for c in counts)
        areas = [c.area_km2 for c in counts if c.count]
        area = None if any(a is None for a in areas) else sum(a for a in areas if a is not None)
        rows.append(GroupCount(group, grouping.classes_of(group) or tuple(c.label for c in counts), tiles,
                               tiles / total if total else 0.0, sum(c.uncertain for c in counts), area))
    return rows


def grouped_document(document: dict[str, Any], classes: Sequence[ClassCount],
                     grouping: ClassGrouping | None) -> dict[str, Any]:
    """A summary's JSON (``Summary.as_dict``) with its grouping's name and groups (both null without one): the one
    document ``summary --json`` prints and ``/api/summary`` answers."""
    if grouping is None:
        return document | {"grouping": None, "groups": None}
    groups = summarize_groups(classes, grouping)
    return document | {"grouping": grouping.name, "groups": [g.as_dict(i) for i, g in enumerate(groups)]}

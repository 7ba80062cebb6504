"""Class groups: a model's classes gathered into the categories a user cares about (issue 29, part 2).

A groups file is a JSON object from group name to the model's classes in it, in the order the groups should be
shown::

    {"safe to land": ["field"], "avoid": ["residential", "road", "water", "trees"]}

Every class belongs to at most one group; a class in no group belongs to ``other`` (``OTHER``), which comes last.
A grouping is registered under a name (``tileclass groups add NAME FILE --model MODEL``, the table
``class_groupings``) for the one model whose classes it maps (by SHA-256, a plain column: like a correction, a
grouping outlives its model's registration). It is stored complete, ``other`` included, so that reading it back needs
no class list. ``load_grouping`` is the one lookup that ``summary``, ``export``, ``vectorize`` and the overlays use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, case, literal, select
from sqlalchemy.orm import Session

from core.db import aware
from core.errors import NotFoundError, TileclassError
from core.models.lookups import find_model
from core.models.names import NAME_PATTERN
from core.schema import ClassGroupingRow

OTHER = "other"
MAX_GROUP_NAME = 128  # the width of a label column, so a group fits wherever a class does


class GroupingError(TileclassError):
    """A groups file or a grouping's use is invalid (unknown classes, a class in two groups, another model's)."""


@dataclass(frozen=True)
class ClassGrouping:
    """A registered grouping: ``pairs`` is each group with its classes, in display order, ``other`` last if used."""

    name: str
    model_sha256: str
    pairs: tuple[tuple[str, tuple[str, ...]], ...]
    created_at: datetime | None = None

    @property
    def groups(self) -> list[str]:
        return [group for group, _ in self.pairs]

    @property
    def mapping(self) -> dict[str, str]:
        """Each class of the model to its group."""
        return {label: group for group, labels in self.pairs for label in labels}

    def group_of(self, label: str) -> str:
        """The group of one of the model's classes (``other`` for a label the grouping does not name)."""
        return self.mapping.get(label, OTHER)

    def classes_of(self, group: str) -> tuple[str, ...]:
        return dict(self.pairs).get(group, ())

    def expression(self, label: ColumnElement[str]) -> ColumnElement[str]:
        """The group of a label column in SQL (a ``CASE``), so that queries group in the database."""
        whens = [(label.in_(labels), group) for group, labels in self.pairs if group != OTHER and labels]
        return case(*whens, else_=literal(OTHER)) if whens else literal(OTHER)

    def check_model(self, model_hash: str) -> None:
        """``GroupingError`` unless this grouping was made for ``model_hash``."""
        if model_hash != self.model_sha256:
            raise GroupingError(f"grouping {self.name!r} is for model {self.model_sha256[:12]}, not "
                                f"{model_hash[:12]}: add one for this model with 'tileclass groups add'")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_sha256, "groups": {g: list(c) for g, c in self.pairs},
                "created_at": self.created_at.isoformat() if self.created_at else None}


def parse_groups(data: Any, class_names: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A groups document checked against the model's classes and completed with ``other``.

    Raises:
        GroupingError: in one line, for anything but an object of group name to a list of the model's classes.
    """
    if not isinstance(data, dict) or not data:
        raise GroupingError('a groups file is a JSON object of group name to classes, e.g. {"safe to land": '
                            '["field"], "avoid": ["road"]}')
    seen: dict[str, str] = {}
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for group, labels in data.items():
        group = group.strip()
        if not group or len(group) > MAX_GROUP_NAME:
            raise GroupingError(f"group name {group!r} must have 1 to {MAX_GROUP_NAME} characters")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise GroupingError(f"group {group!r} must be a list of class names")
        for label in labels:
            if label in seen:
                where = "twice" if seen[label] == group else f"in groups {seen[label]!r} and {group!r}"
                raise GroupingError(f"class {label!r} is {where}: a class belongs to one group")
            seen[label] = group
        pairs.append((group, tuple(labels)))
    unknown = [label for label in seen if label not in class_names]
    if unknown:
        raise GroupingError(f"unknown class{'es' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                            f"the model's classes are {', '.join(class_names)}")
    return _with_other(pairs, [label for label in class_names if label not in seen])


def _with_other(pairs: list[tuple[str, tuple[str, ...]]], rest: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # A group the user called "other" takes the unmapped classes too; either way "other" is shown last.
    named = dict(pairs)
    others = (*named.pop(OTHER, ()), *rest)
    completed = [(group, labels) for group, labels in pairs if group != OTHER]
    return (*completed, (OTHER, others)) if OTHER in dict(pairs) or rest else tuple(completed)


def read_groups_file(path: Path, class_names: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``parse_groups`` of a JSON file; ``GroupingError`` in one line for a file that is missing or not JSON."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GroupingError(f"cannot read groups file {str(path)!r}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GroupingError(f"groups file {str(path)!r} is not JSON: {exc}") from None
    return parse_groups(data, class_names)


def _grouping(row: ClassGroupingRow) -> ClassGrouping:
    return ClassGrouping(row.name, row.model_hash, tuple((str(g), tuple(c)) for g, c in row.groups),
                         aware(row.created_at))


def check_grouping_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise GroupingError(f"grouping name {name!r} must be letters, digits, '.', '_' or '-' (at most 64), "
                            "starting with a letter or digit")
    return name


def add_grouping(session: Session, *, name: str, model_ref: str, path: Path) -> ClassGrouping:
    """Register the groups file at ``path`` as ``name`` for the model ``model_ref`` (name, hash or prefix)."""
    check_grouping_name(name)
    model = find_model(session, ref=model_ref)
    pairs = read_groups_file(path, model.class_names)
    if session.get(ClassGroupingRow, name) is not None:
        raise GroupingError(f"grouping {name!r} exists already: 'tileclass groups remove {name}' first")
    row = ClassGroupingRow(name=name, model_hash=model.hash, groups=[[g, list(c)] for g, c in pairs])
    session.add(row)
    session.flush()
    return _grouping(row)


def list_groupings(session: Session, *, model_hash: str | None = None) -> list[ClassGrouping]:
    """Every registered grouping (``model_hash``: of that model), by name."""
    query = select(ClassGroupingRow).order_by(ClassGroupingRow.name)
    if model_hash is not None:
        query = query.where(ClassGroupingRow.model_hash == model_hash)
    return [_grouping(row) for row in session.scalars(query)]


def _known(session: Session) -> str:
    names = list(session.scalars(select(ClassGroupingRow.name).order_by(ClassGroupingRow.name).limit(10)))
    return ", ".join(names) or "none; 'tileclass groups add' makes one"


def load_grouping(session: Session, name: str, *, model_hash: str | None = None) -> ClassGrouping:
    """The grouping registered as ``name``; with ``model_hash``, also checked to be that model's.

    Raises:
        NotFoundError: no grouping has that name (naming those there are).
        GroupingError: it was made for another model.
    """
    row = session.get(ClassGroupingRow, name.strip())
    if row is None:
        raise NotFoundError(f"no grouping {name.strip()!r} (registered: {_known(session)})")
    grouping = _grouping(row)
    if model_hash is not None:
        grouping.check_model(model_hash)
    return grouping


def remove_grouping(session: Session, *, name: str) -> ClassGrouping:
    grouping = load_grouping(session, name)
    row = session.get(ClassGroupingRow, grouping.name)
    session.delete(row)
    session.flush()
    return grouping

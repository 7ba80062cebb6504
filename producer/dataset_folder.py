"""Where ``dataset export`` writes: a new or empty folder, or a previous export that it replaces whole.

A previous export is recognised by its ``dataset.json`` (written last, so a folder with one is complete) and by
holding nothing but what its ``manifest.csv`` lists: a file someone added (a hand-labelled image, notes) makes it
refuse, naming the file, rather than delete it. Anything else that is not empty is refused.

The new export is written into a hidden staging folder beside ``--out`` and moved into place only when complete,
so an interrupted export leaves the previous one as it was; the previous one is deleted only after the swap. The
staging folder never outlives the command: it is removed on any error, the swap's included.

An ``--out`` that is a symbolic link is followed once (``real_out``): the export is staged beside the folder it
names and swapped into it, so the link still leads to the export.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from core.errors import TileclassError

MANIFEST = "manifest.csv"
MARKER = "dataset.json"


class OutFolderError(TileclassError):
    """``--out`` is neither new, nor empty, nor a previous export."""


def real_out(out: Path) -> Path:
    """Where ``out`` really is, every symbolic link followed (also one to a folder that does not exist yet)."""
    try:
        return out.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python before 3.13)
        raise OutFolderError(f"cannot follow --out {str(out)!r}: {exc}") from None


def check_out(out: Path) -> bool:
    """Whether ``out`` is a previous export to be replaced (False: new or empty); ``OutFolderError`` otherwise."""
    if not out.exists():
        if not out.parent.is_dir():
            raise OutFolderError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist")
        return False
    if not out.is_dir():
        raise OutFolderError(f"--out {str(out)!r} is a file: give a folder")
    if not any(out.iterdir()):
        return False
    if not (out / MARKER).is_file() or not (out / MANIFEST).is_file():
        raise OutFolderError(f"--out {str(out)!r} is not empty and is not a previous 'tileclass dataset export' "
                             f"(it has no {MARKER} and {MANIFEST}): choose a new or empty folder")
    extra = _unlisted(out)
    if extra:
        raise OutFolderError(f"--out {str(out)!r} is a previous export but holds {len(extra):,} file"
                             f"{'s' if len(extra) != 1 else ''} it did not write (e.g. {extra[0]}): move them away "
                             "or choose another folder")
    return True


def _unlisted(out: Path) -> list[str]:
    """Files below ``out`` that its manifest does not list (besides the manifest and the marker)."""
    try:
        with (out / MANIFEST).open(encoding="utf-8", newline="") as handle:
            listed = {row["file"] for row in csv.DictReader(handle) if row.get("file")}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError) as exc:
        raise OutFolderError(f"cannot read the previous export's {MANIFEST} in {str(out)!r}: {exc}") from None
    listed |= {MANIFEST, MARKER}
    found = sorted(str(path.relative_to(out)) for path in out.rglob("*") if not path.is_dir())
    return [name for name in found if name not in listed]


def staging_folder(out: Path) -> Path:
    """A new hidden folder beside ``out`` to write the export into."""
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
    except OSError as exc:
        raise OutFolderError(f"cannot write beside --out {str(out)!r}: {exc.strerror or exc}") from None
    return staging


def move_into_place(staging: Path, out: Path, *, replaces: bool) -> None:
    """Put the finished export at ``out`` (a real path: ``real_out``); a previous export there is deleted once the
    new one is in place. On an error the previous export stays (or is put back) and the staging folder goes."""
    previous = out.parent / f".{out.name}.previous-{os.getpid()}"
    try:
        if replaces:
            os.rename(out, previous)
            try:
                os.rename(staging, out)
            except OSError:
                os.rename(previous, out)
                raise
        elif out.exists():  # an empty folder: a rename replaces it
            os.replace(staging, out)
        else:
            os.rename(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutFolderError(f"cannot put the export in place at {str(out)!r}: {exc.strerror or exc}") from None
    if replaces:
        shutil.rmtree(previous)

"""Reading a folder's tiles by coordinates through its layout (the HTTP server's imagery), never from outside it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.settings import load_settings
from core.sources import FolderSource, TileAbsent, TileUnreadable
from core.sources.layouts import Layout
from core.tiles import Tile
from tests.labelmaker import labelmaker_tiles


def test_paths_of_spells_coordinates_through_the_template_and_flips_tms_rows() -> None:
    assert Layout.parse("{x}-{y}-{z}.jpg").paths_of(17, 62525, 50579) == ["62525-50579-17.jpg"]
    assert Layout.parse("{z}/{x}/{y}.png", "tms").paths_of(3, 1, 2) == ["3/1/5.png"]
    candidates = Layout.parse().paths_of(3, 1, 2)
    assert candidates[0] == "3/1/2.png" and "3/1/2.jpg" in candidates and "3/1/2.WEBP" in candidates
    assert Layout.parse("plain").paths_of(3, 1, 2) == []


def test_labelmaker_tiles_are_read_by_coordinates(tmp_path: Path) -> None:
    root = labelmaker_tiles(tmp_path / "z17-jpg")
    source = FolderSource.at(root, layout=Layout.parse("{x}-{y}-{z}.jpg"), settings=load_settings())
    reader = source.reader(load_settings())
    name = sorted(root.glob("*.jpg"))[0].name
    x, y, z = (int(part) for part in name.removesuffix(".jpg").split("-"))
    assert reader.read(Tile(z, x, y)) == (root / name).read_bytes()
    with pytest.raises(TileAbsent, match="no tile file"):
        reader.read(Tile(z, x + 1000, y))


def test_an_xyz_tree_is_read_whatever_the_extension(tmp_path: Path) -> None:
    (tmp_path / "5" / "3").mkdir(parents=True)
    (tmp_path / "5" / "3" / "7.jpeg").write_bytes(b"jpeg bytes")
    reader = FolderSource.at(tmp_path, layout=Layout.parse(), settings=load_settings()).reader(load_settings())
    assert reader.read(Tile(5, 3, 7)) == b"jpeg bytes"
    assert reader.read(Tile(None, None, None, "5/3/7.jpeg")) == b"jpeg bytes"


def test_a_symlink_out_of_the_folder_is_never_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "5").mkdir(parents=True)
    (outside / "3").mkdir(parents=True)
    (outside / "3" / "7.png").write_bytes(b"secret")
    os.symlink(outside / "3", root / "5" / "3")
    reader = FolderSource.at(root, layout=Layout.parse(), settings=load_settings()).reader(load_settings())
    with pytest.raises(TileUnreadable, match="outside its root"):
        reader.read(Tile(5, 3, 7))
    with pytest.raises(TileUnreadable, match="not a plain path"):
        reader.read(Tile(None, None, None, "../outside/3/7.png"))


def test_a_folder_missing_on_this_host_is_the_hosts_problem(tmp_path: Path) -> None:
    from core.sources.base import SourceUnavailable

    folder = tmp_path / "tiles"
    folder.mkdir()
    source = FolderSource.at(folder, layout=Layout.parse(), settings=load_settings())
    shutil.rmtree(folder)
    with pytest.raises(SourceUnavailable, match=r"cannot be read .* on this host"):
        source.reader(load_settings())
